"""List filters, ordering and paging as the classic list methods apply them.

A filter key may carry a prefix (crm.deal.list, crm.activity.list, user.get, voximplant.statistic.get):
`=` (the default) equal, `!`/`!=` not equal, `>`, `>=`, `<`, `<=`, `@` in, `!@` not in,
`><`/`!><` between two values, `%`/`!%` contains (case-insensitive), `=%`/`%=`/`!=%`/`!%=`
LIKE with `%` wildcards, `?` treated as contains. A list value without a prefix means "in".
Values compare by the field's kind: int, double, datetime (ISO 8601; a date or a time
without offset is in the portal's time zone) or text (case-insensitive). A field holding
several values (multiple user fields, multifields, task bindings) matches when any does.
Pages hold 50: `start` is the offset, `next` is present only when another page exists,
and `start=-1` gives the first 50 without counting (the huge-data mode).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from .params import BadParams, to_int

PAGE = 50
_PREFIX = re.compile(r"^(!><|><|!=%|!%=|=%|%=|>=|<=|!=|!@|!%|@|>|<|=|!|%|\?)?(.*)$", re.S)
_NEGATIVE = {"!", "!=", "!@", "!><", "!%", "!=%", "!%="}


def split_key(key: str) -> tuple[str, str]:
    prefix, field = _PREFIX.match(key).groups()
    return prefix or "=", field


def to_timestamp(value: Any, tz: ZoneInfo) -> float | None:
    """ISO 8601 date or date-time (naive means the portal's zone) -> unix time; None if not a date."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.strptime(text, "%d.%m.%Y %H:%M:%S") if " " in text else datetime.strptime(text, "%d.%m.%Y")
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def iso(ts: float | None, tz: ZoneInfo) -> str | None:
    """Unix time -> "2026-11-23T10:15:00+03:00" in the portal's zone, as Bitrix24 writes dates."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), tz).isoformat()


def iso_date(day: date, tz: ZoneInfo) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=tz).isoformat()


class Matcher:
    """Compiles one filter object against a field-kind map; `values(entity, field)` reads a field."""

    def __init__(self, flt: dict, kinds: dict[str, str], tz: ZoneInfo,
                 values: Callable[[dict, str], list] | None = None):
        if not isinstance(flt, dict):
            raise BadParams("Parameter 'filter' must be array.")
        self.kinds = kinds
        self.tz = tz
        self._values = values or _plain_values
        self.conditions = []
        for key, value in flt.items():
            prefix, field = split_key(str(key))
            self.conditions.append((prefix, field.upper() if field.upper() in kinds else field, value))

    def __call__(self, entity: dict) -> bool:
        return all(self._check(entity, prefix, field, value) for prefix, field, value in self.conditions)

    # ------------------------------------------------------------------ one condition
    def _check(self, entity: dict, prefix: str, field: str, wanted: Any) -> bool:
        kind = self.kinds.get(field, "string")
        have = self._values(entity, field)
        negative = prefix in _NEGATIVE
        positive = prefix.lstrip("!") or "="
        if positive == "=" and isinstance(wanted, (list, dict)):
            positive = "@"
        hit = any(self._test(positive, kind, h, wanted) for h in have) if have else \
            self._test_empty(positive, wanted)
        return not hit if negative else hit

    def _test_empty(self, op: str, wanted: Any) -> bool:
        """A field with no value equals only an empty filter value."""
        if op == "=":
            return wanted in (None, "", False)
        if op == "@":
            return any(w in (None, "") for w in _listed(wanted))
        return False

    def _test(self, op: str, kind: str, have: Any, wanted: Any) -> bool:
        if op == "@":
            return any(self._eq(kind, have, w) for w in _listed(wanted))
        if op == "=":
            return self._eq(kind, have, wanted)
        if op in (">", ">=", "<", "<="):
            a, b = self._typed(kind, have), self._typed(kind, wanted)
            if a is None or b is None or type(a) is not type(b):
                return False
            return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]
        if op == "><":
            bounds = _listed(wanted)
            if len(bounds) != 2:
                raise BadParams("A '><' filter needs two values.")
            a, low, high = (self._typed(kind, v) for v in (have, *bounds))
            return None not in (a, low, high) and type(a) is type(low) is type(high) and low <= a <= high
        text, pattern = str(have).casefold(), str(wanted).casefold()
        if op in ("%", "?"):
            return pattern in text
        if op in ("=%", "%="):
            regex = ".*".join(re.escape(part) for part in pattern.split("%"))
            return re.fullmatch(regex, text, re.S) is not None
        raise BadParams(f"Unknown filter prefix '{op}'.")

    def _eq(self, kind: str, have: Any, wanted: Any) -> bool:
        a, b = self._typed(kind, have), self._typed(kind, wanted)
        if a is None or b is None:
            return str(have).casefold() == str(wanted).casefold()
        return a == b

    def _typed(self, kind: str, value: Any) -> Any:
        if value is None:
            return None
        if kind in ("int", "double"):
            try:
                number = float(str(value).strip())
            except ValueError:
                return None
            return None if math.isnan(number) else number
        if kind in ("datetime", "date"):
            return to_timestamp(value, self.tz)
        if isinstance(value, bool):
            return "y" if value else "n"
        return str(value).casefold()


def _plain_values(entity: dict, field: str) -> list:
    value = entity.get(field)
    if value is None or value == "" or value == []:
        return []
    return list(value) if isinstance(value, list) else [value]


def _listed(value: Any) -> list:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",")]
    return [value]


def order_by(items: list[dict], order: Any, kinds: dict[str, str], tz: ZoneInfo,
             default: Iterable[tuple[str, bool]] = (("ID", False),)) -> list[dict]:
    """Sort by order {field: ASC|DESC, ...} (several keys in turn), unknown fields ignored; IDs break ties."""
    keys: list[tuple[str, bool]] = []
    if isinstance(order, dict):
        for field, direction in order.items():
            name = str(field).upper() if str(field).upper() in kinds else str(field)
            if name in kinds:
                keys.append((name, str(direction).strip().upper() == "DESC"))
    keys = keys or list(default)
    out = sorted(items, key=lambda e: _sort_key(e, "ID", "int", tz))
    for field, descending in reversed(keys):
        kind = kinds.get(field, "string")
        present = [e for e in out if _sort_key(e, field, kind, tz) is not None]
        missing = [e for e in out if _sort_key(e, field, kind, tz) is None]
        present.sort(key=lambda e: _sort_key(e, field, kind, tz), reverse=descending)
        out = present + missing if not descending else missing + present
    return out


def _sort_key(entity: dict, field: str, kind: str, tz: ZoneInfo):
    value = entity.get(field)
    if value is None or value == "":
        return None
    if kind in ("int", "double"):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if kind in ("datetime", "date"):
        return to_timestamp(value, tz)
    return str(value).casefold()


def page(items: list, start: Any) -> tuple[list, int | None, int | None]:
    """(this page, total or None, next start or None). start=-1: first page, nothing counted."""
    offset = 0 if start in (None, "") else to_int(start, "start")
    if offset < 0:
        return items[:PAGE], None, None
    chunk = items[offset:offset + PAGE]
    following = offset + PAGE if offset + PAGE < len(items) else None
    return chunk, len(items), following
