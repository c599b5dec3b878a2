"""Method parameters as Bitrix24 reads them: JSON, form or query, with PHP-style nested keys.

`fields[TITLE]=x`, `filter[>DATE_MODIFY]=...`, `select[]=ID&select[]=TITLE`, `cmd[0]=...`
become nested dicts and lists (a PHP array whose keys are 0..n-1 is a list). JSON bodies
are taken as they are. Query and body are merged, the body winning.

The classic methods read their top-level names in any case (`filter`, `FILTER`, `Filter`:
crm.deal.list's own example sends `SELECT`/`FILTER`/`ORDER`), so `Params.get` falls back
to a case-insensitive match; `Params.exact` is for the few methods that insist on one case.
"""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import parse_qsl

from sandbox import forms


class BadParams(ValueError):
    """A parameter we cannot use; answered 400 with Bitrix24's error body."""

    def __init__(self, description: str, code: str = ""):
        super().__init__(description)
        self.code = code
        self.description = description


def nest(pairs: Iterable[tuple[str, str]]) -> dict:
    """Flat PHP-style pairs -> nested dicts; `[]` appends; all-numeric dicts become lists."""
    return php_lists(forms.nest(pairs))


def php_lists(value: Any) -> Any:
    """Dicts whose keys are exactly "0".."n-1" in order become lists (as json_encode renders PHP arrays)."""
    if isinstance(value, dict):
        value = {k: php_lists(v) for k, v in value.items()}
        if value and list(value) == [str(i) for i in range(len(value))]:
            return list(value.values())
    return value


def php_array(mapping: dict) -> Any:
    """How PHP's json_encode shows an array: [] when empty, a list for keys 0..n-1, else an object."""
    if not mapping:
        return []
    if list(mapping) == list(range(len(mapping))) or list(mapping) == [str(i) for i in range(len(mapping))]:
        return list(mapping.values())
    return {str(k): v for k, v in mapping.items()}


class Params:
    """One call's parameters: case-insensitive top-level names, typed readers that raise BadParams."""

    def __init__(self, data: dict | None = None):
        self.data = data or {}

    def exact(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.data:
            return self.data[name]
        lower = name.lower()
        for key, value in self.data.items():
            if isinstance(key, str) and key.lower() == lower:
                return value
        return default

    def dict(self, name: str) -> dict:
        """An object parameter; absent is {}; a list (PHP array) of pairs is not accepted."""
        value = self.get(name)
        if value in (None, "", []):
            return {}
        if not isinstance(value, dict):
            raise BadParams(f"Parameter '{name}' must be array.")
        return value

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value in (None, ""):
            return default
        return to_int(value, name)

    def str(self, name: str, default: str = "") -> str:
        value = self.get(name)
        return default if value is None else str(value)


def to_int(value: Any, name: str = "value") -> int:
    if isinstance(value, bool):
        raise BadParams(f"{name} is not defined or invalid.")
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise BadParams(f"{name} is not defined or invalid.") from None


def from_query_string(query: str) -> dict:
    return nest(parse_qsl(query, keep_blank_values=True))


def split_command(command: str) -> tuple[str, dict]:
    """A batch command "crm.deal.get?id=5&select[]=ID" -> ("crm.deal.get", {"id": "5", "select": ["ID"]})."""
    method, _, query = str(command).partition("?")
    return method.strip(), from_query_string(query)


_REFERENCE = re.compile(r"\$result\[([^\]]*)\]((?:\[[^\]]*\])*)")


def substitute_results(value: Any, results: dict) -> Any:
    """Replace `$result[cmd][field]...` in string values by what earlier batch commands returned.

    A value that is only a reference takes the referenced value as it is (a list stays a list);
    a reference inside text is replaced by its text; a reference to nothing becomes "".
    """
    if isinstance(value, dict):
        return {k: substitute_results(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_results(v, results) for v in value]
    if not isinstance(value, str) or "$result[" not in value:
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole:
        found = _lookup(results, whole)
        return "" if found is None else found
    return _REFERENCE.sub(lambda m: "" if (found := _lookup(results, m)) is None else str(found), value)


def _lookup(results: dict, match: re.Match) -> Any:
    node: Any = results.get(match.group(1))
    for key in forms.BRACKET.findall(match.group(2)):
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node
