"""Read the per-iteration scalars mmengine writes under a work dir."""
import json
from pathlib import Path
from typing import List, Union


def read_scalars(work_dir: Union[str, Path], latest_only: bool = False) -> List[dict]:
    """Entries of ``<work_dir>/<timestamp>/vis_data/scalars.json``, oldest run first.

    Args:
        work_dir (str | Path): A run's work dir.
        latest_only (bool): Only the newest run's log (a resumed run adds a new one).
            Defaults to False.

    Returns:
        list[dict]: One dict per logged step (training and validation alike). A last line cut
        short (a run killed while writing it) is left out; a broken line before it raises.
    """
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if latest_only:
        files = files[-1:]
    return [entry for f in files for entry in _entries(f)]


def _entries(path: Path) -> List[dict]:
    """The JSON lines of one ``scalars.json``, without a last line that was cut short."""
    lines = path.read_text().splitlines()
    entries = [json.loads(line) for line in lines[:-1]]
    if lines:
        try:
            entries.append(json.loads(lines[-1]))
        except json.JSONDecodeError:
            pass  # the run was killed while mmengine wrote this line
    return entries
