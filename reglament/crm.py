"""The CRM as the rules see it: a few plain records, the events rules react to, the actions
they ask for, and the protocol a connector implements.

Nothing here names a CRM field, id or URL. Statuses, task types and loss reasons travel
by name and custom fields by our own logical names (LOGICAL_FIELDS); a connector maps
them to the account's ids. Rules are pure functions over these records:

    decide(event: RuleEvent, snapshot: LeadSnapshot, settings, calendar, now) -> list[Action]

and one executor applies the actions through a connector.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Literal, Protocol, Union

from reglament.events import Event
from reglament.names import NameProblem, same_name

# Custom lead values the rules read or write, by logical name. The account's
# configuration maps each to a CRM field; a value the lead does not have is absent
# (or None) in Lead.fields.
CALLBACK_AT = "callback_at"            # datetime: when the client asked to be called back
TRIAL_AT = "trial_at"                  # datetime: the trial class the client booked
SUBSCRIPTION_END = "subscription_end"  # date or datetime: the end of the client's subscription
REDIAL_ATTEMPT = "redial_attempt"      # "Н1".."Н7" (or an int): failed attempts so far; empty = none
REDIAL_LAST_AT = "redial_last_at"      # datetime: when the last counted failed attempt happened

LOGICAL_FIELDS: dict[str, str] = {
    CALLBACK_AT: "datetime — the time the client named for a callback",
    TRIAL_AT: "datetime — the booked trial class",
    SUBSCRIPTION_END: "date — the end of the subscription",
    REDIAL_ATTEMPT: "text — the redial attempt number «Н1»…«Н7»",
    REDIAL_LAST_AT: "datetime — the time of the last counted failed attempt",
}


# --- records --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Lead:
    """A lead (amoCRM) or deal (Bitrix24). Stage and pipeline are the CRM's own ids as
    strings, for keys and comparisons only; rules decide by the stage's name."""
    id: int
    name: str = ""
    stage: str                                   # the CRM's id of the stage ("47873533", "C1:NEW")
    status: str                                  # the stage's name as the CRM shows it
    pipeline: str = ""                           # the CRM's id of the pipeline (category)
    responsible_id: int | None = None
    created_at: datetime | None = None
    closed: Literal["won", "lost"] | None = None  # set when the lead sits in the CRM's own closing stage
    loss_reason: str | None = None               # the loss reason's name, where the CRM has a list of them
    fields: Mapping[str, Any] = field(default_factory=dict)  # custom values by logical name
    custom: Mapping[str, Any] = field(default_factory=dict)  # every custom value by the CRM's field name
    tags: frozenset[str] = frozenset()

    def value(self, name: str) -> Any:
        """A custom value by logical name; None when empty or not mapped."""
        v = self.fields.get(name)
        return None if v == "" else v

    def custom_value(self, field_name: str | None) -> Any:
        """A custom value by the CRM's field name (as configured, case and spaces aside); None if empty."""
        if not field_name:
            return None
        return next((v for name, v in self.custom.items() if same_name(str(name), field_name) and v not in ("", None)),
                    None)


@dataclass(frozen=True, kw_only=True)
class Task:
    id: int
    lead_id: int
    text: str
    task_type: str | None = None    # the type name ("Звонок", "Встреча", ...)
    due: datetime
    responsible_id: int | None = None
    is_completed: bool = False
    result: str | None = None       # the text the manager closed it with
    created_at: datetime | None = None


class CallDirection(str, enum.Enum):
    IN = "in"
    OUT = "out"


class CallStatus(str, enum.Enum):
    """How a call ended, in seed 001's vocabulary («Разговор состоялся», «Не дозвонился», ...).

    Mapping a telephony result to it is the connector's job. For amoCRM's call_status the
    natural mapping is 4 (разговор состоялся) → TALKED; 3 (нет на месте), 6 (не дозвонился)
    → NOT_REACHED; 7 (номер занят) → BUSY; 1 (оставил сообщение), 2 (перезвонить позже),
    5 (неверный номер) and anything else → OTHER. «Перезвонить», «Отказ» and «Неверный
    контакт» are outcomes a manager records on the lead, not telephony results.
    """
    TALKED = "talked"
    NOT_REACHED = "not_reached"
    BUSY = "busy"
    OTHER = "other"


