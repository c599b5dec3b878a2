"""The typed event every webhook becomes: one per entity, whatever the source."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Every kind a parser may produce. A rule subscribes to kinds, so keep these stable.
# The CRM kinds are the same for every CRM: a CRM's parser turns its webhook into them, with
# the neutral fields below, so no handler reads a CRM's own keys.
KINDS = frozenset({
    "lead.added", "lead.updated", "lead.status_changed", "lead.responsible_changed",
    "lead.deleted", "lead.restored",
    "task.added", "task.updated", "task.deleted", "task.responsible_changed",
    "comment.added",     # a note / timeline comment on a lead or contact
    "message.outgoing",  # an SMS or a message a person sent from the CRM's card
    "call.ended",        # a finished call: from the CRM (a call note) or a telephony provider's own webhook
    "contact.added", "contact.updated",
    "crm.other",         # an event of the CRM no rule needs (another note type, a chat message, ...)
    "crm.changed",       # a CRM whose webhooks carry only ids (Bitrix24): the connector reads what changed
                         # and turns it into the kinds above (CRM.expand) before any rule sees it
    "chat.message_in", "chat.message_out", "chat.status",
    "app.installed",     # our application was installed in the CRM (Bitrix24): bind its events
})

# Neutral fields (absent or None when the CRM does not say):
# lead.*        lead_id, name, pipeline, stage (the CRM's ids as strings), closed ("won", "lost" or None),
#               responsible_id, previous_responsible_id, by (who changed it), created_at, at (unix times),
#               values (custom values by the CRM's field name)
# task.*        task_id, lead_id (None for a task not on a lead), text, task_type (the type's id as a string),
#               due, responsible_id, completed, result, created_by, by, created_at, at; previous_due
#               (task.updated, when the CRM's event says what the deadline was)
# comment.added, message.outgoing
#               lead_id, text, by (0: a robot), at
# call.ended    call_id, direction ("in" | "out"), outcome ("talked", "not_reached", "busy", "other"; None when
#               the CRM must be asked: `ref` says where), duration, phone (digits), lead_id (None when only the
#               phone is known), user_id, at, ref
# contact.*     contact_id, name, responsible_id, at
# crm.changed   entity (the CRM's object type), id, event (the CRM's event name), at

@dataclass(frozen=True)
class Event:
    account: str
    source: str          # "amocrm", "wazzup", "telephony.zadarma", ...
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
