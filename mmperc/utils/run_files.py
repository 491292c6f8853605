"""Find the checkpoints a run wrote under its work dir."""
from pathlib import Path
from typing import List, Optional, Union


def iter_checkpoints(run_dir: Union[str, Path]) -> List[str]:
    """A run's ``iter_<N>.pth`` files in order of ``N`` (as numbers: ``iter_50`` before ``iter_300``,
    which sorts first as text)."""
    ckpts = [p for p in Path(run_dir).glob('iter_*.pth') if p.stem[len('iter_'):].isdigit()]
    return [str(p) for p in sorted(ckpts, key=lambda p: int(p.stem[len('iter_'):]))]


def last_checkpoint(run_dir: Union[str, Path]) -> Optional[str]:
    """The checkpoint of a run's latest training (mmengine's ``last_checkpoint`` file, if the file it
    names exists), else its highest ``iter_*.pth``, else None."""
    pointer = Path(run_dir) / 'last_checkpoint'
    named = pointer.read_text().strip() if pointer.is_file() else ''
    if named and Path(named).is_file():
        return named
    ckpts = iter_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None
