"""mmperc.utils.runtime: process-group teardown at the end of tools/train.py and tools/test.py."""


def test_shutdown_distributed_destroys_the_group(tmp_path):
    import torch.distributed as dist

    from mmperc.utils import shutdown_distributed
    shutdown_distributed()  # no group: nothing to do
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    assert dist.is_initialized()
    shutdown_distributed()
    assert not dist.is_initialized()
