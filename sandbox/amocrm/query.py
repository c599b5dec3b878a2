"""PHP-style query strings as amoCRM reads them: filter[statuses][0][status_id]=1, filter[id][]=5, order[id]=desc.

`sandbox.forms.nest()` turns the flat pairs into nested dicts; lists written with [] or [0], [1]
come back as dicts with string index keys, and `as_list()` flattens either form (and comma lists).
"""

from __future__ import annotations

from typing import Any


class BadQuery(ValueError):
    """A query parameter has a value we cannot use (answered as HTTP 400)."""


def as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, dict):
        return [v for v in value.values()]
    if isinstance(value, list):
        return value
    return [v for v in str(value).split(",") if v != ""]


def as_ints(value: Any, name: str) -> set[int] | None:
    """None when the filter is absent; otherwise the set of ints it names."""
    if value is None:
        return None
    try:
        return {int(v) for v in as_list(value)}
    except (TypeError, ValueError):
        raise BadQuery(f"filter[{name}] must be an integer or a list of integers") from None


def time_range(value: Any, name: str) -> tuple[int | None, int | None] | None:
    """filter[x][from]/[to] (inclusive) or a single timestamp meaning exactly that second."""
    if value is None:
        return None
    try:
        if isinstance(value, dict):
            low = int(value["from"]) if value.get("from", "") != "" else None
            high = int(value["to"]) if value.get("to", "") != "" else None
            return low, high
        exact = int(value)
        return exact, exact
    except (TypeError, ValueError):
        raise BadQuery(f"filter[{name}] must be a timestamp or [from]/[to] timestamps") from None


def in_range(ts: int | None, bounds: tuple[int | None, int | None] | None) -> bool:
    if bounds is None:
        return True
    if ts is None:
        return False
    low, high = bounds
    return (low is None or ts >= low) and (high is None or ts <= high)


def order(params: dict, allowed: tuple[str, ...], default: tuple[str, bool]) -> tuple[str, bool]:
    """(field, descending) from order[field]=asc|desc; unknown fields fall back to the default."""
    spec = params.get("order")
    if isinstance(spec, dict):
        for key, direction in spec.items():
            if key in allowed:
                return key, str(direction).lower() == "desc"
    return default


def withs(params: dict) -> set[str]:
    return {w.strip() for w in as_list(params.get("with")) if w.strip()}


def paging(params: dict, default_limit: int = 50, max_limit: int = 250) -> tuple[int, int]:
    """page starts at 1; limit defaults to 50 and is capped at the endpoint's maximum (250, events 100)."""
    try:
        page = max(1, int(params.get("page") or 1))
        limit = int(params.get("limit") or default_limit)
    except (TypeError, ValueError):
        raise BadQuery("page and limit must be integers") from None
    return page, min(max(1, limit), max_limit)
