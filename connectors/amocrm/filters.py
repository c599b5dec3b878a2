"""Query-string pieces for amoCRM list filters, as (name, value) pairs.

amoCRM reads PHP-style nested parameters. Lists go as `filter[x][]=1&filter[x][]=2`
(the form in the official tasks example), ranges as `filter[x][from]` / `filter[x][to]`,
lead statuses as `filter[statuses][i][pipeline_id]` + `filter[statuses][i][status_id]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Union

Pairs = list[tuple[str, object]]
# A moment range: (from, to) with either end None, or a single timestamp.
Range = Union[int, tuple[int | None, int | None], None]


def _many(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def values(name: str, value) -> Pairs:
    """filter[name][]=v for each value; nothing for None."""
    return [(f"filter[{name}][]", v) for v in _many(value)]


def scalar(name: str, value) -> Pairs:
    return [] if value is None else [(f"filter[{name}]", value)]


def moment_range(name: str, value: Range) -> Pairs:
    if value is None:
        return []
    if isinstance(value, int):
        return [(f"filter[{name}]", value)]
    start, end = value
    found: Pairs = []
    if start is not None:
        found.append((f"filter[{name}][from]", int(start)))
    if end is not None:
        found.append((f"filter[{name}][to]", int(end)))
    return found


def lead_statuses(pairs: Iterable[tuple[int, int]] | None) -> Pairs:
    """Leads in any of the given (pipeline_id, status_id) stages; amoCRM needs both ids per stage."""
    found: Pairs = []
    for i, (pipeline_id, status_id) in enumerate(pairs or ()):
        found += [(f"filter[statuses][{i}][pipeline_id]", pipeline_id),
                  (f"filter[statuses][{i}][status_id]", status_id)]
    return found


def flag(name: str, value: bool | None) -> Pairs:
    return [] if value is None else [(f"filter[{name}]", 1 if value else 0)]
