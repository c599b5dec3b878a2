"""The typed event every webhook becomes: one per entity, whatever the source."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Every kind a parser may produce. A rule subscribes to kinds, so keep these stable.
KINDS = frozenset({
    "lead.added", "lead.updated", "lead.status_changed", "lead.responsible_changed",
    "lead.deleted", "lead.restored",
    "task.added", "task.updated", "task.deleted", "task.responsible_changed",
    "note.added",
    "contact.added", "contact.updated",
    "message.incoming", "message.outgoing",
    "chat.message_in", "chat.message_out", "chat.status",
    # From a telephony provider's own webhook (amoCRM's call notes arrive as note.added).
    "call.incoming_missed", "call.incoming_answered", "call.outgoing_failed", "call.outgoing_answered",
})


@dataclass(frozen=True)
class Event:
    account: str
    source: str          # "amocrm" | "wazzup"
    kind: str            # one of KINDS
    entity_id: int | str
    fields: dict[str, Any] = field(default_factory=dict)
    key: str = ""        # dedupe key: equal for a repeated delivery of the same change

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: fields are plain JSON data already, and this runs per event.
        return {"account": self.account, "source": self.source, "kind": self.kind,
                "entity_id": self.entity_id, "fields": self.fields, "key": self.key}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Event":
        return cls(**d)

    @property
    def job_id(self) -> str:
        return f"ev-{self.account}-{self.key}"


def event_key(*parts: Any) -> str:
    """A short stable digest of what identifies one change of one entity."""
    raw = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha1(raw.encode()).hexdigest()[:20]
