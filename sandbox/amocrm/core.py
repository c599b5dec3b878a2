"""The base of one in-memory amoCRM account: its data, its clock and ids, and how writes report what they did.

Every public write (in leads.py, contacts.py, tasks.py, notes.py, subscriptions.py)
validates the whole batch first (amoCRM answers 400 and changes nothing when one item is
invalid), then applies it, records events (GET /api/v4/events) and emits `Change` notices.
Changes made inside one `changes()` block are handed to the listeners together once the
block ends, so one API request becomes one webhook POST per destination carrying every
section it touched (as real amoCRM batches them).

Thread safety: one re-entrant lock guards all data; readers take `account.lock` too.
"""

from __future__ import annotations

import copy
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sandbox import seeds

from . import fields as cf
from . import seed
from .model import (CLOSED, CONTACTS, LEADS, AccountInfo, Contact, CustomField, Event, Lead, LossReason, Note,
                    Pipeline, Status, Tag, Task, TaskType, User, Webhook)
from .problems import FIELD_MISSING, INVALID_TYPE, NOT_FOUND, NOT_SUPPORTED_CHOICE, Problems
from .ulid import UlidGenerator

DEFAULT_SEED = Path(__file__).with_name("demo_account.yaml")

# Settings the sandbox delivers webhooks for.
DELIVERED_SETTINGS = (
    "add_lead", "update_lead", "delete_lead", "restore_lead", "status_lead", "responsible_lead", "note_lead",
    "add_contact", "update_contact", "note_contact", "add_task", "update_task", "delete_task",
)
# Every name amoCRM accepts when subscribing (recalled list, UNCONFIRMED); the rest is accepted, never fired.
KNOWN_SETTINGS = DELIVERED_SETTINGS + (
    "delete_contact", "restore_contact", "responsible_contact", "add_company", "update_company",
    "delete_company", "restore_company", "responsible_company", "note_company", "add_customer",
    "update_customer", "delete_customer", "responsible_customer", "note_customer", "responsible_task",
    "add_unsorted", "delete_unsorted", "add_catalog", "update_catalog", "delete_catalog", "add_message",
    "add_talk", "update_talk",
)


@dataclass(frozen=True)
class Change:
    """One webhook-worthy change: `section[action][i][...]` of a body, for subscribers of `setting`."""
    setting: str          # e.g. "status_lead"
    section: str          # "leads" | "contacts" | "task"
    action: str           # "add" | "update" | "status" | "responsible" | "note" | "delete"
    entity: Any           # a snapshot (deep copy) taken when the change happened
    extra: dict = field(default_factory=dict)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _known(store: dict, value) -> bool:
    """An int id present in `store` (guards against lists or objects sent where an id belongs)."""
    return _is_int(value) and value in store


