"""Reading a sandbox's YAML seed file, and the durations seeds write ("20m", "2h", "3d").

Generic: each sandbox fills its own state from the parsed file.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_cache: dict[tuple[str, int], dict] = {}
DURATION = re.compile(r"^(-?\d+)\s*([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def read(path: Path) -> dict:
    """The parsed seed file; parsed once per file version, since tests and resets load it often."""
    key = (str(path), Path(path).stat().st_mtime_ns)
    if key not in _cache:
        with open(path, encoding="utf-8") as f:
            _cache[key] = yaml.load(f, Loader=_LOADER)
    return copy.deepcopy(_cache[key])


def seconds(value: Any) -> int:
    """'20m', '2h', '3d', '-30m' or a plain number of seconds."""
    if isinstance(value, (int, float)):
        return int(value)
    m = DURATION.match(str(value).strip())
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30m, 2h, 3d)")
    return int(m.group(1)) * UNITS[m.group(2)]
