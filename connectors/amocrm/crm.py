"""The CRM protocol (reglament.crm) over amoCRM API v4: names to ids, leads and tasks to
records, a rule's actions to as few requests as possible.

Reads
- One lead: GET the lead; its open tasks only when amoCRM says it has one
  (`closest_task_at`) or when we gave it a task lately (that field might lag behind
  our own write): 1–2 calls.
- The sweep: every open task of leads, then the active leads, in pages of 250.

Writes (`apply`)
- A lead's field and status changes go in one PATCH item per lead (50 leads a request);
- tasks and notes are created in batches of 50, once per action key (the client's
  idempotency), tasks before notes.

The account's vocabulary (pipelines with their statuses, users, task types, loss reasons,
lead fields) costs 5 calls; it is kept in Redis for NAMES_TTL and read again at once when
a name or id is not found in it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import redis

from connectors import vocabulary
from connectors.amocrm.client import PAGE, AmoCRMClient
from reglament import rule_settings
from reglament.rule_settings import RuleSettings
from reglament import names as kinds
from reglament.names import NameProblem, same_name
from reglament import keys
from reglament.config import Account
from reglament.crm import (Action, AddNote, Call,
                           CallDirection, CallStatus, CompleteTask, Contact, CreateLead, CreateTask, Lead, LeadSnapshot,
                           SetLeadField, SetLeadStatus, SetResponsible, SetTaskDue, SetTaskResponsible, SnapshotPage,
                           Task, Touch, UnknownName)

log = logging.getLogger("reglament.amocrm")

WON, LOST = 142, 143           # amoCRM's own closing stages, shared by every pipeline
NAMES_TTL = 600                # seconds the account's vocabulary is trusted
MADE_LATELY = 600              # seconds after we create a task during which closest_task_at is not trusted
DATE_TYPES = {"date", "date_time", "birthday"}
MAX_STATUS_FILTERS = 100       # beyond this many stages the lead query filters by pipeline only

# amoCRM call_status (reference §3.5) → how the call ended, as the rules see it.
CALL_STATUSES: dict[int, CallStatus] = {
    1: CallStatus.OTHER,        # оставил сообщение
    2: CallStatus.OTHER,        # перезвонить позже
    3: CallStatus.NOT_REACHED,  # нет на месте
    4: CallStatus.TALKED,       # разговор состоялся
    5: CallStatus.OTHER,        # неверный номер
    6: CallStatus.NOT_REACHED,  # не дозвонился
    7: CallStatus.BUSY,         # номер занят
    8: CallStatus.OTHER,        # не определён
}


# The note types that may be contact with the client, as reglament.crm.Touch kinds.
TOUCH_NOTES = {"common": "comment", "sms_out": "message", "call_in": "call", "call_out": "call"}


def call_status(code: Any) -> CallStatus:
    try:
        return CALL_STATUSES.get(int(code), CallStatus.OTHER)
    except (TypeError, ValueError):
        return CallStatus.OTHER


_listing = vocabulary.listing
_find = vocabulary.find


def _moment(ts: Any) -> datetime | None:
    """A unix timestamp (int or digit string) as an aware UTC datetime."""
    try:
        return datetime.fromtimestamp(int(ts), timezone.utc) if ts not in (None, "") else None
    except (TypeError, ValueError):
        return None


# --- the account's vocabulary -----------------------------------------------------------

@dataclass
class Names:
    """Ids and names of one account. Keys are ids."""
    pipelines: dict[int, str] = field(default_factory=dict)
    statuses: dict[int, dict[int, str]] = field(default_factory=dict)  # pipeline → status → name
    users: dict[int, str] = field(default_factory=dict)
    task_types: dict[int, str] = field(default_factory=dict)
    loss_reasons: dict[int, str] = field(default_factory=dict)
    lead_fields: dict[int, tuple[str, str]] = field(default_factory=dict)  # id → (name, type)

    @classmethod
    def read(cls, client: AmoCRMClient) -> "Names":
        pipelines = client.pipelines()
        return cls(
            pipelines={p["id"]: p["name"] for p in pipelines if not p.get("is_archive")},
            statuses={p["id"]: {s["id"]: s["name"] for s in (p.get("_embedded") or {}).get("statuses") or []}
                      for p in pipelines if not p.get("is_archive")},
            users={u["id"]: u["name"] for u in client.users()},
            task_types={t["id"]: t["name"] for t in client.task_types()},
            loss_reasons={r["id"]: r["name"] for r in client.loss_reasons()},
            lead_fields={f["id"]: (f["name"], f.get("type") or "text") for f in client.custom_fields("leads")},
        )

    def to_json(self) -> str:
        return json.dumps({"pipelines": self.pipelines, "users": self.users, "task_types": self.task_types,
                           "loss_reasons": self.loss_reasons, "lead_fields": self.lead_fields,
                           "statuses": {p: s for p, s in self.statuses.items()}}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Names":
        d = json.loads(text)
        ints = lambda m: {int(k): v for k, v in m.items()}  # noqa: E731 — JSON keys are strings
        return cls(pipelines=ints(d["pipelines"]), users=ints(d["users"]), task_types=ints(d["task_types"]),
                   loss_reasons=ints(d["loss_reasons"]),
                   lead_fields={int(k): tuple(v) for k, v in d["lead_fields"].items()},
                   statuses={int(p): ints(s) for p, s in d["statuses"].items()})

    def status_names(self, pipeline_ids: Iterable[int]) -> list[str]:
        return list(dict.fromkeys(n for p in pipeline_ids for n in self.statuses.get(p, {}).values()))


# --- the connector -----------------------------------------------------------------------

class AmoCRM:
    """reglament.crm.CRM for one amoCRM account. Cheap to create; shared state lives in Redis."""

    def __init__(self, account: Account, client: AmoCRMClient, r: redis.Redis,
                 settings: RuleSettings | None = None, *, names_ttl: float = NAMES_TTL):
        self.account = account
        self.client = client
        self.r = r
        self.settings = settings or rule_settings.load(account.rules)
        self.tz = ZoneInfo(account.timezone)
        self.names_ttl = names_ttl
        self._names = vocabulary.Cached(r, keys.key(account.id, "amocrm", "names"), names_ttl,
                                        lambda: Names.read(self.client), Names.from_json)
        self._pipeline_of: dict[int, int] = {}       # lead → pipeline, from the leads we read
        self._sweep: tuple[str, dict[int, list[Task]]] | None = None

    @classmethod
    def for_account(cls, account: Account, r: redis.Redis, settings: RuleSettings | None = None,
                    **client_options) -> "AmoCRM":
        if account.amocrm is None:
            raise ValueError(f"account {account.id} has no amocrm: section")
        return cls(account, AmoCRMClient(account.id, account.amocrm, r, **client_options), r, settings)

    def __repr__(self) -> str:
        return f"AmoCRM(account={self.account.id!r})"

    # ------------------------------------------------------------------ names

    def names(self, refresh: bool = False) -> Names:
        """The account's vocabulary: from this object, else Redis, else 5 API calls."""
        return self._names.get(refresh)

    def _watched_pipelines(self, names: Names) -> list[int]:
        if not self.settings.pipeline:
            return list(names.pipelines)
        found = _find(names.pipelines, self.settings.pipeline)
        if found is None:
            raise UnknownName(f"pipeline «{self.settings.pipeline}» not found; the account has: "
                              f"{_listing(names.pipelines.values())}", kind=kinds.PIPELINE, name=self.settings.pipeline)
        return [found]

    def _default_pipeline_id(self) -> int:
        """The configured pipeline, else the account's first one (amoCRM lists the main first)."""
        return self._watched_pipelines(self.names())[0]

    def _lookup(self, find):
        """find(names), reading the vocabulary again once when it finds nothing."""
        return self._names.lookup(find)

    def _status_id(self, pipeline_id: int, name: str) -> int:
        found, names = self._lookup(lambda n: _find(n.statuses.get(pipeline_id, {}), name))
        if found is not None:
            return found
        raise UnknownName(f"status «{name}» not found in pipeline «{names.pipelines.get(pipeline_id, pipeline_id)}»; "
                          f"it has: {_listing(names.statuses.get(pipeline_id, {}).values())}",
                          kind=kinds.STATUS, name=name)

    def _loss_reason_id(self, name: str) -> int:
        found, names = self._lookup(lambda n: _find(n.loss_reasons, name))
        if found is not None:
            return found
        raise UnknownName(f"loss reason «{name}» not found; the account has: {_listing(names.loss_reasons.values())}",
                          kind=kinds.LOSS_REASON, name=name)

    def _task_type_id(self, name: str | None) -> int | None:
        if not name:
            return None
        found = _find(self.names().task_types, name)
        if found is None:
            # The type is cosmetic; a wrong name must not stop the task (`reglament check` reports it).
            log.warning("task type «%s» not found; the task gets amoCRM's default type", name,
                        extra={"account": self.account.id})
        return found

    def _lead_fields(self, names: Names) -> dict[str, tuple[int, str]]:
        """Logical field → (field id, amoCRM type), for the mapped fields the account has."""
        found = {}
        for logical, crm_name in self.settings.fields.mapped().items():
            fid = next((i for i, (n, _) in names.lead_fields.items() if same_name(n, crm_name)), None)
            if fid is not None:
                found[logical] = (fid, names.lead_fields[fid][1])
        return found

    def _lead_field(self, logical: str) -> tuple[int, str]:
        found, names = self._lookup(lambda n: self._lead_fields(n).get(logical))
        if found is not None:
            return found
        crm_name = self.settings.fields.mapped().get(logical)
        if not crm_name:
            raise UnknownName(f"rules.fields.{logical} is not set, so Reglament cannot write it",
                              kind=kinds.LEAD_FIELD, name=logical)
        raise UnknownName(f"lead field «{crm_name}» ({logical}) not found; lead fields: "
                          f"{_listing(n for n, _ in names.lead_fields.values())}", kind=kinds.LEAD_FIELD, name=crm_name)

    def resolve_problems(self) -> list[NameProblem]:
        """Every name the rules use (RuleSettings.used_names) that the account does not have,
        with the names it does have (for `reglament check` and the service's start); an
        optional one is marked so. Reads the vocabulary afresh."""
        names = self.names(refresh=True)
        return vocabulary.problems(self.settings, self.account.departments, vocabulary.Vocabulary(
            pipelines=names.pipelines, statuses=names.statuses, closed=frozenset({WON, LOST}), users=names.users,
            task_types=names.task_types, loss_reasons=names.loss_reasons,
            lead_fields={n: t for n, t in names.lead_fields.values()}, date_types=frozenset(DATE_TYPES)))

    def user_name(self, user_id: int | None) -> str:
        return self.names().users.get(user_id, str(user_id or "")) if user_id else ""

    def lead_url(self, lead_id: int) -> str:
        return f"{self.client.base_url}/leads/detail/{lead_id}"

    # ------------------------------------------------------------------ records

    def _value(self, raw: Any, amo_type: str) -> Any:
        if amo_type not in DATE_TYPES:
            return raw
        if isinstance(raw, str) and not raw.lstrip("-").isdigit():
            try:  # the docs also show "2020-05-08"-style values
                moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                return None
            moment = moment if moment.tzinfo else moment.replace(tzinfo=self.tz)
        else:
            moment = _moment(raw)
        if moment is None:
            return None
        return moment.astimezone(self.tz).date() if amo_type == "date" else moment

    def _wire_value(self, value: Any, amo_type: str) -> list[dict] | None:
        if value is None or value == "":
            return None  # `values: null` clears the field
        if amo_type in DATE_TYPES:
            if isinstance(value, datetime):
                ts = int(value.timestamp())
            elif isinstance(value, date):
                ts = int(datetime(value.year, value.month, value.day, tzinfo=self.tz).timestamp())
            elif isinstance(value, str):
                moment = datetime.fromisoformat(value)
                ts = int((moment if moment.tzinfo else moment.replace(tzinfo=self.tz)).timestamp())
            else:
                ts = int(value)
            return [{"value": ts}]
        return [{"value": value if isinstance(value, (int, float, bool)) else str(value)}]

    def _lead(self, raw: dict, names: Names) -> Lead:
        pipeline_id, status_id = int(raw["pipeline_id"]), int(raw["status_id"])
        status = names.statuses.get(pipeline_id, {}).get(status_id)
        if status is None and status_id not in (WON, LOST):
            names = self.names(refresh=True)  # a stage added or renamed since we last looked
            status = names.statuses.get(pipeline_id, {}).get(status_id)
        values = {cf.get("field_id"): cf.get("values") or [] for cf in raw.get("custom_fields_values") or []}
        fields = {}
        for logical, (fid, amo_type) in self._lead_fields(names).items():
            if values.get(fid):
                fields[logical] = self._value(values[fid][0].get("value"), amo_type)
        custom = {names.lead_fields[fid][0]: v[0].get("value") for fid, v in values.items()
                  if v and fid in names.lead_fields}
        loss_reason = None
        if raw.get("loss_reason_id"):
            loss_reason = names.loss_reasons.get(raw["loss_reason_id"]) \
                or self.names(refresh=True).loss_reasons.get(raw["loss_reason_id"])
        self._pipeline_of[int(raw["id"])] = pipeline_id
        return Lead(id=int(raw["id"]), name=raw.get("name") or "", stage=str(status_id), status=status or "",
                    pipeline=str(pipeline_id), responsible_id=raw.get("responsible_user_id"),
                    created_at=_moment(raw.get("created_at")),
                    closed="won" if status_id == WON else "lost" if status_id == LOST else None,
                    loss_reason=loss_reason, fields=fields, custom=custom,
                    tags=frozenset(t.get("name") for t in (raw.get("_embedded") or {}).get("tags") or []
                                   if t.get("name")))

    def _task(self, raw: dict, names: Names) -> Task:
        result = raw.get("result")
        return Task(id=int(raw["id"]), lead_id=int(raw.get("entity_id") or 0), text=raw.get("text") or "",
                    task_type=names.task_types.get(raw.get("task_type_id")),
                    due=_moment(raw.get("complete_till")) or datetime.now(timezone.utc),
                    responsible_id=raw.get("responsible_user_id"), is_completed=bool(raw.get("is_completed")),
                    result=(result.get("text") or None) if isinstance(result, dict) else None,
                    created_at=_moment(raw.get("created_at")))

    def _watched(self, lead: Lead, names: Names) -> bool:
        return not self.settings.pipeline or int(lead.pipeline) in self._watched_pipelines(names)

    # ------------------------------------------------------------------ reads

    def get_lead_snapshot(self, lead_id: int) -> LeadSnapshot | None:
        """The lead and its open tasks, read fresh; None when it is gone or outside the
        configured pipeline. last_task_id is the newest open task (completed ones are not
        read; the executor completes it from its memory of task ids)."""
        raw = self.client.get_lead(lead_id, with_contacts=False)
        if raw is None or raw.get("is_deleted"):
            return None
        names = self.names()
        lead = self._lead(raw, names)
        if not self._watched(lead, names):
            return None
        tasks: list[Task] = []
        if raw.get("closest_task_at") is not None or self._made_task_lately(lead.id):
            tasks = [self._task(t, names) for t in
                     self.client.tasks(entity_type="leads", entity_ids=[lead.id], is_completed=False)]
        return LeadSnapshot.of(lead, tasks)

    def _active_stages(self, names: Names) -> list[tuple[int, int]]:
        terminal = self.settings.terminal_statuses
        return [(p, s) for p in self._watched_pipelines(names) for s, name in names.statuses.get(p, {}).items()
                if s not in (WON, LOST) and not any(same_name(name, t) for t in terminal)]

    def list_active_leads_with_open_tasks(self, cursor: str | None = None) -> SnapshotPage:
        """A page of 250 active leads (not won/lost, not a configured terminal status) with
        their open tasks. The first page reads every open task of leads (pages of 250)."""
        session, page = cursor.rsplit(":", 1) if cursor else (uuid.uuid4().hex, "1")
        names = self.names()
        if self._sweep is None or self._sweep[0] != session:
            by_lead: dict[int, list[Task]] = defaultdict(list)
            for raw in self.client.tasks(entity_type="leads", is_completed=False):
                if raw.get("entity_id"):
                    by_lead[int(raw["entity_id"])].append(self._task(raw, names))
            self._sweep = (session, by_lead)
        by_lead = self._sweep[1]
        raws, more = self._lead_page(int(page), names)
        snapshots = []
        for raw in raws:
            lead = self._lead(raw, names)
            if lead.closed is None and self._watched(lead, names):
                snapshots.append(LeadSnapshot.of(lead, by_lead.get(lead.id, ())))
        if not more:
            self._sweep = None
        return SnapshotPage(tuple(snapshots), f"{session}:{int(page) + 1}" if more else None)

    def _lead_page(self, page: int, names: Names) -> tuple[list[dict], bool]:
        stages = self._active_stages(names)
        params: list[tuple[str, Any]] = []
        if len(stages) <= MAX_STATUS_FILTERS:
            for i, (p, s) in enumerate(stages):
                params += [(f"filter[statuses][{i}][pipeline_id]", p), (f"filter[statuses][{i}][status_id]", s)]
        elif self.settings.pipeline:
            params.append(("filter[pipeline_id][]", stages[0][0]))
        return self.client.page("/api/v4/leads", "leads", params, page)

    def get_lead(self, lead_id: int) -> Lead | None:
        raw = self.client.get_lead(lead_id, with_contacts=False)
        if raw is None or raw.get("is_deleted"):
            return None
        return self._lead(raw, self.names())

    def get_leads(self, lead_ids: Sequence[int]) -> dict[int, Lead]:
        names, found = self.names(), {}
        ids = list(dict.fromkeys(lead_ids))
        for i in range(0, len(ids), PAGE):
            for raw in self.client.leads(ids=ids[i:i + PAGE]):
                if not raw.get("is_deleted"):
                    found[int(raw["id"])] = self._lead(raw, names)
        return found

    def active_leads(self) -> Iterator[Lead]:
        names, page, more = self.names(), 1, True
        while more:
            raws, more = self._lead_page(page, names)
            for raw in raws:
                lead = self._lead(raw, names)
                if lead.closed is None:
                    yield lead
            page += 1

    def stage_name(self, pipeline: str | None, stage: str | None) -> str:
        if not (pipeline and stage and pipeline.isdigit() and stage.isdigit()):
            return ""
        found, _ = self._lookup(lambda n: n.statuses.get(int(pipeline), {}).get(int(stage)))
        return found or ""

    def has_field(self, field_name: str) -> bool:
        return any(same_name(n, field_name) for n, _ in self.names().lead_fields.values())

    def open_tasks(self, lead_id: int) -> tuple[Task, ...]:
        names = self.names()
        return tuple(self._task(t, names) for t in
                     self.client.tasks(entity_type="leads", entity_ids=[lead_id], is_completed=False))

    def all_open_tasks(self) -> Iterator[Task]:
        names = self.names()
        for raw in self.client.tasks(entity_type="leads", is_completed=False):
            if raw.get("entity_id"):
                yield self._task(raw, names)

    def task_from_event(self, fields: Mapping[str, Any]) -> Task | None:
        due = _moment(fields.get("due"))
        if not fields.get("lead_id") or due is None:
            return None
        task_type = fields.get("task_type")
        return Task(id=int(fields["task_id"]), lead_id=int(fields["lead_id"]), text=fields.get("text") or "",
                    task_type=self.names().task_types.get(int(task_type)) if task_type else None, due=due,
                    responsible_id=fields.get("responsible_id"), is_completed=bool(fields.get("completed")),
                    result=fields.get("result"), created_at=_moment(fields.get("created_at")))

    def deadline_before(self, task_id: int, due: datetime) -> datetime | None:
        """From amoCRM's events API (task_deadline_changed); None when the API can't say."""
        try:
            found = self.client.events(types=["task_deadline_changed"], entity="task", entity_ids=[task_id])
        except Exception:  # noqa: BLE001 — a missing answer means "not known", never a false violation
            log.warning("events API unavailable for task %s", task_id, extra={"account": self.account.id})
            return None
        for e in sorted(found, key=lambda e: e.get("created_at") or 0, reverse=True):
            after = ((e.get("value_after") or [{}])[0].get("task_deadline") or {}).get("timestamp")
            before = ((e.get("value_before") or [{}])[0].get("task_deadline") or {}).get("timestamp")
            if after is not None and int(after) == int(due.timestamp()):
                return _moment(before)
        return None

    def latest_comment(self, lead_id: int) -> str | None:
        notes = self.client.notes("leads", entity_ids=[lead_id], note_types=["common"])
        texts = [(n.get("created_at") or 0, n.get("id") or 0, (n.get("params") or {}).get("text") or "")
                 for n in notes]
        texts = [t for t in texts if t[2] and not t[2].startswith("Reglament")]
        return max(texts)[2] if texts else None

    def touches(self, lead_id: int, since: datetime) -> list[Touch]:
        found = []
        for n in self.client.notes("leads", entity_ids=[lead_id], note_types=list(TOUCH_NOTES)):
            at = _moment(n.get("created_at"))
            if at is None or at < since:
                continue
            kind = TOUCH_NOTES.get(n.get("note_type"))
            call = None
            if kind == "call":
                params = n.get("params") or {}
                call = Call(id=str(params.get("uniq") or f"note-{n.get('id')}"),
                            direction=CallDirection.IN if n["note_type"] == "call_in" else CallDirection.OUT,
                            status=call_status(params.get("call_status")), at=at,
                            duration=int(params.get("duration") or 0), responsible_id=n.get("created_by") or None)
            found.append(Touch(kind=kind, at=at, by=n.get("created_by"), call=call))
        return found

    def call_outcome(self, ref: str | None) -> CallStatus:
        """`ref` is "<note type>:<lead>:<note>:<call_status or empty>" (app/amocrm/parser.py)."""
        if not ref:
            return CallStatus.OTHER
        note_type, lead_id, note_id, code = str(ref).split(":")
        if not code:
            # call_status inside the webhook's note text is UNCONFIRMED; the note itself has it.
            note = next((n for n in self.client.notes("leads", entity_ids=[int(lead_id)], note_types=[note_type])
                         if str(n.get("id")) == note_id), None)
            code = ((note or {}).get("params") or {}).get("call_status")
        return call_status(code)

    def arrival_stage(self, pipeline: str | None, status: str | None) -> tuple[str, str, str] | None:
        names = self.names()
        pipeline_id = _find(names.pipelines, pipeline) if pipeline else next(iter(names.pipelines), None)
        if pipeline_id is None:
            return None
        statuses = names.statuses.get(pipeline_id, {})
        if status:
            status_id = _find(statuses, status)
        else:  # the first open stage; «Неразобранное» is amoCRM's inbox of unsorted requests, not a stage
            status_id = next((i for i, n in statuses.items()
                              if i not in (WON, LOST) and not same_name(n, "Неразобранное")), None)
        if status_id is None:
            return None
        return str(pipeline_id), str(status_id), names.pipelines[pipeline_id]

    def contacts_by_phone(self, phone: str) -> list[Contact]:
        return [Contact(id=int(c["id"]), name=c.get("name") or "", responsible_id=c.get("responsible_user_id"),
                        lead_ids=tuple(int(lead["id"]) for lead in (c.get("_embedded") or {}).get("leads") or []))
                for c in self.client.find_contacts_by_phone(phone, with_leads=True)]

    def users(self) -> dict[int, str]:
        return self.names().users

    def expand(self, event):
        """amoCRM's webhooks carry the changed objects: its events are neutral as parsed."""
        return [event]

    def own_user_id(self) -> int | None:
        key = keys.key(self.account.id, "amocrm", "me")
        got = self.r.get(key)
        if got is not None:
            return int(got) or None
        me = int((self.client.account() or {}).get("current_user_id") or 0)
        self.r.set(key, me, ex=86400)
        return me or None

    # ------------------------------------------------------------------ writes

    def apply(self, actions: Sequence[Action]) -> dict[str, int]:
        """Every name is resolved before anything is sent, so a wrong name changes nothing."""
        updates: dict[int, dict] = {}
        task_updates: dict[int, dict] = {}
        tasks: list[tuple[str, dict]] = []
        notes: list[tuple[str, dict]] = []
        created: dict[str, int] = {}
        available_types = list(self.names().task_types.values())
        for a in actions:
            if isinstance(a, CreateLead):
                created[a.action_key] = self._create_lead(a)
            elif isinstance(a, SetResponsible):
                updates.setdefault(a.lead_id, {"id": a.lead_id})["responsible_user_id"] = a.user_id
            elif isinstance(a, CompleteTask):
                task_updates.setdefault(a.task_id, {"id": a.task_id}).update(
                    is_completed=True, result={"text": a.result})
            elif isinstance(a, SetTaskDue):
                task_updates.setdefault(a.task_id, {"id": a.task_id})["complete_till"] = int(a.due.timestamp())
            elif isinstance(a, SetTaskResponsible):
                task_updates.setdefault(a.task_id, {"id": a.task_id})["responsible_user_id"] = a.user_id
            elif isinstance(a, SetLeadField):
                fid, amo_type = self._lead_field(a.field)
                values = updates.setdefault(a.lead_id, {"id": a.lead_id}).setdefault("custom_fields_values", [])
                values[:] = [v for v in values if v["field_id"] != fid]  # the later value of a field wins
                values.append({"field_id": fid, "values": self._wire_value(a.value, amo_type)})
            elif isinstance(a, SetLeadStatus):
                pipeline_id = self._pipeline_for(a.lead_id)
                item = updates.setdefault(a.lead_id, {"id": a.lead_id})
                item.update(status_id=self._status_id(pipeline_id, a.status), pipeline_id=pipeline_id)
                if a.loss_reason:
                    item["loss_reason_id"] = self._loss_reason_id(a.loss_reason)
            elif isinstance(a, CreateTask):
                text, task_type = a.text, a.task_type
                if a.important:
                    text, task_type = self.settings.important.render(text, task_type, available_types)
                task = {"text": text, "complete_till": int(a.due.timestamp()), "entity_type": "leads",
                        "entity_id": a.lead_id}
                if a.responsible_id:
                    task["responsible_user_id"] = a.responsible_id
                type_id = self._task_type_id(task_type)
                if type_id is not None:
                    task["task_type_id"] = type_id
                tasks.append((a.action_key, task))
            elif isinstance(a, AddNote):
                notes.append((a.action_key, {"entity_id": a.lead_id, "note_type": "common",
                                             "params": {"text": a.text}}))
            else:
                raise TypeError(f"cannot apply {type(a).__name__}")
        if updates:
            self.client.update_leads(list(updates.values()))
        if task_updates:
            self.client.update_tasks(list(task_updates.values()))
        if tasks:
            self._made_tasks([t["entity_id"] for _, t in tasks])
            created.update(zip((k for k, _ in tasks), self.client.create_tasks(tasks)))
        if notes:
            created.update(zip((k for k, _ in notes), self.client.create_notes("leads", notes)))
        return created

    def _create_lead(self, a: CreateLead) -> int:
        """The lead and, unless the client has one, its contact, each created once per action
        key (the client records keys), then linked; linking the same pair twice is harmless."""
        pipeline_id = self._default_pipeline_id()
        fields: dict = {"name": a.name, "pipeline_id": pipeline_id}
        if a.status:
            fields["status_id"] = self._status_id(pipeline_id, a.status)
        if a.responsible_id:
            fields["responsible_user_id"] = a.responsible_id
        lead_id = self.client.create_lead(f"{a.action_key}:lead", **fields)
        if a.contact_id:
            self.client.link_contact_to_lead(lead_id, a.contact_id, main=True)
        elif a.phone:
            contact_id = self.client.create_contact(f"{a.action_key}:contact", name=a.name, phone=a.phone,
                                                    **({"responsible_user_id": a.responsible_id}
                                                       if a.responsible_id else {}))
            self.client.link_contact_to_lead(lead_id, contact_id, main=True)
        self._pipeline_of[lead_id] = pipeline_id
        return lead_id

    def _pipeline_for(self, lead_id: int) -> int:
        if lead_id not in self._pipeline_of:
            raw = self.client.get_lead(lead_id, with_contacts=False)
            if raw is None:
                raise UnknownName(f"lead {lead_id} not found", kind=kinds.LEAD, name=str(lead_id))
            self._pipeline_of[lead_id] = int(raw["pipeline_id"])
        return self._pipeline_of[lead_id]

    # closest_task_at might lag behind a task we have just created; for a while after
    # creating one, the lead's tasks are read rather than trusted to that field.
    def _made_tasks(self, lead_ids: Iterable[int]) -> None:
        key = keys.key(self.account.id, "amocrm", "tasks_made")
        now = time.time()
        with self.r.pipeline(transaction=False) as p:
            p.zadd(key, {str(i): now for i in lead_ids})
            p.zremrangebyscore(key, "-inf", now - MADE_LATELY)
            p.execute()

    def _made_task_lately(self, lead_id: int) -> bool:
        at = self.r.zscore(keys.key(self.account.id, "amocrm", "tasks_made"), str(lead_id))
        return at is not None and time.time() - float(at) < MADE_LATELY

