"""Webhook subscriptions: POST/GET/DELETE /api/v4/webhooks, one subscription per destination."""

from __future__ import annotations

import copy
from typing import Any

from .core import KNOWN_SETTINGS, AccountCore, _is_int
from .model import Webhook
from .problems import FIELD_MISSING, INVALID_TYPE, NOT_SUPPORTED_CHOICE, NotFound, Problems


class Subscriptions(AccountCore):
    def subscribe(self, body: Any, actor: int) -> Webhook:
        problems = Problems()
        if not isinstance(body, dict):
            problems.add("0", "", INVALID_TYPE, type="object")
            problems.raise_if_any()
        destination, settings, sort = body.get("destination"), body.get("settings"), body.get("sort", 1)
        if not isinstance(destination, str) or not destination.startswith(("http://", "https://")):
            problems.add("0", "destination", FIELD_MISSING if destination is None else NOT_SUPPORTED_CHOICE)
        if not isinstance(settings, list) or not settings:
            problems.add("0", "settings", FIELD_MISSING if settings is None else INVALID_TYPE, type="array")
        else:
            for i, name in enumerate(settings):
                if name not in KNOWN_SETTINGS:
                    problems.add("0", f"settings.{i}", NOT_SUPPORTED_CHOICE)
        if not _is_int(sort):
            problems.add("0", "sort", INVALID_TYPE, type="int")
        problems.raise_if_any()
        with self.lock:
            now = self.now()
            hook = self.webhooks.get(destination)
            if hook is None:
                hook = Webhook(self._new_id("webhook"), destination, [], sort, actor, now, now)
                self.webhooks[destination] = hook
            hook.settings = list(dict.fromkeys(settings))
            hook.sort, hook.updated_at, hook.disabled = sort, now, False
            return copy.deepcopy(hook)

    def unsubscribe(self, destination: Any) -> None:
        with self.lock:
            if not isinstance(destination, str) or destination not in self.webhooks:
                raise NotFound("Webhook not found")
            del self.webhooks[destination]

    def subscriptions(self) -> list[Webhook]:
        with self.lock:
            return sorted((copy.deepcopy(h) for h in self.webhooks.values()), key=lambda h: (h.sort, h.id))
