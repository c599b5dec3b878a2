"""One Bitrix24 portal in memory: its clock and ids, users, pipelines, fields and CRM data.

Entities are kept in their wire form (the dicts the REST methods answer with: string
values, ISO dates in the portal's zone), so reading one is a copy and a select.
Writes live in crm.py, activities.py, tasks.py and telephony.py; each change is
announced with `emit(event, data, caller)` to the listeners (the event sender), after
the write is complete. One re-entrant lock guards everything; readers take it too.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from sandbox import seeds

from . import seed
from .filters import iso

DEFAULT_SEED = Path(__file__).with_name("demo_portal.yaml")
OWNER_TYPES = {1: "LEAD", 2: "DEAL", 3: "CONTACT", 4: "COMPANY"}   # CONFIRMED (crm data-types)
BINDING_PREFIX = {"L": 1, "D": 2, "C": 3, "CO": 4}                 # UF_CRM_TASK "D_12"


@dataclass(frozen=True)
class Caller:
    """Who makes a call: the webhook's or token's user, and how they are authorised."""
    user_id: int
    kind: str = "webhook"        # "webhook" | "oauth" | "page" (the sandbox's own page)


Listener = Callable[[str, dict, Caller], None]


class Portal:
    def __init__(self, seed_path: str | Path | None = None, *, clock: Callable[[], float] | None = None):
        self.lock = threading.RLock()
        self.seed_path = Path(seed_path) if seed_path else DEFAULT_SEED
        self._clock = clock or time.time
        self.clock_shift = 0.0
        self.base_url = "http://127.0.0.1"     # the server sets its own; client_endpoint and domain follow it
        self._listeners: list[Listener] = []
        self.reset()

    # ------------------------------------------------------------------ time and ids
    def now(self) -> float:
        return self._clock() + self.clock_shift

    def set_clock(self, *, now: float | None = None, shift: float | None = None,
                  advance: float | None = None) -> None:
        """Move the portal's time: to a unix time, to a shift from the real clock, or forward by seconds."""
        with self.lock:
            if now is not None:
                self.clock_shift = now - self._clock()
            elif shift is not None:
                self.clock_shift = shift
            elif advance is not None:
                self.clock_shift += advance

    def iso(self, ts: float | None = None) -> str | None:
        return iso(self.now() if ts is None else ts, self.tz)

    def new_id(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    # ------------------------------------------------------------------ seed
    def reset(self) -> None:
        spec = seeds.read(self.seed_path)
        with self.lock:
            self._clear()
            seed.populate(self, spec)

    def _clear(self) -> None:
        self.info: dict = {}
        self.tz = ZoneInfo("Europe/Moscow")
        self.ids: dict[str, int] = {}
        self.users: dict[int, dict] = {}
        self.departments: dict[int, dict] = {}
        self.categories: dict[int, dict] = {}
        self.statuses: list[dict] = []          # crm.status.list items: deal stages, lead statuses, sources
        self.userfields: dict[str, list[dict]] = {"CRM_DEAL": [], "CRM_LEAD": [], "CRM_CONTACT": []}
        self.deals: dict[int, dict] = {}
        self.leads: dict[int, dict] = {}
        self.contacts: dict[int, dict] = {}
        self.activities: dict[int, dict] = {}
        self.comments: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.task_history: dict[int, list[dict]] = {}   # by task id: tasks.task.history.list entries, oldest first
        self.calls: dict[str, dict] = {}        # by CALL_ID: registered calls and finished statistic records

    @property
    def domain(self) -> str:
        return self.info.get("domain") or self.base_url.split("://", 1)[-1].rstrip("/")

    @property
    def client_endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/rest/"

    # ------------------------------------------------------------------ lookups
    def store(self, owner_type_id: int) -> dict[int, dict] | None:
        return {1: self.leads, 2: self.deals, 3: self.contacts}.get(owner_type_id)

    def user_name(self, user_id: int) -> str:
        u = self.users.get(user_id)
        return f"{u['NAME']} {u['LAST_NAME']}" if u else ""

    def user_by_name(self, full_name: str) -> dict:
        return next(u for u in self.users.values() if f"{u['NAME']} {u['LAST_NAME']}" == full_name)

    def stage_entity(self, category_id: int) -> str:
        return "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"

    def stages(self, category_id: int) -> list[dict]:
        entity = self.stage_entity(category_id)
        return sorted((s for s in self.statuses if s["ENTITY_ID"] == entity), key=lambda s: int(s["SORT"]))

    def stage(self, status_id: str) -> dict | None:
        return next((s for s in self.statuses if s["ENTITY_ID"].startswith("DEAL_STAGE")
                     and s["STATUS_ID"] == status_id), None)

    def stage_by_name(self, name: str, category_id: int = 0) -> dict:
        return next(s for s in self.stages(category_id) if s["NAME"] == name)

    def lead_status(self, status_id: str) -> dict | None:
        return next((s for s in self.statuses if s["ENTITY_ID"] == "STATUS" and s["STATUS_ID"] == status_id), None)

    def field_kinds(self, uf_entity: str) -> dict[str, str]:
        kinds = {"datetime": "datetime", "date": "date", "integer": "int", "double": "double",
                 "enumeration": "int", "employee": "int"}
        return {f["FIELD_NAME"]: kinds.get(f["USER_TYPE_ID"], "string") for f in self.userfields[uf_entity]}

    def userfield(self, uf_entity: str, code: str) -> dict | None:
        return next((f for f in self.userfields[uf_entity] if f["FIELD_NAME"] == code), None)

    def userfield_by_label(self, uf_entity: str, label: str) -> dict:
        return next(f for f in self.userfields[uf_entity] if f["EDIT_FORM_LABEL"] == label)

    def snapshot(self, store: dict[int, dict], entity_id: int) -> dict | None:
        with self.lock:
            found = store.get(entity_id)
            return copy.deepcopy(found) if found is not None else None

    # ------------------------------------------------------------------ events
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, event: str, data: dict, caller: Caller) -> None:
        for listener in list(self._listeners):
            listener(event, data, caller)
