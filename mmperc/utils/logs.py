"""Read the per-iteration scalars mmengine writes under a work dir."""
import json
import re
from pathlib import Path
from typing import List, Union


def read_scalars(work_dir: Union[str, Path], latest_only: bool = False) -> List[dict]:
    """Entries of ``<work_dir>/<timestamp>/vis_data/scalars.json``, oldest run first.

    Args:
        work_dir (str | Path): A run's work dir.
        latest_only (bool): Only the newest training run's log (a resumed run adds a new
            one): none if that run logged nothing (it failed before its first log), never an
            earlier run's. Test runs (``tools/test.py`` into the same work dir) log no
            scalars and are passed over. Defaults to False.

    Returns:
        list[dict]: One dict per logged step (training and validation alike). A last line cut
        short (a run killed while writing it) is left out; a broken line before it raises.
    """
    runs = sorted(d for d in Path(work_dir).glob('*') if d.is_dir() and _RUN_DIR.match(d.name)
                  and not (d / f'{d.name}.json').is_file())  # a test run's metrics: no training
    if latest_only:
        runs = runs[-1:]
    files = [run / 'vis_data' / 'scalars.json' for run in runs]
    return [entry for f in files if f.is_file() for entry in _entries(f)]


#: mmengine's run folders: ``<work_dir>/<YYYYmmdd_HHMMSS>/``, made when the run starts (a test
#: run's holds its metrics as ``<YYYYmmdd_HHMMSS>.json``, a training run's only under vis_data)
_RUN_DIR = re.compile(r'^\d{8}_\d{6}$')


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
