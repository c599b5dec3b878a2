"""The CRM protocol (reglament.crm) over Bitrix24 REST: deals by default (leads as an option),
categories as pipelines, stages by name, the next step as a to-do (or a task bound to the
deal), comments in the timeline.

Reads
- One deal: the deal and its open activities in one `batch` (1 request). The rules of an
  event's job use the reading its `expand` made (`_reading`), unless we wrote to the deal since.
- The sweep: every open activity of deals and every active deal, each list read whole by
  `gather` (5,000 deals: 3 requests), then served in pages from memory.
- An event (`expand`): the deal, its open activities and what became of the activities it
  had, in one `batch`; compared with the state last seen (changes.py), kept in Redis. The
  add events of our own to-dos and comments, and the update event of our own field-only
  write, are known as ours and cost no request (`_remember_ours`, `_settle_fields`).
- The catch-up (`changed_since`): the lists of what changed, compared with the states
  here; only deals that differ are read.

Writes (`apply`): deal updates, activity changes, new to-dos (or tasks) and comments in one
`batch` (client.write), each create made once per action key.

The portal's vocabulary (categories, stages, users, deal fields) costs 2 requests; it is
kept in Redis for NAMES_TTL and read again at once when a name or id is not found in it.
Bitrix24 has no task types and no loss-reason list: a task type is ignored (the important
marker falls back to its prefix) and the loss reason is a deal field
(`bitrix24.loss_reason_field`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import redis

from connectors import vocabulary
from connectors.bitrix24.changes import DealState, TaskState, compare
from connectors.bitrix24.client import PAGE, Bitrix24Client, items_of
from connectors.bitrix24.errors import NotFound, OperationTimeLimit
from reglament import keys, rule_settings
from reglament import names as kinds
from reglament.config import Account
from reglament.crm import (Action, AddNote, Call, CallDirection, CallStatus, CompleteTask, Contact, CreateLead,
                           CreateTask, Lead, LeadSnapshot, SetLeadField, SetLeadStatus, SetResponsible, SetTaskDue,
                           SetTaskResponsible, SnapshotPage, Task, Touch, UnknownName)
from reglament.events import Event, event_key
from reglament.names import NameProblem, same_name
from reglament.rule_settings import RuleSettings

log = logging.getLogger("reglament.bitrix24")

NAMES_TTL = 600                 # seconds the portal's vocabulary is trusted
SWEEP_PAGE = 250
CALLS_SEEN_TTL = 7 * 86400     # the catch-up never looks back further than this
STATE_TTL = 90 * 86400          # a deal untouched this long is seen afresh (its first event is a baseline)
REUSE = 5.0                     # seconds a deal's reading serves the job that made it (see _read)
OURS_TTL = 86400                # how long the echo of a to-do or comment we made is expected
ECHO_TTL = 60                   # how long the update event of a deal whose fields we wrote is expected
# Take one expected update event of a deal (1), or none is expected (0).
TAKE_ECHO = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) return 1 end
return 0
"""
DATE_TYPES = frozenset({"date", "datetime"})
ACTIVITY_SELECT = ["ID", "OWNER_TYPE_ID", "OWNER_ID", "PROVIDER_ID", "SUBJECT", "DEADLINE", "RESPONSIBLE_ID",
                   "COMPLETED", "CREATED", "ASSOCIATED_ENTITY_ID", "DESCRIPTION", "AUTHOR_ID", "EDITOR_ID"]
# Open activities that are not a next step a manager set: an unanswered e-mail, an open-lines chat.
NOT_NEXT_STEPS = {"CRM_EMAIL", "IMOPENLINES_SESSION"}
# A task's activity: TASKS_TASK in the reference; newer portals are seen to write CRM_TASKS_TASK (UNCONFIRMED).
TASK_PROVIDERS = {"TASKS_TASK", "CRM_TASKS_TASK"}
CONTACT_OWNER_TYPE = 3
CLOSED = {"S": "won", "F": "lost"}

# CALL_FAILED_CODE (reference §2.4) → how the call ended, as the rules see it.
CALL_CODES: dict[str, CallStatus] = {
    "200": CallStatus.TALKED,
    "304": CallStatus.NOT_REACHED,   # missed
    "480": CallStatus.NOT_REACHED,   # temporarily unavailable
    "603": CallStatus.NOT_REACHED,   # declined
    "603-S": CallStatus.NOT_REACHED, # cancelled
    "486": CallStatus.BUSY,
}
OUTGOING_CALL_TYPES = {"1", "4", "5"}    # outgoing, callback, informational; 2 and 3 are incoming


@dataclass(frozen=True)
class Entity:
    """What the connector calls a lead: a deal (default) or a Bitrix24 lead."""
    name: str            # crm.<name>.get, the timeline's ENTITY_TYPE
    owner_type: int      # OWNER_TYPE_ID of its activities
    prefix: str          # UF_CRM_TASK binding prefix
    stage: str           # the stage's field
    semantic: str        # P / S / F


@dataclass(frozen=True)
class Reading:
    """A deal and its open activities as one `_read` found them, and the deal's count of our
    writes (`_writes_key`) just before: while that count stands, nothing Reglament did has
    changed the deal since."""
    at: float            # time.monotonic()
    writes: int
    deal: dict
    acts: list[dict]
    portal_at: float | None = None   # when the portal began it, by its clock (None: not said)


ENTITIES = {"deals": Entity("deal", 2, "D", "STAGE_ID", "STAGE_SEMANTIC_ID"),
            "leads": Entity("lead", 1, "L", "STATUS_ID", "STATUS_SEMANTIC_ID")}


def call_status(code: Any) -> CallStatus:
    return CALL_CODES.get(str(code or "").upper(), CallStatus.OTHER)


def _label(raw: dict) -> str:
    """A user field's label: a string, or (on real portals) one per language."""
    for key in ("EDIT_FORM_LABEL", "LIST_COLUMN_LABEL", "LIST_FILTER_LABEL"):
        label = raw.get(key)
        if isinstance(label, dict):
            label = label.get("ru") or label.get("en") or next(iter(label.values()), None)
        if label:
            return str(label)
    return str(raw.get("FIELD_NAME") or "")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "", "0", 0) else None
    except (TypeError, ValueError):
        return None


# --- the portal's vocabulary -----------------------------------------------------------

