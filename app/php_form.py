"""Decode PHP-style form bodies (leads[status][0][id]=1) into nested dicts.

amoCRM posts webhooks as application/x-www-form-urlencoded with such keys; every value
arrives as a string. Indexes stay string keys ("0", "1") so order is kept as given.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    pass


def split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not head:
        raise FormError(f"key {key!r} has no name before its brackets")
    if not rest:
        return [head]
    rest = "[" + rest
    parts = _PART.findall(rest)
    if "".join(f"[{p}]" for p in parts) != rest:
        raise FormError(f"key {key!r} is not a well-formed nested key")
    return [head, *parts]


def parse(body: str) -> dict:
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=True, max_num_fields=20000)
    except ValueError as e:
        raise FormError(f"not a form-encoded body: {e}") from None
    root: dict = {}
    for key, value in pairs:
        path = split_key(key)
        node = root
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise FormError(f"key {key!r} conflicts with a plain value of the same name")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise FormError(f"key {key!r} conflicts with nested keys of the same name")
        node[path[-1]] = value
    return root