class AccountCore:
    """Storage, time and ids, change notices and events, lookups, and the checks every write shares."""

    def __init__(self, seed_path: str | Path | None = None, *, clock: Callable[[], float] | None = None):
        self.lock = threading.RLock()
        self.seed_path = Path(seed_path) if seed_path else DEFAULT_SEED
        self.clock_shift = 0.0             # seconds added to the clock (POST /_sandbox/clock)
        self._clock = clock or time.time
        self._local = threading.local()
        self._listeners: list[Callable[[list[Change]], None]] = []
        self._ulid = UlidGenerator()
        self.webhooks: dict[str, Webhook] = {}  # by destination: one subscription per destination
        self.reset(keep_webhooks=False)

    # ----------------------------------------------------------------- time, ids
    def now(self) -> int:
        return int(self._clock() + self.clock_shift)

    def set_clock(self, *, now: float | None = None, shift: float | None = None) -> None:
        """Move the sandbox's time: to an absolute unix time, or by a shift from the real clock."""
        with self.lock:
            if now is not None:
                self.clock_shift = now - self._clock()
            elif shift is not None:
                self.clock_shift = shift

    def _new_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    # ----------------------------------------------------------------- seed
    def reset(self, keep_webhooks: bool = True) -> None:
        """Reload the seed file; webhook subscriptions survive unless told otherwise."""
        spec = seeds.read(self.seed_path)
        with self.lock:
            kept = self.webhooks if keep_webhooks else {}
            self._clear()
            seed.populate(self, spec)
            self.webhooks = kept

    def generate_leads(self, n: int, without_task_share: float = 0.1, *, seed_value: int = 0) -> list[int]:
        """Add n leads (each with a contact and phone) across the pipeline, silently (no events, no webhooks).

        Leads in active statuses get one open task each, except `without_task_share` of them.
        """
        with self.lock:
            return seed.generate_leads(self, n, without_task_share, seed_value)

    def _clear(self) -> None:
        self.info: AccountInfo | None = None
        self.users: dict[int, User] = {}
        self.user_groups: list[dict] = []
        self.task_types: dict[int, TaskType] = {}
        self.pipelines: dict[int, Pipeline] = {}
        self.loss_reasons: dict[int, LossReason] = {}
        self.fields: dict[str, dict[int, CustomField]] = {LEADS: {}, CONTACTS: {}}
        self.tags: dict[int, Tag] = {}
        self.leads: dict[int, Lead] = {}
        self.contacts: dict[int, Contact] = {}
        self.tasks: dict[int, Task] = {}
        self.notes: dict[int, Note] = {}
        self.events: list[Event] = []
        self._tasks_by_entity: dict[tuple[str, int], set[int]] = {}
        self._ids = {"lead": 0, "contact": 0, "task": 0, "note": 0, "tag": 0, "webhook": 0}

    # ----------------------------------------------------------------- listeners
    def add_listener(self, listener: Callable[[list[Change]], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[list[Change]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @contextmanager
    def changes(self) -> Iterator[None]:
        """Group the changes of one request; nested blocks join the outer one."""
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        self._local.batch = []
        try:
            yield
        finally:
            batch, self._local.batch = self._local.batch, None
            if batch:
                for listener in list(self._listeners):
                    listener(batch)

    def _emit(self, setting: str, section: str, action: str, entity: Any, **extra: Any) -> None:
        change = Change(setting, section, action, copy.deepcopy(entity), extra)
        batch = getattr(self._local, "batch", None)
        if batch is None:
            for listener in list(self._listeners):
                listener([change])
        else:
            batch.append(change)

    def _event(self, type_: str, entity_type: str, entity_id: int, actor: int,
               before: list | None = None, after: list | None = None) -> None:
        now = self.now()
        self.events.append(Event(self._ulid.new(self._clock() + self.clock_shift), type_, entity_type, entity_id,
                                 actor, now, after or [], before or []))

    # ----------------------------------------------------------------- lookups
    def main_pipeline(self) -> Pipeline:
        return next((p for p in self.pipelines.values() if p.is_main), next(iter(self.pipelines.values())))

    def first_status(self, pipeline: Pipeline) -> Status:
        """Where new leads arrive: the first ordinary status by sort."""
        return min((s for s in pipeline.statuses if s.id not in CLOSED and s.type == 0), key=lambda s: s.sort)

    def status(self, pipeline_id: int, status_id: int) -> Status | None:
        pipeline = self.pipelines.get(pipeline_id)
        return pipeline.status(status_id) if pipeline else None

    def status_by_name(self, name: str, pipeline: Pipeline | None = None) -> Status:
        for s in (pipeline or self.main_pipeline()).statuses:
            if s.name == name:
                return s
        raise KeyError(name)

    def user_by_name(self, name: str) -> User:
        return next(u for u in self.users.values() if u.name == name)

    def field_by_name(self, entity_type: str, name: str) -> CustomField:
        return next(f for f in self.fields[entity_type].values() if f.name == name)

    def phone_field_ids(self) -> set[int]:
        return {f.id for f in self.fields[CONTACTS].values() if f.code == "PHONE"}

    def contact_phones(self, contact: Contact) -> list[str]:
        return cf.phones(contact.custom_fields, self.phone_field_ids())

    def contacts_by_phone(self, phone: str) -> list[Contact]:
        key = cf.phone_key(phone)
        if len(key) < 5:
            return []
        ids = self.phone_field_ids()
        return [c for c in self.contacts.values()
                if any(cf.phone_key(p) == key for p in cf.phones(c.custom_fields, ids))]

    def tasks_of(self, entity_type: str, entity_id: int, open_only: bool = True) -> list[Task]:
        ids = self._tasks_by_entity.get((entity_type, entity_id), ())
        found = [self.tasks[i] for i in ids]
        if open_only:
            found = [t for t in found if not t.is_completed]
        return sorted(found, key=lambda t: (t.complete_till, t.id))

    def closest_task_at(self, entity_type: str, entity_id: int) -> int | None:
        open_tasks = self.tasks_of(entity_type, entity_id)
        return open_tasks[0].complete_till if open_tasks else None

    def active_leads(self, contact: Contact) -> list[Lead]:
        return [self.leads[i] for i in contact.lead_ids if i in self.leads and self.leads[i].status_id not in CLOSED]

    def actor(self, requested: Any = None) -> int:
        """The user a write is made by: a known requested user, else the token's user."""
        try:
            user_id = int(requested)
        except (TypeError, ValueError):
            return self.info.current_user_id
        return user_id if user_id in self.users else self.info.current_user_id

    # ----------------------------------------------------------------- inserting (seed and writes)
    def _insert_lead(self, **kw: Any) -> Lead:
        lead = Lead(id=self._new_id("lead"), **kw)
        if lead.status_id in CLOSED and lead.closed_at is None:
            lead.closed_at = lead.updated_at
        self.leads[lead.id] = lead
        return lead

    def _insert_contact(self, **kw: Any) -> Contact:
        contact = Contact(id=self._new_id("contact"), **kw)
        self.contacts[contact.id] = contact
        return contact

    def _insert_task(self, **kw: Any) -> Task:
        task = Task(id=self._new_id("task"), **kw)
        self.tasks[task.id] = task
        self._index_task(task)
        return task

    def _index_task(self, task: Task, old: tuple[str | None, int | None] | None = None) -> None:
        if old and old[0]:
            self._tasks_by_entity.get((old[0], old[1]), set()).discard(task.id)
        if task.entity_type and task.entity_id:
            self._tasks_by_entity.setdefault((task.entity_type, task.entity_id), set()).add(task.id)

    def _link(self, lead: Lead, contact: Contact, main: bool = False) -> bool:
        if contact.id in lead.contact_ids:
            if main and lead.contact_ids[0] != contact.id:
                lead.contact_ids.remove(contact.id)
                lead.contact_ids.insert(0, contact.id)
            return False
        if main:
            lead.contact_ids.insert(0, contact.id)
        else:
            lead.contact_ids.append(contact.id)
        contact.lead_ids.append(lead.id)
        return True

    def _unlink(self, lead: Lead, contact: Contact) -> bool:
        if contact.id not in lead.contact_ids:
            return False
        lead.contact_ids.remove(contact.id)
        contact.lead_ids.remove(lead.id)
        return True

    def _tag_ids(self, specs: list[dict]) -> list[int]:
        """Resolve tag specs ({"id"} or {"name"}), creating tags named for the first time."""
        ids = []
        for spec in specs:
            if "id" in spec:
                ids.append(spec["id"])
                continue
            tag = next((t for t in self.tags.values() if t.name == spec["name"]), None)
            if tag is None:
                tag = Tag(self._new_id("tag"), spec["name"])
                self.tags[tag.id] = tag
            ids.append(tag.id)
        return list(dict.fromkeys(ids))

    # ----------------------------------------------------------------- shared validation
    def _check_int(self, item: dict, key: str, rid: str, problems: Problems, path: str | None = None):
        value = item.get(key)
        if value is not None and not _is_int(value):
            problems.add(rid, path or key, INVALID_TYPE, type="int")
            return None
        return value

    def _check_user(self, item: dict, key: str, rid: str, problems: Problems):
        value = self._check_int(item, key, rid, problems)
        if value is not None and value not in self.users:
            problems.add(rid, key, NOT_SUPPORTED_CHOICE)
            return None
        return value

    def _take_ints_and_responsible(self, item: dict, int_keys: tuple[str, ...], rid: str, problems: Problems,
                                   plan: dict) -> None:
        """Into plan: the given integer fields and responsible_user_id, those present and valid."""
        for key in int_keys:
            if item.get(key) is not None:
                value = self._check_int(item, key, rid, problems)
                if value is not None:
                    plan[key] = value
        if "responsible_user_id" in item:
            value = self._check_user(item, "responsible_user_id", rid, problems)
            if value is not None:
                plan["responsible_user_id"] = value

    def _check_tags(self, raw, path: str, rid: str, problems: Problems) -> list[dict] | None:
        if raw is None:
            return None
        if not isinstance(raw, list):
            problems.add(rid, path, INVALID_TYPE, type="array")
            return None
        specs = []
        for i, t in enumerate(raw):
            if isinstance(t, dict) and _is_int(t.get("id")):
                if t["id"] not in self.tags:
                    problems.add(rid, f"{path}.{i}.id", NOT_SUPPORTED_CHOICE)
                    continue
                specs.append({"id": t["id"]})
            elif isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"].strip():
                specs.append({"name": t["name"].strip()})
            else:
                problems.add(rid, f"{path}.{i}", NOT_SUPPORTED_CHOICE)
        return specs

    def _check_items(self, items: Any) -> list[tuple[str, dict]]:
        """Bodies of collection writes are JSON arrays of objects; request_id defaults to the index."""
        problems = Problems()
        if not isinstance(items, list) or not items:
            problems.add("0", "", INVALID_TYPE, type="array of objects")
            problems.raise_if_any()
        out = []
        for i, item in enumerate(items):
            rid = str(item.get("request_id", i)) if isinstance(item, dict) else str(i)
            if not isinstance(item, dict):
                problems.add(rid, "", INVALID_TYPE, type="object")
                continue
            out.append((rid, item))
        problems.raise_if_any()
        return out

    def _update_each(self, store: dict, items: Any, check: Callable, apply: Callable) -> list[tuple[Any, str]]:
        """A PATCH of a collection: every item is checked first (one problem anywhere refuses
        the whole request, as amoCRM does), then each is applied. `check(item, rid, problems,
        entity)` returns the item's plan; `apply(entity, plan)` makes the change."""
        with self.changes(), self.lock:
            problems = Problems()
            plans = []
            for rid, item in self._check_items(items):
                entity = self._check_existing(store, item, rid, problems)
                if entity is not None:
                    plans.append((rid, entity, check(item, rid, problems, entity)))
            problems.raise_if_any()
            return [(apply(entity, plan), rid) for rid, entity, plan in plans]

    def _check_existing(self, store: dict, item: dict, rid: str, problems: Problems):
        value = item.get("id")
        if value is None:
            problems.add(rid, "id", FIELD_MISSING)
            return None
        if not _is_int(value):
            problems.add(rid, "id", INVALID_TYPE, type="int")
            return None
        if value not in store:
            problems.add(rid, "id", NOT_FOUND)
            return None
        return store[value]