@dataclass
class Names:
    pipelines: dict[str, str] = field(default_factory=dict)             # category id → name ("" for leads)
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)   # category → stage id → name, in order
    semantics: dict[str, str] = field(default_factory=dict)             # stage id → P / S / F
    users: dict[int, str] = field(default_factory=dict)
    fields: dict[str, tuple[str, str, dict[str, str]]] = field(default_factory=dict)  # UF_ → (label, type, enum)

    @classmethod
    def read(cls, client: Bitrix24Client, entity: Entity) -> "Names":
        calls = {"users": ("user.get", {}),
                 "fields": (f"crm.{entity.name}.userfield.list", {})}
        if entity.name == "deal":
            calls["categories"] = ("crm.category.list", {"entityTypeId": 2})
        else:
            calls["s"] = ("crm.status.list", {"filter": {"ENTITY_ID": "STATUS"}, "order": {"SORT": "ASC"}})
        got = client.gather(calls, keys={"categories": "categories"})
        names = cls(users={int(u["ID"]): " ".join(p for p in (u.get("NAME"), u.get("LAST_NAME")) if p).strip()
                           or str(u["ID"]) for u in got["users"] if u.get("ACTIVE") not in (False, "N")})
        for f in got["fields"]:
            enum = {str(i["ID"]): str(i["VALUE"]) for i in f.get("LIST") or []}
            names.fields[f["FIELD_NAME"]] = (_label(f), str(f.get("USER_TYPE_ID") or "string"), enum)
        if entity.name == "deal":
            categories = sorted(got["categories"], key=lambda c: (str(c.get("isDefault")) != "Y", int(c["id"])))
            names.pipelines = {str(c["id"]): c["name"] for c in categories}
            stages = client.gather({f"s{c}": ("crm.status.list", {
                "filter": {"ENTITY_ID": "DEAL_STAGE" if c == "0" else f"DEAL_STAGE_{c}"}, "order": {"SORT": "ASC"}})
                for c in names.pipelines})
        else:
            names.pipelines, stages = {"": "Лиды"}, {"s": got["s"]}
        for c in names.pipelines:
            rows = sorted(stages.get(f"s{c}", []), key=lambda s: int(s.get("SORT") or 0))
            names.statuses[c] = {s["STATUS_ID"]: s["NAME"] for s in rows}
            for s in rows:
                semantics = s.get("SEMANTICS") or (s.get("EXTRA") or {}).get("SEMANTICS") or "P"
                names.semantics[s["STATUS_ID"]] = {"success": "S", "failure": "F"}.get(semantics, semantics)
        return names

    def to_json(self) -> str:
        return json.dumps({"pipelines": self.pipelines, "statuses": self.statuses, "semantics": self.semantics,
                           "users": self.users, "fields": self.fields}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Names":
        d = json.loads(text)
        return cls(pipelines=d["pipelines"], statuses=d["statuses"], semantics=d["semantics"],
                   users={int(k): v for k, v in d["users"].items()},
                   fields={k: (v[0], v[1], v[2]) for k, v in d["fields"].items()})

    def closed_stages(self) -> frozenset[str]:
        return frozenset(s for s, sem in self.semantics.items() if sem in CLOSED)

    def field_named(self, label: str | None) -> str | None:
        """The UF_ name of the field with this label (or this UF_ name)."""
        if not label:
            return None
        return next((k for k, (name, _, _) in self.fields.items() if same_name(name, label) or k == label), None)


# --- the connector -----------------------------------------------------------------------

class Bitrix24CRM:
    """reglament.crm.CRM for one Bitrix24 portal. Cheap to create; shared state lives in Redis."""

    def __init__(self, account: Account, client: Bitrix24Client, r: redis.Redis,
                 settings: RuleSettings | None = None, *, names_ttl: float = NAMES_TTL):
        if account.bitrix24 is None:
            raise ValueError(f"account {account.id} has no bitrix24: section")
        self.account = account
        self.b24 = account.bitrix24
        self.entity = ENTITIES[self.b24.entity]
        self.client = client
        self.r = r
        self.settings = settings or rule_settings.load(account.rules)
        self.tz = ZoneInfo(account.timezone)
        self.names_ttl = names_ttl
        self._names = vocabulary.Cached(r, self._key("names"), names_ttl,
                                        lambda: Names.read(self.client, self.entity), Names.from_json)
        self._pipeline_of: dict[int, str] = {}
        self._sweep: tuple[str, list[LeadSnapshot]] | None = None
        self._readings: dict[int, Reading] = {}
        self._take_echo = r.register_script(TAKE_ECHO)

    @classmethod
    def for_account(cls, account: Account, r: redis.Redis, settings: RuleSettings | None = None,
                    **client_options) -> "Bitrix24CRM":
        if account.bitrix24 is None:
            raise ValueError(f"account {account.id} has no bitrix24: section")
        return cls(account, Bitrix24Client(account.id, account.bitrix24, r, **client_options), r, settings)

    def __repr__(self) -> str:
        return f"Bitrix24CRM(account={self.account.id!r})"

    def _key(self, *parts: Any) -> str:
        return keys.key(self.account.id, "bitrix24", *parts)

    # ------------------------------------------------------------------ names

    def names(self, refresh: bool = False) -> Names:
        """The portal's vocabulary: from this object, else Redis, else 2 requests."""
        return self._names.get(refresh)

    def _lookup(self, find):
        return self._names.lookup(find)

    def _watched_pipelines(self, names: Names) -> list[str]:
        if not self.settings.pipeline or self.entity.name == "lead":
            return list(names.pipelines)
        found = vocabulary.find(names.pipelines, self.settings.pipeline)
        if found is None:
            raise UnknownName(f"pipeline «{self.settings.pipeline}» not found; the portal has: "
                              f"{vocabulary.listing(names.pipelines.values())}", kind=kinds.PIPELINE,
                              name=self.settings.pipeline)
        return [found]

    def _status_id(self, pipeline: str, name: str) -> str:
        found, names = self._lookup(lambda n: vocabulary.find(n.statuses.get(pipeline, {}), name))
        if found is not None:
            return found
        raise UnknownName(f"status «{name}» not found in pipeline «{names.pipelines.get(pipeline, pipeline)}»; "
                          f"it has: {vocabulary.listing(names.statuses.get(pipeline, {}).values())}",
                          kind=kinds.STATUS, name=name)

    def _field(self, logical_or_label: str, *, logical: bool) -> tuple[str, str, dict[str, str]]:
        """(UF_ name, type, enum items) of a mapped logical field or of a field by label."""
        label = self.settings.fields.mapped().get(logical_or_label) if logical else logical_or_label
        if not label:
            raise UnknownName(f"rules.fields.{logical_or_label} is not set, so Reglament cannot write it",
                              kind=kinds.LEAD_FIELD, name=logical_or_label)
        found, names = self._lookup(lambda n: n.field_named(label))
        if found is None:
            raise UnknownName(f"{self.entity.name} field «{label}» not found; fields: "
                              f"{vocabulary.listing(f[0] for f in names.fields.values())}",
                              kind=kinds.LEAD_FIELD, name=label)
        return (found, *names.fields[found][1:])

    def resolve_problems(self) -> list[NameProblem]:
        names = self.names(refresh=True)
        problems = vocabulary.problems(self.settings, self.account.departments, vocabulary.Vocabulary(
            pipelines=names.pipelines, statuses=names.statuses, closed=names.closed_stages(), users=names.users,
            task_types=None, loss_reasons=self._loss_reasons(names),
            lead_fields={label: t for label, t, _ in names.fields.values()}, date_types=DATE_TYPES))
        if names.field_named(self.b24.loss_reason_field) is None:
            problems.append(NameProblem(f"bitrix24.loss_reason_field: {self.entity.name} field "
                                        f"«{self.b24.loss_reason_field}» not found; without it a loss reason "
                                        "is not recorded", optional=True))
        return problems

    def _loss_reasons(self, names: Names) -> dict[str, str] | None:
        """The loss-reason field's list items; None (any text) for a text field or no field."""
        uf = names.field_named(self.b24.loss_reason_field)
        return dict(names.fields[uf][2]) if uf and names.fields[uf][2] else None

    # ------------------------------------------------------------------ records

    def _moment(self, value: Any) -> datetime | None:
        if value in (None, ""):
            return None
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=self.tz)

    def _iso(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).isoformat(timespec="seconds")

    def _value(self, raw: Any, uf_type: str, enum: Mapping[str, str]) -> Any:
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if raw in (None, "", False):
            return None
        if uf_type in DATE_TYPES:
            moment = self._moment(raw)
            if moment is None:
                return None
            return moment.astimezone(self.tz).date() if uf_type == "date" else moment
        if enum:
            return enum.get(str(raw), raw)
        return raw

    def _wire_value(self, value: Any, uf_type: str, enum: Mapping[str, str]) -> Any:
        if value is None or value == "":
            return ""
        if uf_type in DATE_TYPES:
            if isinstance(value, datetime):
                moment = value
            elif isinstance(value, date):
                return value.isoformat()
            else:
                moment = datetime.fromisoformat(str(value))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=self.tz)
            return moment.astimezone(self.tz).date().isoformat() if uf_type == "date" else self._iso(moment)
        if enum:
            found = vocabulary.find(enum, str(value))
            if found is None:
                raise UnknownName(f"«{value}» is not an item of the list field; items: "
                                  f"{vocabulary.listing(enum.values())}", kind=kinds.LOSS_REASON, name=str(value))
            return found
        return value if isinstance(value, (int, float)) else str(value)

    def _pipeline(self, raw: dict) -> str:
        return str(raw.get("CATEGORY_ID") or "0") if self.entity.name == "deal" else ""

    def _lead(self, raw: dict, names: Names) -> Lead:
        pipeline, stage = self._pipeline(raw), str(raw.get(self.entity.stage) or "")
        status = names.statuses.get(pipeline, {}).get(stage)
        if status is None:
            names = self.names(refresh=True)   # a stage added or renamed since we last looked
            status = names.statuses.get(pipeline, {}).get(stage)
        custom, fields = {}, {}
        for uf, (label, uf_type, enum) in names.fields.items():
            if uf in raw:
                custom[label] = self._value(raw[uf], uf_type, enum)
        for logical, label in self.settings.fields.mapped().items():
            uf = names.field_named(label)
            if uf and uf in raw:
                fields[logical] = custom[names.fields[uf][0]]
        semantic = raw.get(self.entity.semantic) or names.semantics.get(stage, "P")
        loss_uf = names.field_named(self.b24.loss_reason_field)
        lead_id = int(raw["ID"])
        self._pipeline_of[lead_id] = pipeline
        return Lead(id=lead_id, name=raw.get("TITLE") or "", stage=stage, status=status or "", pipeline=pipeline,
                    responsible_id=_int(raw.get("ASSIGNED_BY_ID")), created_at=self._moment(raw.get("DATE_CREATE")),
                    closed=CLOSED.get(semantic),
                    loss_reason=custom.get(names.fields[loss_uf][0]) if loss_uf else None,
                    fields=fields, custom=custom)

    def _task(self, raw: dict) -> Task:
        return Task(id=int(raw["ID"]), lead_id=int(raw.get("OWNER_ID") or 0), text=raw.get("SUBJECT") or "",
                    due=self._moment(raw.get("DEADLINE")) or datetime.now(timezone.utc),
                    responsible_id=_int(raw.get("RESPONSIBLE_ID")), is_completed=raw.get("COMPLETED") == "Y",
                    created_at=self._moment(raw.get("CREATED")))

    def _watched(self, lead: Lead, names: Names) -> bool:
        return not self.settings.pipeline or lead.pipeline in self._watched_pipelines(names)

    # ------------------------------------------------------------------ reads

    def _open_activities(self, owner_ids: Sequence[int] | None = None) -> tuple[str, dict]:
        flt: dict[str, Any] = {"OWNER_TYPE_ID": self.entity.owner_type, "COMPLETED": "N"}
        if owner_ids is not None:
            flt["OWNER_ID"] = owner_ids[0] if len(owner_ids) == 1 else list(owner_ids)
        return "crm.activity.list", {"filter": flt, "select": ACTIVITY_SELECT, "order": {"ID": "ASC"}}

    @staticmethod
    def _next_steps(rows: Iterable[dict]) -> list[dict]:
        return [a for a in rows if a.get("PROVIDER_ID") not in NOT_NEXT_STEPS]

    def _writes_key(self, lead_id: int) -> str:
        return self._key("writes", lead_id)

    def _read(self, lead_id: int, extra: Mapping[str, tuple[str, dict]] | None = None
              ) -> tuple[dict, list[dict], dict] | None:
        """The deal, its open activities and any extra calls, in one batch; None when the deal is gone.

        The reading is kept for REUSE seconds: a crm.changed job reads the deal in `expand`
        and then the executor asks for its snapshot, and Bitrix24's 2 requests a second
        should not pay twice for one look."""
        writes = int(self.r.get(self._writes_key(lead_id)) or 0)
        calls = {"lead": (f"crm.{self.entity.name}.get", {"id": lead_id}), "acts": self._open_activities([lead_id]),
                 **(extra or {})}
        answer = self.client.batch(calls)
        if isinstance(answer.errors.get("lead"), NotFound):
            self._readings.pop(lead_id, None)
            return None
        answer.raise_first()
        found = dict(answer.results)
        if "acts" in answer.next:  # more than a page of open activities: rare, read the rest
            found["acts"] = self.client.list(*self._open_activities([lead_id]))
        deal, acts = found["lead"], self._next_steps(items_of(found["acts"]))
        now = time.monotonic()
        self._readings = {i: g for i, g in self._readings.items() if now - g.at < REUSE}
        self._readings[lead_id] = Reading(now, writes, deal, acts, answer.started)
        return deal, acts, found

    def _reading(self, lead_id: int) -> Reading | None:
        """The deal's reading of the last REUSE seconds, if no write of ours came since."""
        got = self._readings.get(lead_id)
        if got is None or time.monotonic() - got.at >= REUSE:
            return None
        if int(self.r.get(self._writes_key(lead_id)) or 0) != got.writes:
            del self._readings[lead_id]
            return None
        return got

    def get_lead_snapshot(self, lead_id: int) -> LeadSnapshot | None:
        """The deal and its open activities: the reading `expand` made a moment ago in this
        job when no write of ours came since (a person's change since then brings its own
        event), else one batch."""
        reading = self._reading(lead_id)
        if reading is not None:
            deal, acts = reading.deal, reading.acts
        else:
            got = self._read(lead_id)
            if got is None:
                return None
            deal, acts, _ = got
        names = self.names()
        lead = self._lead(deal, names)
        if not self._watched(lead, names):
            return None
        return LeadSnapshot.of(lead, [self._task(a) for a in acts])

    def get_lead(self, lead_id: int) -> Lead | None:
        reading = self._reading(lead_id)   # as for the snapshot: this job's reading, if still good
        if reading is not None:
            return self._lead(reading.deal, self.names())
        try:
            raw = self.client.call(f"crm.{self.entity.name}.get", {"id": lead_id})
        except NotFound:
            return None
        return self._lead(raw, self.names()) if raw else None

    def get_leads(self, lead_ids: Sequence[int]) -> dict[int, Lead]:
        ids = list(dict.fromkeys(int(i) for i in lead_ids))
        if not ids:
            return {}
        names = self.names()
        rows = self.client.list(f"crm.{self.entity.name}.list", {"filter": {"@ID": ids}, "select": ["*", "UF_*"]})
        return {int(raw["ID"]): self._lead(raw, names) for raw in rows}

    def _active_filter(self, names: Names) -> dict:
        terminal = self.settings.terminal_statuses
        pipelines = self._watched_pipelines(names)
        stages = [s for p in pipelines for s, name in names.statuses.get(p, {}).items()
                  if names.semantics.get(s, "P") not in CLOSED and not any(same_name(name, t) for t in terminal)]
        flt: dict[str, Any] = {"@" + self.entity.stage: stages or ["-"]}
        if self.entity.name == "deal" and self.settings.pipeline:
            flt["CATEGORY_ID"] = pipelines[0]
        return flt

    def active_leads(self) -> Iterator[Lead]:
        names = self.names()
        for page in self.client.pages(f"crm.{self.entity.name}.list", {
                "filter": self._active_filter(names), "select": ["*", "UF_*"], "order": {"ID": "ASC"}}):
            for raw in page:
                lead = self._lead(raw, names)
                if lead.closed is None:
                    yield lead

    def list_active_leads_with_open_tasks(self, cursor: str | None = None) -> SnapshotPage:
        """Every active deal with its open activities: the first page reads both lists whole
        (`gather`: 5,000 deals in 3 requests), the rest are served from memory."""
        session, page = cursor.rsplit(":", 1) if cursor else (uuid.uuid4().hex, "0")
        if self._sweep is None or self._sweep[0] != session:
            names = self.names()
            got = self.client.gather({
                "leads": (f"crm.{self.entity.name}.list", {"filter": self._active_filter(names),
                                                           "select": ["*", "UF_*"], "order": {"ID": "ASC"}}),
                "acts": self._open_activities()})
            by_lead: dict[int, list[Task]] = defaultdict(list)
            for a in self._next_steps(got["acts"]):
                by_lead[int(a["OWNER_ID"])].append(self._task(a))
            snapshots = []
            for raw in got["leads"]:
                lead = self._lead(raw, names)
                if lead.closed is None:
                    snapshots.append(LeadSnapshot.of(lead, by_lead.get(lead.id, ())))
            self._sweep = (session, snapshots)
        start = int(page) * SWEEP_PAGE
        everything = self._sweep[1]
        more = start + SWEEP_PAGE < len(everything)
        if not more:
            self._sweep = None
        return SnapshotPage(tuple(everything[start:start + SWEEP_PAGE]), f"{session}:{int(page) + 1}" if more else None)

    def stage_name(self, pipeline: str | None, stage: str | None) -> str:
        if not stage:
            return ""
        found, _ = self._lookup(lambda n: n.statuses.get(pipeline or "", {}).get(stage)
                                or next((s[stage] for s in n.statuses.values() if stage in s), None))
        return found or ""

    def has_field(self, field_name: str) -> bool:
        return self.names().field_named(field_name) is not None

    def open_tasks(self, lead_id: int) -> tuple[Task, ...]:
        rows = self._next_steps(self.client.list(*self._open_activities([lead_id])))
        return tuple(self._task(a) for a in rows)

    def all_open_tasks(self) -> Iterator[Task]:
        for page in self.client.pages(*self._open_activities()):
            for a in self._next_steps(page):
                yield self._task(a)

    def task_from_event(self, fields: Mapping[str, Any]) -> Task | None:
        try:
            due = datetime.fromtimestamp(int(fields["due"]), timezone.utc) if fields.get("due") not in (None, "") \
                else None
        except (TypeError, ValueError):
            due = None
        if not fields.get("lead_id") or due is None:
            return None
        return Task(id=int(fields["task_id"]), lead_id=int(fields["lead_id"]), text=fields.get("text") or "",
                    task_type=None, due=due, responsible_id=fields.get("responsible_id"),
                    is_completed=bool(fields.get("completed")), result=fields.get("result"))

    def deadline_before(self, task_id: int, due: datetime) -> datetime | None:
        """A to-do keeps no history of its deadline (None); a task bound to the deal does:
        tasks.task.history.list, read in the same batch as the activity (one request) through
        `$result[act][ASSOCIATED_ENTITY_ID]`. None when unknown, never a false violation."""
        answer = self.client.batch({
            "act": ("crm.activity.get", {"id": task_id}),
            "history": ("tasks.task.history.list", {"taskId": "$result[act][ASSOCIATED_ENTITY_ID]",
                                                    "filter": {"FIELD": "DEADLINE"}})})
        act = answer.results.get("act")
        if not isinstance(act, dict) or act.get("PROVIDER_ID") not in TASK_PROVIDERS \
                or not _int(act.get("ASSOCIATED_ENTITY_ID")):
            return None   # a to-do (or gone): no history to read
        if "history" in answer.errors:
            if isinstance(answer.errors["history"], OperationTimeLimit):
                raise answer.errors["history"]
            log.warning("task history unavailable for activity %s: %s", task_id, answer.errors["history"],
                        extra={"account": self.account.id})
            return None
        rows = [h for h in items_of(answer.results.get("history"), "list")
                if isinstance(h, dict) and str(h.get("field") or "").upper() == "DEADLINE"]
        rows.sort(key=lambda h: (str(h.get("createdDate") or ""), _int(h.get("id")) or 0), reverse=True)
        for h in rows:   # the newest move to `due` says where it came from
            value = h.get("value") or {}
            after = self._history_moment(value.get("to"))
            if after is not None and int(after.timestamp()) == int(due.timestamp()):
                return self._history_moment(value.get("from"))
        return None

    def _history_moment(self, value: Any) -> datetime | None:
        """A DEADLINE value of the task history. Its format is UNCONFIRMED (the docs show no
        DEADLINE entry): unix seconds, ISO-8601 or the portal's "dd.mm.yyyy hh:mm[:ss]"."""
        text = str(value or "").strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text), timezone.utc) if int(text) else None
        for pattern in ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M"):
            try:
                return datetime.strptime(text, pattern).replace(tzinfo=self.tz)
            except ValueError:
                pass
        return self._moment(text)

    def _comments(self, lead_id: int) -> tuple[str, dict]:
        return "crm.timeline.comment.list", {"filter": {"ENTITY_TYPE": self.entity.name, "ENTITY_ID": lead_id},
                                             "select": ["ID", "COMMENT", "CREATED", "AUTHOR_ID"]}

    def latest_comment(self, lead_id: int) -> str | None:
        rows = self.client.list(*self._comments(lead_id))
        texts = [(self._moment(c.get("CREATED")) or datetime.min.replace(tzinfo=timezone.utc), int(c["ID"]),
                  c.get("COMMENT") or "") for c in rows]
        texts = [t for t in texts if t[2] and not t[2].startswith("Reglament")]
        return max(texts)[2] if texts else None

    def touches(self, lead_id: int, since: datetime) -> list[Touch]:
        """Timeline comments and calls since a moment, in one batch. A PBX call is bound to the
        client (telephony.externalcall.register takes CONTACT, COMPANY or LEAD, never DEAL), so
        a deal's calls are also those of its contact: crm.deal.contact.items.get, and the first
        contact's calls through `$result[contacts][0][CONTACT_ID]`. Whether a portal also binds
        the call to the deal is UNCONFIRMED: both are read, the same activity counted once."""
        commands = {"comments": self._comments(lead_id),
                    "calls": self._call_activities({"OWNER_TYPE_ID": self.entity.owner_type, "OWNER_ID": lead_id})}
        if self.entity.name == "deal":
            commands["contacts"] = ("crm.deal.contact.items.get", {"id": lead_id})
            # start=-1: one page, nothing counted, so the reference is never sent again for a next page
            commands["client_calls"] = self._call_activities({"OWNER_TYPE_ID": CONTACT_OWNER_TYPE,
                                                              "OWNER_ID": "$result[contacts][0][CONTACT_ID]",
                                                              ">=START_TIME": self._iso(since)}, start=-1)
        answer = self.client.batch(commands)
        for key in ("comments", "calls"):
            if key in answer.errors:
                raise answer.errors[key]
        got = {key: self.client.list(*commands[key]) if key in answer.next else items_of(answer.results.get(key))
               for key in ("comments", "calls")}
        calls = {str(a["ID"]): a for a in got["calls"]}
        for a in self._client_calls(commands, answer, since):
            calls.setdefault(str(a["ID"]), a)
        found = []
        for c in got["comments"]:
            at = self._moment(c.get("CREATED"))
            if at is not None and at >= since:
                found.append(Touch(kind="comment", at=at, by=_int(c.get("AUTHOR_ID"))))
        for a in calls.values():
            at = self._moment(a.get("START_TIME") or a.get("CREATED"))
            if at is None or at < since:
                continue
            start, end = self._moment(a.get("START_TIME")), self._moment(a.get("END_TIME"))
            duration = int((end - start).total_seconds()) if start and end else 0
            call = Call(id=str(a.get("ORIGIN_ID") or f"activity-{a['ID']}"),
                        direction=CallDirection.IN if str(a.get("DIRECTION")) == "1" else CallDirection.OUT,
                        status=CallStatus.TALKED if duration > 0 else CallStatus.NOT_REACHED, at=at,
                        duration=duration, responsible_id=_int(a.get("RESPONSIBLE_ID")))
            found.append(Touch(kind="call", at=at, by=_int(a.get("RESPONSIBLE_ID")), call=call))
        return found

    def _call_activities(self, flt: dict, **extra: Any) -> tuple[str, dict]:
        return "crm.activity.list", {"filter": {**flt, "PROVIDER_ID": "VOXIMPLANT_CALL"},
                                     "select": ACTIVITY_SELECT + ["DIRECTION", "START_TIME", "END_TIME", "SETTINGS",
                                                                  "ORIGIN_ID"], **extra}

    def _client_calls(self, commands: Mapping[str, tuple[str, dict]], answer, since: datetime) -> list[dict]:
        """The calls of the deal's contacts. What a reference to nothing (a deal without a
        contact) becomes is undocumented, so only rows of the deal's own contacts count; a
        second contact (or a full page) costs one more request."""
        if "contacts" not in commands:
            return []
        if "contacts" in answer.errors:
            if isinstance(answer.errors["contacts"], NotFound):
                return []
            raise answer.errors["contacts"]
        contacts = [int(c["CONTACT_ID"]) for c in items_of(answer.results.get("contacts"))
                    if isinstance(c, dict) and _int(c.get("CONTACT_ID"))]
        if not contacts:
            return []
        rows = [] if "client_calls" in answer.errors else items_of(answer.results.get("client_calls"))
        if len(contacts) > 1 or len(rows) >= PAGE or "client_calls" in answer.errors:
            rows = self.client.list(*self._call_activities({"OWNER_TYPE_ID": CONTACT_OWNER_TYPE,
                                                            "OWNER_ID": contacts, ">=START_TIME": self._iso(since)}))
        return [a for a in rows if isinstance(a, dict) and str(a.get("OWNER_TYPE_ID")) == str(CONTACT_OWNER_TYPE)
                and _int(a.get("OWNER_ID")) in contacts]

    def _call_record(self, call_id: str) -> dict | None:
        rows = self.client.call("voximplant.statistic.get", {"FILTER": {"CALL_ID": call_id}})
        rows = items_of(rows)
        return rows[0] if rows else None

    def call_outcome(self, ref: str | None) -> CallStatus:
        """`ref` is the call's CALL_ID; its CALL_FAILED_CODE from voximplant.statistic.get."""
        record = self._call_record(ref) if ref else None
        return call_status((record or {}).get("CALL_FAILED_CODE"))

    # ------------------------------------------------------------------ pipelines, people, clients

    def arrival_stage(self, pipeline: str | None, status: str | None) -> tuple[str, str, str] | None:
        names = self.names()
        category = vocabulary.find(names.pipelines, pipeline) if pipeline else next(iter(names.pipelines), None)
        if category is None:
            return None
        stages = names.statuses.get(category, {})
        if status:
            stage = vocabulary.find(stages, status)
        else:
            stage = next((s for s in stages if names.semantics.get(s, "P") not in CLOSED), None)
        if stage is None:
            return None
        return category, stage, names.pipelines[category]

    def contacts_by_phone(self, phone: str) -> list[Contact]:
        """crm.duplicate.findbycomm, then the contacts and their deals in one batch."""
        found = self.client.call("crm.duplicate.findbycomm", {"type": "PHONE", "values": [phone],
                                                              "entity_type": "CONTACT"})
        ids = [int(i) for i in (found.get("CONTACT") or [])] if isinstance(found, dict) else []
        if not ids:
            return []
        got = self.client.gather({
            "contacts": ("crm.contact.list", {"filter": {"@ID": ids}, "select": ["ID", "NAME", "LAST_NAME",
                                                                               "ASSIGNED_BY_ID"]}),
            "leads": (f"crm.{self.entity.name}.list", {"filter": {"@CONTACT_ID": ids},
                                                       "select": ["ID", "CONTACT_ID"], "order": {"ID": "ASC"}})})
        leads: dict[int, list[int]] = defaultdict(list)
        for d in got["leads"]:
            if _int(d.get("CONTACT_ID")):
                leads[int(d["CONTACT_ID"])].append(int(d["ID"]))
        return [Contact(id=int(c["ID"]), name=" ".join(p for p in (c.get("NAME"), c.get("LAST_NAME")) if p),
                        responsible_id=_int(c.get("ASSIGNED_BY_ID")), lead_ids=tuple(leads.get(int(c["ID"]), ())))
                for c in got["contacts"]]

    def users(self) -> dict[int, str]:
        return self.names().users

    def user_name(self, user_id: int | None) -> str:
        return self.names().users.get(user_id, str(user_id or "")) if user_id else ""

    def own_user_id(self) -> int | None:
        key = self._key("me")
        got = self.r.get(key)
        if got is not None:
            return int(got) or None
        me = _int((self.client.call("user.current") or {}).get("ID")) or 0
        self.r.set(key, me, ex=86400)
        return me or None

    def lead_url(self, lead_id: int) -> str:
        return f"{self.b24.portal_url}/crm/{self.entity.name}/details/{lead_id}/"

    # ------------------------------------------------------------------ events

    def _state_key(self, lead_id: int) -> str:
        return self._key("state", lead_id)

    def expand(self, event: Event) -> list[Event]:
        """A crm.changed event as the neutral events it means, by reading the deal and comparing
        it with the state last seen (changes.py). Other kinds come back as they are."""
        if event.kind != "crm.changed":
            return [event]
        name = str(event.fields.get("event") or "").upper()
        object_id = event.fields.get("id") or event.entity_id
        at = event.fields.get("at") or int(time.time())
        if name == "ONVOXIMPLANTCALLEND" or event.fields.get("entity") == "call":
            return self._call_events(event.account, str(object_id), at)
        prefix = f"ONCRM{self.entity.name.upper()}"
        if name.startswith(prefix):
            lead_id = int(object_id)
            if name.endswith("DELETE"):
                self.r.delete(self._state_key(lead_id))
                return [Event(event.account, "bitrix24", "lead.deleted", lead_id, {"lead_id": lead_id, "at": at},
                              key=event_key("lead.deleted", lead_id))]
            if name.endswith("UPDATE") and self._take_echo(keys=[self._echo_key(lead_id)]):
                return []  # the event of our own field write (see _settle_fields)
            if self._read_since(lead_id, event.fields.get("at")):
                return []
            return self.changes(lead_id, at=at, added=name.endswith("ADD"))
        if name in ("ONCRMACTIVITYADD", "ONCRMTIMELINECOMMENTADD") and \
                self._ours("activity" if name == "ONCRMACTIVITYADD" else "comment", int(object_id)):
            return []  # the echo of our own to-do or comment: already in the deal's last state
        if name.startswith("ONCRMACTIVITY"):
            lead_id = self._owner_of(int(object_id), deleted=name.endswith("DELETE"))
            if not lead_id or self._read_since(lead_id, event.fields.get("at")):
                return []
            return self.changes(lead_id, at=at)
        if name == "ONCRMTIMELINECOMMENTADD":
            return self._comment_events(event.account, int(object_id), at)
        return []

    def _read_since(self, lead_id: int, sent: Any) -> bool:
        """Whether the deal was read after this event was sent, both by the portal's clock (the
        event's `ts`, the reading's time.start; a second to spare, as `ts` is whole seconds):
        that reading holds the event's change, so reading again would find nothing new. After
        an outage, the deferred events of deals the catch-up has read cost no request."""
        raw = self.r.get(self._state_key(lead_id)) if sent else None
        read_at = DealState.from_json(raw).read_at if raw is not None else None
        return read_at is not None and read_at > float(sent) + 1

    def _comment_events(self, account: str, comment_id: int, at: int) -> list[Event]:
        """A comment in one of our deals' timelines as comment.added (the author is `by`)."""
        try:
            c = self.client.call("crm.timeline.comment.get", {"id": comment_id})
        except NotFound:
            return []
        if not c or str(c.get("ENTITY_TYPE") or "").lower() != self.entity.name:
            return []
        created = self._moment(c.get("CREATED"))
        fields = {"lead_id": _int(c.get("ENTITY_ID")), "text": str(c.get("COMMENT") or ""),
                  "by": _int(c.get("AUTHOR_ID")), "at": int(created.timestamp()) if created else at}
        return [Event(account, "bitrix24", "comment.added", comment_id, fields,
                      key=event_key("comment.added", comment_id))]

    def _owner_of(self, activity_id: int, *, deleted: bool) -> int | None:
        known = self.r.hget(self._key("activity_owner"), str(activity_id))
        if known is not None:
            return int(known)
        if deleted:
            return None  # never seen open: its deletion changes nothing we know of
        try:
            act = self.client.call("crm.activity.get", {"id": activity_id})
        except NotFound:
            return None
        if not act or int(act.get("OWNER_TYPE_ID") or 0) != self.entity.owner_type:
            return None
        return int(act["OWNER_ID"])

    def changes(self, lead_id: int, *, at: int | None = None, added: bool = False) -> list[Event]:
        """Read the deal (one batch: the deal, its open activities, what became of those it had)
        and return what changed since the state last seen; the new state is kept."""
        at = at or int(time.time())
        raw = self.r.get(self._state_key(lead_id))
        before = DealState.from_json(raw) if raw is not None else None
        extra = {}
        if before is not None and before.tasks:
            extra["done"] = ("crm.activity.list", {"filter": {"@ID": list(before.tasks), "COMPLETED": "Y"},
                                                   "select": ACTIVITY_SELECT})
        got = self._read(lead_id, extra)
        if got is None:
            if before is None:
                return []
            self.r.delete(self._state_key(lead_id))
            return [Event(self.account.id, "bitrix24", "lead.deleted", lead_id, {"lead_id": lead_id, "at": at},
                          key=event_key("lead.deleted", lead_id))]
        deal, acts, found = got
        done = {int(a["ID"]): a for a in items_of(found.get("done"))}
        after = replace(self._state(deal, acts), read_at=self._readings[lead_id].portal_at)
        found_changes = compare(before, after, completed=frozenset(done), added=added)
        with self.r.pipeline(transaction=False) as p:
            p.set(self._state_key(lead_id), after.to_json(), ex=STATE_TTL)
            owners = self._key("activity_owner")
            if after.tasks:
                p.hset(owners, mapping={str(i): lead_id for i in after.tasks})
            gone = [str(i) for i in (before.tasks if before else {}) if i not in after.tasks]
            if gone:
                p.hdel(owners, *gone)
            p.execute()
        if not found_changes:
            return []
        names = self.names()
        lead = self._lead(deal, names)
        values = {label: v for label, v in after.values.items()}
        created_at = int(lead.created_at.timestamp()) if lead.created_at else None
        acts_by_id = {int(a["ID"]): a for a in acts} | done
        events = []
        for c in found_changes:
            fields = {**c.fields, "lead_id": lead_id, "at": at}
            if c.kind.startswith("lead."):
                by = deal.get("MOVED_BY_ID") if c.kind == "lead.status_changed" else deal.get("MODIFY_BY_ID")
                fields.update(name=lead.name, values=values, created_at=created_at, by=_int(by))
            else:
                act = acts_by_id.get(int(c.fields["task_id"]), {})
                created = self._moment(act.get("CREATED"))
                fields.update(created_by=_int(act.get("AUTHOR_ID")), by=_int(act.get("EDITOR_ID")),
                              created_at=int(created.timestamp()) if created else None)
                if c.fields.get("completed"):
                    fields["result"] = act.get("DESCRIPTION") or None
            entity_id = fields.get("task_id") or lead_id
            events.append(Event(self.account.id, "bitrix24", c.kind, entity_id, fields,
                                key=event_key(c.kind, lead_id, sorted(c.fields.items(), key=lambda kv: kv[0]))))
        return events

    def _task_state(self, act: dict) -> TaskState:
        due = self._moment(act.get("DEADLINE"))
        return TaskState(int(due.timestamp()) if due else None, _int(act.get("RESPONSIBLE_ID")), act.get("SUBJECT") or "")

    def _state(self, deal: dict, acts: Iterable[dict]) -> DealState:
        closed = CLOSED.get(deal.get(self.entity.semantic) or "")
        tasks = {int(a["ID"]): self._task_state(a) for a in acts}
        fields = self.names().fields
        values = {fields[k][0] if k in fields else k: fields[k][2].get(str(v), v) if k in fields else v
                  for k, v in deal.items() if k.startswith("UF_") and v not in (None, "", [], False)}
        return DealState(stage=str(deal.get(self.entity.stage) or ""), pipeline=self._pipeline(deal),
                         responsible_id=_int(deal.get("ASSIGNED_BY_ID")), closed=closed, tasks=tasks, values=values)

    def _call_events(self, account: str, call_id: str, at: int) -> list[Event]:
        record = self._call_record(call_id)
        event = self.call_event(account, record, self._client_lead(record)) if record else None
        return [event] if event and self.first_sight(event) else []

    def first_sight(self, call: Event) -> bool:
        """Whether this call.ended is new (marked seen now): a call the event brought is not
        brought again by the catch-up, nor by the event delivered twice."""
        key = self._key("calls_seen")
        now = time.time()
        with self.r.pipeline(transaction=False) as p:
            p.zadd(key, {str(call.fields["call_id"]): now}, nx=True)
            p.zremrangebyscore(key, "-inf", now - CALLS_SEEN_TTL)
            new, _ = p.execute()
        return bool(new)

    def _client_lead(self, record: Mapping[str, Any]) -> int | None:
        """The lead a call is about: its CRM entity, or the newest open deal of its contact."""
        entity, entity_id = str(record.get("CRM_ENTITY_TYPE") or "").upper(), _int(record.get("CRM_ENTITY_ID"))
        if entity == self.entity.name.upper() or not entity_id:
            return entity_id if entity == self.entity.name.upper() else None
        if entity != "CONTACT" or self.entity.name != "deal":
            return None
        rows = items_of(self.client.call("crm.deal.list", {"filter": {"CONTACT_ID": entity_id, "CLOSED": "N"},
                                                           "select": ["ID"], "order": {"ID": "DESC"}}))
        return int(rows[0]["ID"]) if rows else None

    def call_event(self, account: str, record: Mapping[str, Any], lead_id: int | None = None) -> Event:
        """A voximplant.statistic.get record as a call.ended event (`lead_id`: when known)."""
        call_id = str(record.get("CALL_ID"))
        start = self._moment(record.get("CALL_START_DATE"))
        if str(record.get("CRM_ENTITY_TYPE") or "").upper() == self.entity.name.upper():
            lead_id = _int(record.get("CRM_ENTITY_ID"))
        fields = {"call_id": call_id,
                  "direction": "out" if str(record.get("CALL_TYPE")) in OUTGOING_CALL_TYPES else "in",
                  "outcome": call_status(record.get("CALL_FAILED_CODE")).value,
                  "duration": int(record.get("CALL_DURATION") or 0),
                  "phone": "".join(ch for ch in str(record.get("PHONE_NUMBER") or "") if ch.isdigit()),
                  "lead_id": lead_id, "user_id": _int(record.get("PORTAL_USER_ID")),
                  "at": int(start.timestamp()) if start else int(time.time()), "ref": call_id}
        return Event(account, "bitrix24", "call.ended", call_id, fields, key=event_key("call.ended", call_id))

    def baseline(self) -> int:
        """Remember the state of every open deal not seen yet (the catch-up's first pass): two
        lists read whole, so a deal's first missed change is a change, not a baseline."""
        got = self.client.gather({
            "leads": (f"crm.{self.entity.name}.list", {
                "filter": {"@" + self.entity.semantic: ["P"]} if self.entity.name == "deal" else {},
                "select": ["ID", self.entity.stage, self.entity.semantic, "CATEGORY_ID", "ASSIGNED_BY_ID", "UF_*"],
                "order": {"ID": "ASC"}}),
            "acts": self._open_activities()})
        acts: dict[int, list[dict]] = defaultdict(list)
        for a in self._next_steps(got["acts"]):
            acts[int(a["OWNER_ID"])].append(a)
        with self.r.pipeline(transaction=False) as p:
            for raw in got["leads"]:
                lead_id = int(raw["ID"])
                p.set(self._state_key(lead_id), self._state(raw, acts.get(lead_id, ())).to_json(), ex=STATE_TTL,
                      nx=True)
                if acts.get(lead_id):
                    p.hset(self._key("activity_owner"), mapping={a["ID"]: lead_id for a in acts[lead_id]})
            p.execute()
        return len(got["leads"])

    def changed_since(self, since: datetime) -> tuple[list[tuple[int, bool]], list[Event]]:
        """For the catch-up, in one batch (plus pages): the deals that changed after `since`
        in a way the state last seen does not hold, each with whether it was created since
        then, and the calls started since then.

        The deals modified since then and the activities updated since then (a to-do's change
        leaves the deal's DATE_MODIFY alone) are listed with the fields the state keeps and
        compared with it here, so a deal whose event was read, or whose change was our own
        write, costs no read: only what no event brought is read (`changes`)."""
        after = self._iso(since)
        got = self.client.gather({
            "leads": (f"crm.{self.entity.name}.list", {
                "filter": {">DATE_MODIFY": after}, "order": {"ID": "ASC"},
                "select": ["ID", "DATE_CREATE", self.entity.stage, self.entity.semantic, "CATEGORY_ID",
                           "ASSIGNED_BY_ID", "UF_*"]}),
            "acts": ("crm.activity.list", {"filter": {"OWNER_TYPE_ID": self.entity.owner_type, ">LAST_UPDATED": after},
                                           "select": ACTIVITY_SELECT}),
            "calls": ("voximplant.statistic.get", {"FILTER": {">=CALL_START_DATE": after},
                                                   "SORT": "CALL_START_DATE", "ORDER": "ASC"})})
        acts = self._next_steps(got["acts"])
        ids = list(dict.fromkeys([int(d["ID"]) for d in got["leads"]] + [int(a["OWNER_ID"]) for a in acts]))
        states = {i: DealState.from_json(raw) if raw is not None else None
                  for i, raw in zip(ids, self.r.mget([self._state_key(i) for i in ids]) if ids else [])}
        unseen: dict[int, bool] = {}
        for d in got["leads"]:
            lead_id, before = int(d["ID"]), states[int(d["ID"])]
            if before is None or replace(self._state(d, ()), tasks=before.tasks) != before:
                unseen[lead_id] = (self._moment(d.get("DATE_CREATE")) or since) >= since
        for a in acts:
            lead_id, before = int(a["OWNER_ID"]), states[int(a["OWNER_ID"])]
            if before is None:
                unseen.setdefault(lead_id, False)
            elif a.get("COMPLETED") == "Y":
                if int(a["ID"]) in before.tasks:            # completed since we saw it open
                    unseen.setdefault(lead_id, False)
            elif before.tasks.get(int(a["ID"])) != self._task_state(a):
                unseen.setdefault(lead_id, False)
        return sorted(unseen.items()), [self.call_event(self.account.id, c) for c in got["calls"]]

    # ------------------------------------------------------------------ writes

    def apply(self, actions: Sequence[Action]) -> dict[str, int]:
        """Every name is resolved before anything is sent, so a wrong name changes nothing.
        New deals first; then deal updates, activity changes, new to-dos and comments go in
        one batch (Bitrix24 runs a batch's commands in order)."""
        created: dict[str, int] = {}
        lead_updates: dict[int, dict] = {}
        task_changes: dict[int, dict] = {}
        new_tasks: list[CreateTask] = []
        notes: list[tuple[str, str, dict]] = []
        for a in actions:
            if isinstance(a, CreateLead):
                continue
            if isinstance(a, SetResponsible):
                lead_updates.setdefault(a.lead_id, {})["ASSIGNED_BY_ID"] = a.user_id
            elif isinstance(a, SetLeadField):
                uf, uf_type, enum = self._field(a.field, logical=True)
                lead_updates.setdefault(a.lead_id, {})[uf] = self._wire_value(a.value, uf_type, enum)
            elif isinstance(a, SetLeadStatus):
                item = lead_updates.setdefault(a.lead_id, {})
                item[self.entity.stage] = self._status_id(self._pipeline_for(a.lead_id), a.status)
                if a.loss_reason:
                    uf, uf_type, enum = self._field(self.b24.loss_reason_field, logical=False)
                    item[uf] = self._wire_value(a.loss_reason, uf_type, enum)
            elif isinstance(a, CompleteTask):
                task_changes.setdefault(a.task_id, {})["result"] = a.result
            elif isinstance(a, SetTaskDue):
                task_changes.setdefault(a.task_id, {})["due"] = a.due
            elif isinstance(a, SetTaskResponsible):
                task_changes.setdefault(a.task_id, {})["responsible"] = a.user_id
            elif isinstance(a, CreateTask):
                new_tasks.append(a)
            elif isinstance(a, AddNote):
                notes.append(("comments", a.action_key, {"fields": {
                    "ENTITY_TYPE": self.entity.name, "ENTITY_ID": a.lead_id, "COMMENT": a.text}}))
            else:
                raise TypeError(f"cannot apply {type(a).__name__}")
        for a in actions:
            if isinstance(a, CreateLead):
                created[a.action_key] = self._create_lead(a)
        commands = {f"u{lead_id}": (f"crm.{self.entity.name}.update", {"id": lead_id, "fields": fields})
                    for lead_id, fields in lead_updates.items()}
        # A write of custom fields only is read back in the same batch (see _settle_fields).
        fields_only = [i for i, fields in lead_updates.items() if all(k.startswith("UF_") for k in fields)]
        commands.update({f"g{i}": (f"crm.{self.entity.name}.get", {"id": i}) for i in fields_only})
        commands.update(self._task_commands(task_changes))
        touched = {getattr(a, "lead_id", None) for a in actions if not isinstance(a, AddNote)} - {None}
        results: dict[str, Any] = {}
        try:
            if commands or new_tasks or notes:
                made_ids, results = self.client.write(commands, [self._create(a) for a in new_tasks] + notes)
                created.update(made_ids)
        finally:
            self._wrote(touched)
        self._settle_fields({i: results[f"g{i}"] for i in fields_only if isinstance(results.get(f"g{i}"), dict)})
        made = {a.action_key: a for a in new_tasks if a.action_key in created}
        if self.b24.next_step == "task" and made:
            created.update(self._activities_of({key: created[key] for key in made}))
        self._remember_ours(made.values(), created, [key for _, key, _ in notes if key in created])
        return created

    def _wrote(self, lead_ids: Iterable[int]) -> None:
        """Count a write on each deal: a reading made before it is no longer served (_reading)."""
        ids = list(lead_ids)
        if ids:
            with self.r.pipeline(transaction=False) as p:
                for i in ids:
                    p.incr(self._writes_key(i))
                    p.expire(self._writes_key(i), STATE_TTL)
                p.execute()
            for i in ids:
                self._readings.pop(i, None)

    def _echo_key(self, lead_id: int) -> str:
        return self._key("echo", lead_id)

    def _settle_fields(self, deals: Mapping[int, dict]) -> None:
        """After a write of custom fields only, each deal as read back in the write's batch.
        Such a write means nothing to the rules (lead.updated has no handler), so its values
        go into the deal's last state, and the update event the write causes is skipped
        without a read; the catch-up, comparing with that state, reads nothing either.
        Whichever update event of the deal comes first is the one skipped; the other is read,
        after both changes. Only when our own event is lost too is a person's change of that
        moment left to the catch-up. When the deal read back differs from the last state in
        more than its values (a person moved it meanwhile), nothing is settled: its events
        are read as usual. A stage or responsible we set is always read back from its event:
        rules act on those."""
        for lead_id, deal in deals.items():
            key = self._state_key(lead_id)
            now = self._state(deal, ())

            def settle(pipe) -> bool:
                raw = pipe.get(key)
                before = DealState.from_json(raw) if raw is not None else None
                if before is None or replace(now, tasks=before.tasks, values=before.values) != before:
                    return False
                pipe.multi()
                pipe.set(key, replace(before, values=now.values).to_json(), ex=STATE_TTL)
                pipe.incr(self._echo_key(lead_id))
                pipe.expire(self._echo_key(lead_id), ECHO_TTL)
                return True

            self.r.transaction(settle, key, value_from_callable=True)

    def _ours_key(self, kind: str, object_id: int) -> str:
        return self._key("ours", kind, object_id)

    def _remember_ours(self, tasks: Iterable[CreateTask], created: Mapping[str, int], note_keys: Iterable[str]) -> None:
        """What we made, so its ONCRM…ADD event costs no request: each to-do goes into its
        deal's last state (a later change of it is then seen), and its id and each comment's
        are marked as ours. A to-do of a deal never seen is left to its event (the baseline)."""
        by_lead: dict[int, dict[int, TaskState]] = defaultdict(dict)
        for a in tasks:
            by_lead[a.lead_id][created[a.action_key]] = TaskState(int(a.due.timestamp()),
                                                                  a.responsible_id or self.own_user_id(),
                                                                  self._title(a))
        ours = [self._ours_key("comment", created[k]) for k in note_keys]
        for lead_id, made in by_lead.items():
            if self._add_to_state(lead_id, made):
                ours += [self._ours_key("activity", i) for i in made]
                self.r.hset(self._key("activity_owner"), mapping={str(i): lead_id for i in made})
        if ours:
            with self.r.pipeline(transaction=False) as p:
                for key in ours:
                    p.set(key, 1, ex=OURS_TTL)
                p.execute()

    def _add_to_state(self, lead_id: int, tasks: Mapping[int, TaskState]) -> bool:
        """Add open activities to the deal's last state (atomically: WATCH); False when none is kept."""
        key = self._state_key(lead_id)

        def add(pipe) -> bool:
            raw = pipe.get(key)
            if raw is None:
                return False
            state = DealState.from_json(raw)
            pipe.multi()
            pipe.set(key, replace(state, tasks={**state.tasks, **tasks}).to_json(), ex=STATE_TTL)
            return True

        return self.r.transaction(add, key, value_from_callable=True)

    def _ours(self, kind: str, object_id: int) -> bool:
        """Whether this object is one we made and its add event is here for the first time."""
        return bool(self.r.delete(self._ours_key(kind, object_id)))

    def _task_commands(self, changes: Mapping[int, dict]) -> dict[str, tuple[str, dict]]:
        """The writes for activity changes. Each activity's kind and owner come from its deal's
        reading of this job (_reading) or, for the rest, one batch of reads."""
        if not changes:
            return {}
        known: dict[int, dict] = {}
        for lead_id in list(self._readings):
            reading = self._reading(lead_id)
            known.update({int(a["ID"]): a for a in (reading.acts if reading else ())})
        unknown = [i for i in changes if i not in known]
        if unknown:
            read = self.client.batch({f"a{i}": ("crm.activity.get", {"id": i}) for i in unknown})
            for i in unknown:
                known[i] = read[f"a{i}"]
        commands: dict[str, tuple[str, dict]] = {}
        for task_id, change in changes.items():
            act = known[task_id]
            owner = {"ownerTypeId": int(act["OWNER_TYPE_ID"]), "ownerId": int(act["OWNER_ID"]), "id": task_id}
            if act.get("PROVIDER_ID") in TASK_PROVIDERS and _int(act.get("ASSOCIATED_ENTITY_ID")):
                task = int(act["ASSOCIATED_ENTITY_ID"])
                fields = {}
                if "due" in change:
                    fields["DEADLINE"] = self._iso(change["due"])
                if "responsible" in change:
                    fields["RESPONSIBLE_ID"] = change["responsible"]
                if fields:
                    commands[f"t{task_id}"] = ("tasks.task.update", {"taskId": task, "fields": fields})
                if "result" in change and act.get("COMPLETED") != "Y":
                    commands[f"c{task_id}"] = ("tasks.task.complete", {"taskId": task})
                continue
            todo = act.get("PROVIDER_ID") == "CRM_TODO"
            if "due" in change and todo:
                commands[f"d{task_id}"] = ("crm.activity.todo.updateDeadline",
                                           {**owner, "value": self._iso(change["due"])})
            if "responsible" in change and todo:
                commands[f"r{task_id}"] = ("crm.activity.todo.updateResponsibleUser",
                                           {**owner, "responsibleId": change["responsible"]})
            fields: dict[str, Any] = {}
            if not todo and "due" in change:
                fields["START_TIME"] = fields["END_TIME"] = self._iso(change["due"])
            if not todo and "responsible" in change:
                fields["RESPONSIBLE_ID"] = change["responsible"]
            if "result" in change and act.get("COMPLETED") != "Y":
                # A to-do has no result field: the result goes after its description.
                fields["COMPLETED"] = "Y"
                if change["result"]:
                    fields["DESCRIPTION"] = "\n".join(p for p in (act.get("DESCRIPTION"), change["result"]) if p)
            if fields:
                commands[f"f{task_id}"] = ("crm.activity.update", {"id": task_id, "fields": fields})
        return commands

    def _title(self, a: CreateTask) -> str:
        return self.settings.important.render(a.text, a.task_type, ())[0] if a.important else a.text

    def _create(self, a: CreateTask) -> tuple[str, str, dict]:
        """A new task for client.write: a to-do (default) or a task bound to the deal."""
        responsible = a.responsible_id or self.own_user_id()
        if self.b24.next_step == "todo":
            return "todos", a.action_key, {"ownerTypeId": self.entity.owner_type, "ownerId": a.lead_id,
                                           "deadline": self._iso(a.due), "title": self._title(a),
                                           **({"responsibleId": responsible} if responsible else {})}
        return "tasks", a.action_key, {"fields": {"TITLE": self._title(a), "DEADLINE": self._iso(a.due),
                                                  "RESPONSIBLE_ID": responsible,
                                                  "UF_CRM_TASK": [f"{self.entity.prefix}_{a.lead_id}"]}}

    def _activities_of(self, task_ids: Mapping[str, int]) -> dict[str, int]:
        """The activity ids of new tasks (what the rules know them by), by action key."""
        rows = self.client.list("crm.activity.list", {"filter": {"@PROVIDER_ID": sorted(TASK_PROVIDERS),
                                                                 "@ASSOCIATED_ENTITY_ID": list(task_ids.values())},
                                                      "select": ["ID", "ASSOCIATED_ENTITY_ID"]})
        activity_of = {int(r["ASSOCIATED_ENTITY_ID"]): int(r["ID"]) for r in rows}
        return {key: activity_of.get(t, t) for key, t in task_ids.items()}

    def _create_lead(self, a: CreateLead) -> int:
        """The deal and, unless the client has one, its contact, each created once per action key."""
        category = self._watched_pipelines(self.names())[0]
        fields: dict[str, Any] = {"TITLE": a.name}
        if self.entity.name == "deal":
            fields["CATEGORY_ID"] = category
        if a.status:
            fields[self.entity.stage] = self._status_id(category, a.status)
        if a.responsible_id:
            fields["ASSIGNED_BY_ID"] = a.responsible_id
        contact_id = a.contact_id
        if not contact_id and a.phone:
            contact = {"NAME": a.name, "PHONE": [{"VALUE": a.phone, "VALUE_TYPE": "WORK"}]}
            if a.responsible_id:
                contact["ASSIGNED_BY_ID"] = a.responsible_id
            contact_id = self.client.create("contacts", "crm.contact.add",
                                            [(f"{a.action_key}:contact", {"fields": contact})], find=None)[0]
        if contact_id:
            fields["CONTACT_ID"] = contact_id
        lead_id = self.client.create("leads", f"crm.{self.entity.name}.add",
                                     [(f"{a.action_key}:lead", {"fields": fields})], find=None)[0]
        self._pipeline_of[lead_id] = category
        return lead_id

    def _pipeline_for(self, lead_id: int) -> str:
        if lead_id not in self._pipeline_of:
            if self.get_lead(lead_id) is None:
                raise UnknownName(f"{self.entity.name} {lead_id} not found", kind=kinds.LEAD, name=str(lead_id))
        return self._pipeline_of[lead_id]

