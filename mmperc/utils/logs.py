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
        list[dict]: One dict per logged step (training and validation alike).
    """
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if latest_only:
        files = files[-1:]
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]
