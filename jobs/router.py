"""Which rules act on which event kinds. Rules register themselves here; the event job
calls every handler subscribed to the event's kind."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from reglament.events import KINDS, Event

Handler = Callable[[Event], object]
_handlers: dict[str, list[tuple[str, Handler]]] = defaultdict(list)


def on(*kinds: str, name: str):
    """Decorator: run the handler for events of these kinds."""
    unknown = set(kinds) - KINDS
    if unknown:
        raise ValueError(f"unknown event kinds: {sorted(unknown)}")

    def register(fn: Handler) -> Handler:
        for kind in kinds:
            if all(n != name for n, _ in _handlers[kind]):
                _handlers[kind].append((name, fn))
        return fn

    return register


def handlers(kind: str) -> list[tuple[str, Handler]]:
    return list(_handlers.get(kind, ()))
