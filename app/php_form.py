"""Decode PHP-style form bodies (leads[status][0][id]=1) into nested dicts.

amoCRM posts webhooks as application/x-www-form-urlencoded with such keys; every value
arrives as a string. Indexes stay string keys ("0", "1") so order is kept as given.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus

from app.errors import Rejected

_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    pass


MAX_FIELDS = 20000


@lru_cache(maxsize=4096)  # the same few hundred keys arrive again and again
def split_key(key: str) -> tuple[str, ...]:
    head, _, rest = key.partition("[")
    if not head:
        raise FormError(f"key {key!r} has no name before its brackets")
    if not rest:
        return (head,)
    rest = "[" + rest
    parts = _PART.findall(rest)
    if "".join(f"[{p}]" for p in parts) != rest:
        raise FormError(f"key {key!r} is not a well-formed nested key")
    return (head, *parts)


_unquote_key = lru_cache(maxsize=4096)(unquote_plus)  # keys repeat across webhooks; values don't


def pairs(body: str) -> list[tuple[str, str]]:
    """urllib's parse_qsl(keep_blank_values=True, strict_parsing=True), minus its cost of
    unquoting the many parts that hold no escapes; this runs on every webhook."""
    parts = [p for p in body.split("&") if p]
    if len(parts) > MAX_FIELDS:
        raise FormError(f"more than {MAX_FIELDS} fields")
    out = []
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise FormError(f"field {part[:40]!r} has no '='")
        if "%" in key or "+" in key:
            key = _unquote_key(key)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        out.append((key, value))
    return out


def parse(body: str) -> dict:
    root: dict = {}
    for key, value in pairs(body):
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


def webhook(body: bytes | str, what: str) -> dict:
    """A webhook's form body, nested, or Rejected (400) saying why it is not `what`."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("body is not UTF-8 text")
    try:
        return parse(body)
    except FormError as e:
        raise Rejected(f"body is not {what}: {e}")