@dataclass(frozen=True, kw_only=True)
class Call:
    id: str                          # stable per call: a redelivery carries the same id
    direction: CallDirection
    status: CallStatus
    at: datetime                     # when the call was made
    duration: int = 0                # seconds
    responsible_id: int | None = None

    @property
    def failed(self) -> bool:
        """An outbound call that did not get through (the REDIAL trigger)."""
        return self.direction is CallDirection.OUT and self.status in (CallStatus.NOT_REACHED, CallStatus.BUSY)


@dataclass(frozen=True, kw_only=True)
class LeadSnapshot:
    """What a rule knows about one lead, read fresh for each event."""
    lead: Lead
    open_tasks: tuple[Task, ...] = ()
    # The newest task the lead ever had (open or completed, highest id): it marks which
    # "gap without a task" we are in, so a key can repeat within a gap and not across gaps.
    last_task_id: int | None = None
    calls: tuple[Call, ...] = ()     # recent calls, oldest first; optional, no rule needs them yet
    own_task_ids: frozenset[int] = frozenset()  # the open tasks Reglament made (it may close or replace them)

    @classmethod
    def of(cls, lead: Lead, tasks: Iterable[Task]) -> "LeadSnapshot":
        """The lead with its open tasks (by due time); last_task_id is the newest of them."""
        open_tasks = tuple(sorted((t for t in tasks if not t.is_completed), key=lambda t: (t.due, t.id)))
        return cls(lead=lead, open_tasks=open_tasks, last_task_id=max((t.id for t in open_tasks), default=None))

    def people_tasks(self) -> tuple[Task, ...]:
        """The open tasks a person made (Reglament leaves them alone)."""
        return tuple(t for t in self.open_tasks if t.id not in self.own_task_ids)


# --- events ---------------------------------------------------------------------------

LEAD_ADDED = "lead.added"
LEAD_STATUS_CHANGED = "lead.status_changed"
TASK_UPDATED = "task.updated"        # with .task; rules look at completed tasks
TASK_DELETED = "task.deleted"        # with .task (at least its id)
CALL_FAILED = "call.failed"          # with .call: outbound, not reached or busy
CALL_TALKED = "call.talked"          # with .call: the call got through (either direction)
CALL_OTHER = "call.other"            # with .call: any other ending
SWEEP = "sweep"                      # the periodic pass over active leads; at = now
RULE_EVENT_KINDS = frozenset({LEAD_ADDED, LEAD_STATUS_CHANGED, TASK_UPDATED, TASK_DELETED,
                              CALL_FAILED, CALL_TALKED, CALL_OTHER, SWEEP})


@dataclass(frozen=True, kw_only=True)
class RuleEvent:
    """What happened to one lead, as rules see it. The executor builds it from a webhook
    event (reglament.events.Event) or from the sweep, and reads the lead's snapshot."""
    kind: str
    lead_id: int
    at: datetime                     # when the change happened in the CRM (aware)
    task: Task | None = None
    call: Call | None = None

    def __post_init__(self) -> None:
        if self.kind not in RULE_EVENT_KINDS:
            raise ValueError(f"unknown rule event kind {self.kind!r}")
        if self.at.tzinfo is None:
            raise ValueError("RuleEvent.at must be timezone-aware")
        if self.kind.startswith("call.") and self.call is None:
            raise ValueError(f"{self.kind} needs a call")
        if self.kind.startswith("task.") and self.task is None:
            raise ValueError(f"{self.kind} needs a task")

    @classmethod
    def for_call(cls, lead_id: int, call: Call) -> "RuleEvent":
        """The event a finished call becomes; the kind follows from its direction and status."""
        kind = CALL_TALKED if call.status is CallStatus.TALKED else CALL_FAILED if call.failed else CALL_OTHER
        return cls(kind=kind, lead_id=lead_id, at=call.at, call=call)


# --- actions --------------------------------------------------------------------------
# Every action carries action_key: equal keys mean the same intended change, so the
# executor applies each key at most once and a retried job or a sweep that sees the
# same situation never duplicates anything. Keys start with the rule code.

class _Keyed:
    __slots__ = ()
    action_key: str

    @property
    def rule(self) -> str:
        """The code of the rule that asked for this action."""
        return self.action_key.split(":", 1)[0]


@dataclass(frozen=True, kw_only=True)
class CreateTask(_Keyed):
    lead_id: int
    text: str
    task_type: str | None            # type name; None = the CRM's default type
    due: datetime
    responsible_id: int | None
    important: bool = False          # rendered by the executor (see reglament.rule_settings.ImportantMarker)
    action_key: str


