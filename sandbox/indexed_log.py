"""A bounded, thread-safe log whose entries keep stable indexes, so that `?since=N` still
means the same entries after old ones are dropped: the sandboxes' request and delivery logs."""

from __future__ import annotations

import threading


class IndexedLog:
    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self._entries: list[dict] = []
        self._offset = 0   # the index of _entries[0]
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self._lock:
            self._entries.append({"index": self._offset + len(self._entries), **entry})
            if len(self._entries) > self.limit:
                drop = len(self._entries) - self.limit
                del self._entries[:drop]
                self._offset += drop

    def since(self, index: int = 0) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._entries if e["index"] >= index]

    def clear(self) -> None:
        with self._lock:
            self._offset += len(self._entries)
            self._entries.clear()
