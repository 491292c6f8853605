"""What the tools check and change for their arguments: the config and checkpoint paths, ``--out``,
and the teacher's config path."""
import inspect
import os
import os.path as osp
from typing import List, Optional, Union

from mmengine.config import Config
from mmseg.registry import METRICS


def config_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be a tool's config, naming the fix (None if it can)."""
    if osp.isfile(path):
        return None
    if '::' in path:
        return (f'{path}: a package config is read only through _base_; train your own config file holding '
                f"_base_ = ['{path}']")
    return f'config {path} not found (a relative path is read from the current directory, {os.getcwd()})'


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be loaded as a checkpoint, naming the fix (None if it can, or is a URL)."""
    if '://' in path or osp.isfile(path):
        return None
    return (f'checkpoint {path} not found: pass one written by tools/train.py (WORK_DIR/iter_N.pth; '
            'WORK_DIR/last_checkpoint names the latest) or a URL')


def _init_params(metric_type: Union[str, type]) -> List[str]:
    """The ``__init__`` parameters of a metric type (a class or a registered name), [] if unknown."""
    cls = metric_type if inspect.isclass(metric_type) else METRICS.get(metric_type)
    return list(inspect.signature(cls.__init__).parameters) if cls is not None else []


def save_predictions_to(cfg: Config, out: str) -> None:
    """``tools/test.py --out``: every test metric that takes an ``output_dir`` (mmseg's
    ``IoUMetric``, ``CityscapesMetric``, ``DepthMetric``) writes its predictions there and keeps
    them, as mmseg's tool does; ``test_evaluator`` may be one metric or a list (mmperc's demo
    configs add ``BoundaryFScore``, which writes none).

    Raises:
        ValueError: No metric of ``test_evaluator`` writes predictions.
    """
    metrics = cfg.test_evaluator if isinstance(cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
    writers = [m for m in metrics if 'output_dir' in _init_params(m.get('type'))]
    if not writers:
        raise ValueError(f'--out: no metric of test_evaluator ({[m.get("type") for m in metrics]}) writes '
                         "segmentation maps (output_dir): for an mmseg config add dict(type='IoUMetric') to "
                         "test_evaluator; for other tasks (mmdet's CondInst) use that codebase's own test "
                         'script, whose --out dumps its results')
    for metric in writers:
        metric['output_dir'] = out
        metric['keep_results'] = True


def resolve_teacher_config(cfg: Config) -> None:
    """A relative ``model.teacher.config`` that does not exist from the current directory but
    does beside the config file (``cfg.filename``) becomes that file's absolute path: it is
    written next to ``_base_``, which mmengine reads relative to the config file."""
    teacher = cfg.get('model', {}).get('teacher', None)
    path = teacher.get('config', None) if isinstance(teacher, dict) else None
    if not isinstance(path, str) or '::' in path or osp.isabs(path) or osp.isfile(path) or not cfg.filename:
        return
    beside = osp.normpath(osp.join(osp.dirname(osp.abspath(cfg.filename)), osp.expanduser(path)))
    if osp.isfile(beside):
        teacher['config'] = beside