@dataclass(frozen=True, kw_only=True)
class SetLeadStatus(_Keyed):
    lead_id: int
    status: str                      # status name in the lead's pipeline
    loss_reason: str | None = None   # loss reason name, for a losing status
    action_key: str


@dataclass(frozen=True, kw_only=True)
class SetLeadField(_Keyed):
    lead_id: int
    field: str                       # logical name (LOGICAL_FIELDS)
    value: Any                       # None clears the field
    action_key: str


@dataclass(frozen=True, kw_only=True)
class AddNote(_Keyed):
    lead_id: int
    text: str
    action_key: str


@dataclass(frozen=True, kw_only=True)
class CompleteTask(_Keyed):
    task_id: int
    lead_id: int | None              # for logs and locks; the task is what changes
    result: str                      # the result text a completed task carries
    action_key: str


@dataclass(frozen=True, kw_only=True)
class SetTaskDue(_Keyed):
    task_id: int
    lead_id: int | None
    due: datetime
    action_key: str


@dataclass(frozen=True, kw_only=True)
class SetResponsible(_Keyed):
    lead_id: int
    user_id: int
    action_key: str


@dataclass(frozen=True, kw_only=True)
class SetTaskResponsible(_Keyed):
    task_id: int
    lead_id: int | None
    user_id: int
    action_key: str


@dataclass(frozen=True, kw_only=True)
class CreateLead(_Keyed):
    """A new lead for a client (e.g. a missed call from a number with no open lead): linked to
    the client's contact when there is one, else with a new contact. The created lead's id
    is returned under the action key, like a created task's."""
    name: str
    phone: str | None
    responsible_id: int | None
    status: str | None = None        # None: the pipeline's first status
    contact_id: int | None = None    # the client's existing contact; None: make one with the phone
    action_key: str


@dataclass(frozen=True, kw_only=True)
class RecheckAt(_Keyed):
    """Run the rules for this lead again at `at` (a deadline a rule waits for, such as the end of
    REDIAL's last wait). Not a change in the CRM: the executor sets a timer."""
    lead_id: int
    at: datetime
    action_key: str


Action = Union[CreateTask, SetLeadStatus, SetLeadField, AddNote, CompleteTask, SetTaskDue, SetResponsible,
               SetTaskResponsible, CreateLead, RecheckAt]


def _key_part(p: Any) -> str:
    if isinstance(p, datetime):
        return p.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if isinstance(p, date):
        return p.isoformat()
    return str(p)


def action_key(rule: str, lead_id: int, *parts: Any) -> str:
    """'REDIAL:123:Н3:20260306T143000Z:task' — readable in logs, stable across retries."""
    return ":".join([rule, str(lead_id), *(_key_part(p) for p in parts)])


# --- the connector --------------------------------------------------------------------

class UnknownName(ValueError):
    """A name the configuration uses (a status, loss reason, lead field, ...) that the account
    does not have, or a lead that is gone. A connector raises it; a retry cannot help, so jobs
    report it once (jobs/names.py) instead of failing again and again."""

    def __init__(self, message: str, *, kind: str | None = None, name: str | None = None):
        super().__init__(message)
        self.kind = kind    # reglament.names kinds: "status", "lead_field", ...
        self.name = name


@dataclass(frozen=True)
class SnapshotPage:
    snapshots: tuple[LeadSnapshot, ...]
    next_cursor: str | None          # None on the last page


@dataclass(frozen=True, kw_only=True)
class Contact:
    """A client's card (contact) with the ids of its leads, newest last or in any order."""
    id: int
    name: str = ""
    responsible_id: int | None = None
    lead_ids: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Touch:
    """Something a person of ours did on a lead that may count as contact with the client:
    a comment, a message sent, or a call (with its outcome and duration)."""
    kind: Literal["comment", "message", "call"]
    at: datetime
    by: int | None = None            # the CRM user; None or 0 for a robot
    call: Call | None = None


