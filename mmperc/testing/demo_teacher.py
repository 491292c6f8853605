"""The demo's cached teacher (``tools/demo.py``): the file recording what it was trained on, and
which of its checkpoints the demo and ``benchmarks/evidence.py`` distil from."""
import json
from pathlib import Path
from typing import Optional, Union

from mmperc.utils.run_files import iter_checkpoints

#: What a cached teacher was trained on (data, seed, schedule length), beside its checkpoints.
TEACHER_KEY = 'teacher_key.json'


def demo_teacher(demo_dir: Union[str, Path]) -> Optional[str]:
    """The teacher checkpoint under ``<demo_dir>/teacher``: the finished schedule its
    :data:`TEACHER_KEY` names (the demo's own rule for reusing it), else the highest iteration
    (by number), else None."""
    teacher_dir = Path(demo_dir, 'teacher')
    key = teacher_dir / TEACHER_KEY
    if key.is_file():
        with open(key) as f:
            ckpt = teacher_dir / f'iter_{json.load(f)["max_iters"]}.pth'
        if ckpt.is_file():
            return str(ckpt)
    ckpts = iter_checkpoints(teacher_dir)
    return ckpts[-1] if ckpts else None
