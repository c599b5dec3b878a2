"""The neutral driver on the amoCRM sandbox (sandbox/amocrm): writes through its REST API v4
(acting as a user with the sandbox's X-Sandbox-User header), events from the real
form-encoded webhooks it posts to our receiver, parsed by app/amocrm/parser.py."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import requests

from app import parsers
from sandbox.amocrm import SandboxServer
from sandbox.amocrm.core import DELIVERED_SETTINGS
from sandbox.amocrm.model import CustomField
from tests.driver import (LOST, WON, ApiCall, ContactView, Created, CrmDriver, Events, LeadView, Mark, TaskView,
                          WebhookReceiver, timestamp)

TOKEN = "driver-amocrm-token"
CLOSING = {WON: 142, LOST: 143}           # amoCRM's own closing stages, in every pipeline
CALL_STATUS = {"talked": 4, "not_reached": 6, "busy": 7, "other": 1}  # amoCRM's call_status codes
FIELD_TYPES = {"text": "text", "date": "date", "datetime": "date_time"}
DATE_TYPES = {"date", "date_time", "birthday"}
ENTITIES = {"leads": "lead", "tasks": "task", "contacts": "contact", "calls": "call"}
OPS = {"GET": "read", "POST": "create", "PATCH": "update", "DELETE": "delete"}


def _digits(text: str) -> str:
    return "".join(ch for ch in str(text) if ch.isdigit())


def _moment(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


class AmoCRMDriver(CrmDriver):
    name = "amocrm"

    def __init__(self, account: str, redis_url: str | None = None):
        self.account = account
        self.server = SandboxServer(token=TOKEN, rate_limit=0, webhook_retry_delays=(0.2,)).start()
        self.receiver = WebhookReceiver()
        self.local_urls = (self.server.url, self.receiver.url)
        self.http = requests.Session()
        self.http.headers.update(self.server.headers)
        self._api("POST", "/api/v4/webhooks", json={"destination": self.receiver.url,
                                                    "settings": list(DELIVERED_SETTINGS)})
        info = self._api("GET", "/api/v4/account", params={"with": "task_types,datetime_settings"})
        self.tz = ZoneInfo(info["datetime_settings"]["timezone"])
        self.task_types = {t["name"]: t["id"] for t in info["_embedded"]["task_types"]}
        (self.pipeline,) = [p for p in self._api("GET", "/api/v4/leads/pipelines")["_embedded"]["pipelines"]
                            if p["is_main"]]
        self.stages = {s["name"]: s["id"] for s in self.pipeline["_embedded"]["statuses"]
                       if s["id"] not in CLOSING.values()} | CLOSING
        self.loss_reasons = {r["name"]: r["id"] for r in
                             self._api("GET", "/api/v4/leads/loss_reasons")["_embedded"]["loss_reasons"]}
        self._users = {u["name"]: u["id"] for u in self._api("GET", "/api/v4/users")["_embedded"]["users"]}
        self._read_fields()

    # ------------------------------------------------------------------ plumbing
    def _api(self, method: str, path: str, *, by: int | None = None, **kw) -> Any:
        headers = {"X-Sandbox-User": str(by)} if by is not None else {}
        resp = self.http.request(method, self.server.url + path, headers=headers, **kw)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def _pages(self, path: str, key: str, params: dict | None = None) -> list[dict]:
        found, page = [], 1
        while True:
            got = self._api("GET", path, params={**(params or {}), "limit": 250, "page": page})
            if not got:
                return found
            found += got["_embedded"][key]
            if "next" not in got.get("_links", {}):
                return found
            page += 1

    def _read_fields(self) -> None:
        self.fields = {f["name"]: (f["id"], f["type"])
                       for f in self._pages("/api/v4/leads/custom_fields", "custom_fields")}

    def _values(self, values: dict[str, Any]) -> list[dict]:
        out = []
        for name, value in values.items():
            field_id, kind = self.fields[name]
            if kind in DATE_TYPES and isinstance(value, (datetime, date)):
                value = timestamp(value, self.tz)
            out.append({"field_id": field_id, "values": None if value is None else [{"value": value}]})
        return out

    def _doing(self, write) -> Events:
        mark = self.mark()
        write()
        return self.events_since(mark)

    # ------------------------------------------------------------------ the account
    def account_settings(self) -> dict:
        return {"crm": "amocrm", "amocrm": {"base_url": self.server.url, "long_lived_token": TOKEN,
                                            "rate_limit": 1000}}

    def users(self) -> dict[str, int]:
        return dict(self._users)

    def add_field(self, name: str, kind: str) -> None:
        acc = self.server.account
        with acc.lock:  # amoCRM's API cannot add fields here; an admin adds them in the settings
            field_id = max(acc.fields["leads"]) + 1
            acc.fields["leads"][field_id] = CustomField(id=field_id, name=name, type=FIELD_TYPES[kind],
                                                        entity_type="leads")
        self._read_fields()

    def lead_link(self, lead_id: int) -> str:
        return f"/leads/detail/{lead_id}"

    def generate_leads(self, n: int, *, without_task_share: float, seed: int) -> None:
        self.server.account.generate_leads(n, without_task_share=without_task_share, seed_value=seed)

    # ------------------------------------------------------------------ writes
    def create_lead(self, stage: str, *, name: str = "Тестовая сделка", responsible: int | None = None,
                    values: dict[str, Any] | None = None, phone: str | None = None, client: str = "Клиент",
                    created_at: datetime | None = None, by: int | None = None) -> Created:
        item: dict[str, Any] = {"name": name, "status_id": self.stages[stage], "pipeline_id": self.pipeline["id"]}
        if responsible is not None:
            item["responsible_user_id"] = responsible
        if values:
            item["custom_fields_values"] = self._values(values)
        if created_at is not None:
            item["created_at"] = timestamp(created_at, self.tz)
        mark = self.mark()
        if phone:
            contact = self._api("POST", "/api/v4/contacts", by=by, json=[{"name": client, "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": phone, "enum_code": "WORK"}]}]}])
            item["_embedded"] = {"contacts": [{"id": contact["_embedded"]["contacts"][0]["id"], "is_main": True}]}
        lead_id = self._api("POST", "/api/v4/leads", by=by, json=[item])["_embedded"]["leads"][0]["id"]
        return Created(lead_id, self.events_since(mark))

    def move_lead(self, lead_id: int, stage: str, *, loss_reason: str | None = None,
                  by: int | None = None) -> Events:
        item = {"id": lead_id, "status_id": self.stages[stage], "pipeline_id": self.pipeline["id"]}
        if loss_reason is not None:
            item["loss_reason_id"] = self.loss_reasons[loss_reason]
        return self._doing(lambda: self._api("PATCH", "/api/v4/leads", by=by, json=[item]))

    def set_responsible(self, lead_id: int, user: int, *, by: int | None = None) -> Events:
        return self._doing(lambda: self._api("PATCH", f"/api/v4/leads/{lead_id}", by=by,
                                             json={"responsible_user_id": user}))

    def set_values(self, lead_id: int, values: dict[str, Any], *, by: int | None = None) -> Events:
        return self._doing(lambda: self._api("PATCH", f"/api/v4/leads/{lead_id}", by=by,
                                             json={"custom_fields_values": self._values(values)}))

    def create_task(self, lead_id: int, text: str, due: datetime, *, responsible: int | None = None,
                    type: str | None = None, by: int | None = None) -> Created:
        item: dict[str, Any] = {"text": text, "complete_till": timestamp(due, self.tz), "entity_type": "leads",
                                "entity_id": lead_id}
        if responsible is not None:
            item["responsible_user_id"] = responsible
        if type is not None:
            item["task_type_id"] = self.task_types[type]
        mark = self.mark()
        task_id = self._api("POST", "/api/v4/tasks", by=by, json=[item])["_embedded"]["tasks"][0]["id"]
        return Created(task_id, self.events_since(mark))

    def complete_task(self, task_id: int, result: str | None, *, by: int | None = None) -> Events:
        item: dict[str, Any] = {"is_completed": True}
        if result is not None:
            item["result"] = {"text": result}
        return self._doing(lambda: self._api("PATCH", f"/api/v4/tasks/{task_id}", by=by, json=item))

    def set_task_due(self, task_id: int, due: datetime, *, by: int | None = None) -> Events:
        return self._doing(lambda: self._api("PATCH", f"/api/v4/tasks/{task_id}", by=by,
                                             json={"complete_till": timestamp(due, self.tz)}))

    def delete_task(self, task_id: int) -> Events:
        acc = self.server.account

        def delete() -> None:
            with acc.lock:  # API v4 cannot delete tasks; a manager in amoCRM's interface can
                task = acc.tasks.pop(task_id)
                acc._tasks_by_entity[(task.entity_type, task.entity_id)].discard(task_id)
        return self._doing(delete)

    def add_comment(self, lead_id: int, text: str, *, by: int | None = None) -> Events:
        return self._doing(lambda: self._api("POST", "/api/v4/leads/notes", by=by, json=[{
            "entity_id": lead_id, "note_type": "common", "params": {"text": text}}]))

    def log_call(self, lead_id: int, direction: str, outcome: str, *, duration: int = 0,
                 at: datetime | None = None, by: int | None = None, phone: str | None = None) -> Events:
        phone = phone or self.client_phone(lead_id)
        note: dict[str, Any] = {"entity_id": lead_id, "note_type": "call_in" if direction == "in" else "call_out",
                                "params": {"duration": duration, "source": "driver", "phone": _digits(phone),
                                           "call_status": CALL_STATUS[outcome]}}
        if by is not None:  # the manager who called; a call without one is a robot's (user 0)
            note["created_by"] = note["responsible_user_id"] = by
        if at is not None:
            note["created_at"] = timestamp(at, self.tz)
        return self._doing(lambda: self._api("POST", "/api/v4/leads/notes", by=by, json=[note]))

    # ------------------------------------------------------------------ reads
    def _lead_view(self, raw: dict) -> LeadView:
        names = {v: k for k, v in self.stages.items()}
        reasons = {v: k for k, v in self.loss_reasons.items()}
        values = {}
        for f in raw.get("custom_fields_values") or []:
            if f["values"]:
                v = f["values"][0].get("value")
                values[f["field_name"]] = _moment(v) if f["field_type"] in DATE_TYPES else v
        return LeadView(id=raw["id"], name=raw["name"], stage=names.get(raw["status_id"], str(raw["status_id"])),
                        responsible=raw["responsible_user_id"], values=values,
                        loss_reason=reasons.get(raw["loss_reason_id"]), created_at=_moment(raw["created_at"]),
                        contacts=tuple(c["id"] for c in raw["_embedded"].get("contacts", [])))

    def _task_view(self, raw: dict) -> TaskView:
        types = {v: k for k, v in self.task_types.items()}
        return TaskView(id=raw["id"], lead_id=raw["entity_id"] if raw["entity_type"] == "leads" else None,
                        text=raw["text"], due=_moment(raw["complete_till"]), responsible=raw["responsible_user_id"],
                        type=types[raw["task_type_id"]], completed=raw["is_completed"],
                        result=(raw["result"] or {}).get("text"))

    def lead(self, lead_id: int) -> LeadView | None:
        raw = self._api("GET", f"/api/v4/leads/{lead_id}", params={"with": "contacts"})
        return self._lead_view(raw) if raw else None

    def leads(self) -> list[LeadView]:
        return [self._lead_view(x) for x in self._pages("/api/v4/leads", "leads", {"with": "contacts"})]

    def open_tasks(self, lead_id: int) -> list[TaskView]:
        return [t for t in self.tasks(lead_id) if not t.completed]

    def tasks(self, lead_id: int) -> list[TaskView]:
        return [self._task_view(t) for t in self._pages("/api/v4/tasks", "tasks", {
            "filter[entity_type]": "leads", "filter[entity_id][]": lead_id})]

    def task(self, task_id: int) -> TaskView | None:
        raw = self._api("GET", f"/api/v4/tasks/{task_id}")
        return self._task_view(raw) if raw else None

    def contacts(self) -> list[ContactView]:
        out = []
        for c in self._pages("/api/v4/contacts", "contacts", {"with": "leads"}):
            phones = tuple(_digits(v["value"]) for f in c.get("custom_fields_values") or []
                           if f.get("field_code") == "PHONE" for v in f["values"])
            out.append(ContactView(id=c["id"], name=c["name"], phones=phones,
                                   leads=tuple(x["id"] for x in c["_embedded"].get("leads", []))))
        return out

    def comments(self, lead_id: int) -> list[str]:
        notes = self._pages(f"/api/v4/leads/{lead_id}/notes", "notes", {"filter[note_type]": "common"})
        return [n["params"]["text"] for n in sorted(notes, key=lambda n: (n["created_at"], n["id"]))]

    # ------------------------------------------------------------------ what the CRM saw
    def mark(self) -> Mark:
        assert self.server.wait_webhooks(5), "the sandbox's webhooks did not arrive"
        log = self.server.sandbox.requests.since(0)
        return Mark(webhooks=len(self.receiver.deliveries), requests=log[-1]["index"] + 1 if log else 0)

    def events_since(self, mark: Mark) -> Events:
        assert self.server.wait_webhooks(5), "the sandbox's webhooks did not arrive"
        found = Events()
        for d in self.receiver.since(mark.webhooks):
            assert d.content_type == "application/x-www-form-urlencoded", d.content_type
            found += parsers.parse("amocrm", d.body, self.account).events
        return found

    def calls_since(self, mark: Mark) -> list[ApiCall]:
        calls = []
        for req in self.server.sandbox.requests.since(mark.requests):
            parts = req["path"].removeprefix("/api/v4/").split("/")
            entity = "comment" if "notes" in parts else ENTITIES.get(parts[0], "other")
            calls.append(ApiCall(OPS.get(req["method"], "other"), entity))
        return calls

    def close(self) -> None:
        self.server.stop()
        self.receiver.close()
        self.http.close()