class CRM(Protocol):
    """Everything rules and handlers need from a CRM, in the records above. A connector owns
    every mapping from names to ids and fields, and its own caches. Rules never call it."""

    # --- leads and tasks
    def get_lead(self, lead_id: int) -> Lead | None:
        """The lead, read fresh (or as get_lead_snapshot takes it); None when deleted or not
        found (in any pipeline)."""
        ...

    def get_leads(self, lead_ids: Sequence[int]) -> dict[int, Lead]:
        """Several leads, in as few calls as the CRM allows; missing or deleted ones left out."""
        ...

    def get_lead_snapshot(self, lead_id: int) -> LeadSnapshot | None:
        """The lead with its open tasks, last_task_id and custom values by logical name, read
        fresh: not from a cache, except the reading `expand` made seconds ago in the same job
        when no write of Reglament's came since. None when the lead is deleted, not found or
        outside the configured pipeline."""
        ...

    def list_active_leads_with_open_tasks(self, cursor: str | None = None) -> SnapshotPage:
        """One page of snapshots of every lead not in the CRM's own won/lost stages, for
        the sweep (a connector may also leave out the configured terminal statuses, which
        need nothing). Pass the previous page's next_cursor to continue; the page size is
        the connector's choice. Open tasks are complete; last_task_id may be only the
        newest open task (completed tasks are not read for a whole account)."""
        ...

    def active_leads(self) -> Iterator[Lead]:
        """Every lead not won, lost or in a configured terminal status, read in pages."""
        ...

    def stage_name(self, pipeline: str | None, stage: str | None) -> str:
        """The name of a stage by the CRM's ids (as events carry them); "" when unknown."""
        ...

    def has_field(self, field_name: str) -> bool:
        """Whether the account's leads have a custom field of this name."""
        ...

    def open_tasks(self, lead_id: int) -> tuple[Task, ...]:
        """The lead's open tasks, read fresh."""
        ...

    def all_open_tasks(self) -> Iterator[Task]:
        """Every open task on a lead, read in pages."""
        ...

    def task_from_event(self, fields: Mapping[str, Any]) -> Task | None:
        """A task.* event's neutral fields as a Task (the type's name resolved); None when it is
        not on a lead or has no deadline."""
        ...

    def deadline_before(self, task_id: int, due: datetime) -> datetime | None:
        """The deadline a task had before it was moved to `due`, where the CRM keeps that
        history; None when unknown (never a reason for a violation)."""
        ...

    def latest_comment(self, lead_id: int) -> str | None:
        """The text of the lead's newest comment written by a person (not Reglament's)."""
        ...

    def touches(self, lead_id: int, since: datetime) -> list[Touch]:
        """What was done on the lead since a moment: comments, messages and calls."""
        ...

    def call_outcome(self, ref: str | None) -> CallStatus:
        """How a call ended, for a call.ended event that left its outcome out: `ref` is the
        event's pointer to the CRM's record of the call."""
        ...

    # --- pipelines, people and clients
    def arrival_stage(self, pipeline: str | None, status: str | None) -> tuple[str, str, str] | None:
        """(pipeline id, stage id, pipeline name) where new leads arrive: the named pipeline (else
        the main one) and the named status (else its first open stage); None when not found."""
        ...

    def contacts_by_phone(self, phone: str) -> list[Contact]:
        """The contacts with this phone (international digits), with their leads."""
        ...

    def users(self) -> dict[int, str]:
        """The account's users by id (cached by the connector)."""
        ...

    def user_name(self, user_id: int | None) -> str:
        ...

    def own_user_id(self) -> int | None:
        """The CRM user Reglament acts as (its comments are Reglament's, not a person's)."""
        ...

    def lead_url(self, lead_id: int) -> str:
        ...

    def resolve_problems(self) -> list[NameProblem]:
        """Every name the rules use (RuleSettings.used_names, with the account's departments)
        that the account does not have, each with the names it does have; those the rules
        can do without (NameUse.fallback) are marked optional."""
        ...

    # --- events
    def expand(self, event: Event) -> list[Event]:
        """The neutral events (reglament.events.Event) a crm.changed event means: for a CRM
        whose webhooks carry only ids, the connector reads the objects and compares them with
        the last state it saw (a stage moved, a to-do completed, ...). Events of other kinds
        come back as they are."""
        ...

    # --- writes
    def apply(self, actions: Sequence[Action]) -> dict[str, int]:
        """Apply actions, resolving names (status, task type, loss reason, logical field) to
        the account's ids. New leads go first, then a lead's field, status and responsible
        changes, then task changes, new tasks, notes. Returns the ids of the leads, tasks and
        notes created, by action key. Raises on the
        first failure; what was applied before it stays applied, which is why every action
        has a key. Remembering applied keys is the executor's job."""
        ...
