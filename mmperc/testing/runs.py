"""Turn a real mmseg training config into a few-iteration run on generated data."""
from typing import Optional, Tuple

from mmengine.config import Config

from .config import point_cfg_to, set_pipeline_sizes

__all__ = ['shrink_for_quick_run']


def _drop_pretrained(model: dict) -> None:
    """No download: remove ``pretrained`` and ``Pretrained`` init configs, recursively."""
    if 'pretrained' in model:
        model['pretrained'] = None
    for value in model.values():
        if isinstance(value, dict):
            init_cfg = value.get('init_cfg')
            if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
                value['init_cfg'] = None
            _drop_pretrained(value)


def shrink_for_quick_run(cfg: Config,
                         kind: str,
                         data_root: str,
                         max_iters: int = 2,
                         crop_size: Tuple[int, int] = (64, 64),
                         scale: Tuple[int, int] = (128, 64),
                         batch_size: int = 2,
                         val_interval: Optional[int] = None,
                         checkpoint_interval: Optional[int] = None,
                         seed: int = 0) -> Config:
    """Edit ``cfg`` in place for a quick CPU run: same model and recipe, tiny everything else.

    Args:
        cfg (Config): A full mmseg training config (a ``_perc`` one or a base one).
        kind (str): Dataset kind of :func:`mmperc.testing.make_dataset`.
        data_root (str): Root returned by the dataset generator.
        max_iters (int): Training iterations. Defaults to 2.
        crop_size (tuple[int, int]): Training crop ``(h, w)``. Defaults to (64, 64).
        scale (tuple[int, int]): Resize bound ``(w, h)``. Defaults to (128, 64).
        batch_size (int): Images per process. Defaults to 2.
        val_interval (int, optional): Validate every N iterations. Defaults to
            ``max_iters``.
        checkpoint_interval (int, optional): Save every N iterations. Defaults
            to ``val_interval``.
        seed (int): Random seed (deterministic cuDNN off). Defaults to 0.

    Returns:
        Config: ``cfg`` itself.
    """
    val_interval = val_interval or max_iters
    checkpoint_interval = checkpoint_interval or val_interval
    point_cfg_to(cfg, kind, data_root)
    set_pipeline_sizes(cfg, crop_size, scale)
    _drop_pretrained(cfg.model)
    cfg.model.test_cfg = dict(mode='whole')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
    for scheduler in cfg.get('param_scheduler', []) or []:
        scheduler['end'] = max_iters
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=checkpoint_interval)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1, log_metric_by_epoch=False)
    cfg.train_dataloader.batch_size = batch_size
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.randomness = dict(seed=seed)
    cfg.log_level = 'INFO'
    return cfg
