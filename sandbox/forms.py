"""PHP-style bracket keys in query strings and form bodies, as both CRMs read them.

`filter[statuses][0][status_id]=1`, `select[]=ID`, `order[id]=desc` become nested dicts;
`[]` appends (the next index, as a string key). What the nested dicts then mean (lists,
comma lists, letter case) is each CRM's own rule, kept in its package.
"""

from __future__ import annotations

import re
from typing import Iterable

BRACKET = re.compile(r"\[([^\[\]]*)\]")


def nest(pairs: Iterable[tuple[str, str]]) -> dict:
    """Flat pairs -> nested dicts; indexes, written or appended with `[]`, stay string keys."""
    root: dict = {}
    for key, value in pairs:
        head, bracket, rest = key.partition("[")
        parts = [head] + (BRACKET.findall(bracket + rest) if bracket else [])
        node = root
        for part in parts[:-1]:
            if part == "":
                part = str(len(node))
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        last = parts[-1]
        if last == "":
            last = str(len(node))
        node[last] = value
    return root
