"""Job functions the durability tests enqueue (importable by a worker process)."""

import time
from pathlib import Path


def slow_marker(folder: str) -> str:
    d = Path(folder)
    runs = len(list(d.glob("started-*")))
    (d / f"started-{runs}").touch()
    if runs == 0:
        time.sleep(60)  # the first run is killed here
    (d / f"done-{runs}").touch()
    return "done"
