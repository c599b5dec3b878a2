"""The entities one sandbox account holds, as plain dataclasses.

Field names follow amoCRM API v4 where an entity has an API shape, so `views.py`
can render them without renaming. Timestamps are unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WON = 142   # amoCRM's own "Успешно реализовано", shared by every pipeline
LOST = 143  # amoCRM's own "Закрыто и не реализовано", shared by every pipeline
CLOSED = (WON, LOST)

# Entity types as the v4 API names them in paths and in task/note `entity_type`.
LEADS = "leads"
CONTACTS = "contacts"

# Legacy numeric element types used in webhooks (1 contact, 2 lead).
ELEMENT_TYPE = {CONTACTS: 1, LEADS: 2}


@dataclass
class AccountInfo:
    id: int
    name: str
    subdomain: str
    base_link: str            # https://<subdomain>.amocrm.ru, sent as account[_links][self]
    timezone: str
    country: str
    currency: str
    currency_symbol: str
    current_user_id: int      # the user the API token acts as
    created_at: int
    amojo_id: str


@dataclass
class User:
    id: int
    name: str
    email: str
    is_admin: bool = False
    group_id: int = 0
    lang: str = "ru"
    is_active: bool = True


@dataclass
class Status:
    id: int
    name: str
    sort: int
    pipeline_id: int
    color: str
    is_editable: bool = True
    type: int = 0                 # 0 ordinary, 1 unsorted
    terminal: bool = False        # a status the regulations let stay without a task (seed hint)
    task_text: str | None = None  # the next-step task the generator creates in this status


@dataclass
class Pipeline:
    id: int
    name: str
    sort: int
    is_main: bool
    statuses: list[Status]

    def status(self, status_id: int) -> Status | None:
        for s in self.statuses:
            if s.id == status_id:
                return s
        return None


@dataclass
class LossReason:
    id: int
    name: str
    sort: int
    created_at: int
    updated_at: int


@dataclass
class TaskType:
    id: int
    name: str
    code: str | None = None
    color: str | None = None
    icon_id: int | None = None


@dataclass
class CustomField:
    id: int
    name: str
    type: str                     # text, date, date_time, multitext, select, numeric ...
    entity_type: str
    code: str | None = None
    sort: int = 0
    enums: list[dict] | None = None   # [{"id", "value", "sort"}] for select and multitext

    def enum_by_id(self, enum_id: int) -> dict | None:
        return next((e for e in self.enums or [] if e["id"] == enum_id), None)

    def enum_by_value(self, value: str) -> dict | None:
        return next((e for e in self.enums or [] if e["value"] == value), None)


@dataclass
class Tag:
    id: int
    name: str
    color: str | None = None


@dataclass
class Lead:
    id: int
    name: str
    price: int
    responsible_user_id: int
    status_id: int
    pipeline_id: int
    created_by: int
    updated_by: int
    created_at: int
    updated_at: int
    group_id: int = 0
    loss_reason_id: int | None = None
    closed_at: int | None = None
    is_deleted: bool = False
    # [{"field_id": int, "values": [{"value": ..., "enum_id"?: int, "enum_code"?: str}]}]
    custom_fields: list[dict] = field(default_factory=list)
    tag_ids: list[int] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)  # the main contact first


@dataclass
class Contact:
    id: int
    name: str
    first_name: str
    last_name: str
    responsible_user_id: int
    created_by: int
    updated_by: int
    created_at: int
    updated_at: int
    group_id: int = 0
    is_deleted: bool = False
    custom_fields: list[dict] = field(default_factory=list)
    tag_ids: list[int] = field(default_factory=list)
    lead_ids: list[int] = field(default_factory=list)


@dataclass
class Task:
    id: int
    text: str
    complete_till: int
    responsible_user_id: int
    task_type_id: int
    created_by: int
    updated_by: int
    created_at: int
    updated_at: int
    entity_id: int | None = None
    entity_type: str | None = None
    group_id: int = 0
    duration: int = 0
    is_completed: bool = False
    result_text: str | None = None


@dataclass
class Note:
    id: int
    entity_id: int
    entity_type: str
    note_type: str                # v4 string code: common, call_in, call_out, service_message
    params: dict[str, Any]
    created_by: int
    updated_by: int
    created_at: int
    updated_at: int
    responsible_user_id: int
    group_id: int = 0


@dataclass
class Event:
    id: str                       # ULID-like, lower case
    type: str
    entity_type: str              # singular: lead, contact, task
    entity_id: int
    created_by: int
    created_at: int
    value_after: list = field(default_factory=list)
    value_before: list = field(default_factory=list)


@dataclass
class Webhook:
    id: int
    destination: str
    settings: list[str]
    sort: int
    created_by: int
    created_at: int
    updated_at: int
    disabled: bool = False
