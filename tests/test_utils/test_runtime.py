"""mmperc.utils.runtime: the CPU process group and its teardown at the end of tools/train.py and tools/test.py."""
import os


def test_shutdown_distributed_destroys_the_group(tmp_path):
    import torch.distributed as dist

    from mmperc.utils import shutdown_distributed
    shutdown_distributed()  # no group: nothing to do
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    assert dist.is_initialized()
    shutdown_distributed()
    assert not dist.is_initialized()


def test_gloo_on_gpus_is_left_to_mmengines_launcher(monkeypatch):
    """MMPERC_DIST_BACKEND=gloo with CUDA: only the backend is set; mmengine's launcher makes the
    group after putting each rank on its GPU (a group made here would leave them all on GPU 0)."""
    import torch
    import torch.distributed as dist
    from mmengine.config import Config

    from mmperc.utils import setup_distributed
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setenv('MMPERC_DIST_BACKEND', 'gloo')
    for var in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE'):
        monkeypatch.delenv(var, raising=False)
    cfg = Config(dict())
    setup_distributed(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert not dist.is_initialized() and 'model_wrapper_cfg' not in cfg


def test_cpu_process_group_takes_the_configs_dist_cfg(tmp_path, monkeypatch):
    """env_cfg.dist_cfg's other keys (timeout in seconds, as mmengine's init_dist reads it) reach
    the gloo group made on CPUs, not only the backend; init_backend is mmengine's, not torch's."""
    import datetime

    import torch
    import torch.distributed as dist
    from mmengine.config import Config

    from mmperc.utils import setup_distributed, shutdown_distributed
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for var, value in (('MASTER_ADDR', '127.0.0.1'), ('RANK', '0'), ('WORLD_SIZE', '1')):
        monkeypatch.setenv(var, value)
    monkeypatch.setenv('MASTER_PORT', str(29500 + os.getpid() % 1000))
    seen = {}
    init = dist.init_process_group
    monkeypatch.setattr(dist, 'init_process_group', lambda **kw: (seen.update(kw), init(**kw)))
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=42, init_backend='torch'))))
    try:
        setup_distributed(cfg, 'pytorch')
        assert seen == dict(backend='gloo', timeout=datetime.timedelta(seconds=42))
        assert dist.is_initialized() and cfg.model_wrapper_cfg.device_ids is None
    finally:
        shutdown_distributed()
