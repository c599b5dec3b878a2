"""The neutral driver on the Bitrix24 sandbox (sandbox/bitrix24): writes through its REST API
(the incoming webhook for the integration's user, an OAuth token of the user for `by`), events
from the real form-encoded outgoing-webhook bodies it posts to our receiver.

Bitrix24's events carry only ids, so each body becomes one `crm.changed` event
(app/bitrix24/parser.py) and the product's connector (connectors/bitrix24/crm.py)
expands it into the neutral events by reading the deal and comparing it with the state last
seen, in the test's Redis. The demo account is the sandbox's demo portal (deals as leads);
Bitrix24 has no task types, so a task's type reads back as "". The next step is a CRM to-do,
or with next_step="task" (the account's `bitrix24.next_step`) a task bound to the deal; a
task's id is its activity's id either way, as the connector's."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import redis as redis_lib
import requests

from app import parsers
from connectors.bitrix24.crm import Bitrix24CRM
from connectors.bitrix24.webhooks import EVENTS
from reglament.config import Settings
from reglament.events import Event
from sandbox.bitrix24 import Credentials, Portal, PortalServer
from sandbox.bitrix24.seed import _userfield
from tests.driver import (LOST, WON, ApiCall, ContactView, Created, CrmDriver, Events, LeadView, Mark, TaskView,
                          WebhookReceiver)

CREDS = Credentials(webhook_user=1, webhook_code="driver-b24-code", client_id="local.driver",
                    client_secret="driver-secret", application_token="driver-app-token")
STATUS_CODES = {"talked": "200", "not_reached": "304", "busy": "486", "other": "404"}
# A driver's date field is read back as a moment (amoCRM keeps a timestamp); Bitrix24's "date"
# type keeps only the day, so the driver's fields are date-times.
UF_TYPES = {"text": "string", "date": "datetime", "datetime": "datetime"}
DATE_TYPES = {"date", "datetime"}
OPS = (("add", "create"), ("register", "create"), ("update", "update"), ("complete", "update"),
       ("delete", "delete"), ("unbind", "delete"))
ENTITIES = {"deal": "lead", "activity": "task", "task": "task", "contact": "contact", "comment": "comment",
            "externalcall": "call", "statistic": "call"}


def _op(method: str) -> str:
    last = method.lower().rsplit(".", 1)[-1]
    return next((op for prefix, op in OPS if last.startswith(prefix)), "read")


def _digits(text: str) -> str:
    return "".join(ch for ch in str(text) if ch.isdigit())


class Bitrix24Driver(CrmDriver):
    name = "bitrix24"
    has_task_types = False

    def __init__(self, account: str, redis_url: str | None = None, next_step: str = "todo"):
        self.account = account
        self.next_step = next_step
        self.portal = Portal()
        self.server = PortalServer(self.portal, CREDS, rate=0, event_timeout=5).__enter__()
        self.receiver = WebhookReceiver()
        self.local_urls = (self.server.url, self.receiver.url)
        self.http = requests.Session()
        self.tz = ZoneInfo("Europe/Moscow")
        self.server.events.add_webhook(self.receiver.url, list(EVENTS))
        self._users = {" ".join(p for p in (u["NAME"], u["LAST_NAME"]) if p): int(u["ID"])
                       for u in self._call("user.get")}
        self._tokens: dict[int, str] = {}
        self._expanded: dict[int, list[Event]] = {}
        self.add_field("Источник", "text")
        if redis_url is None:
            raise ValueError("the Bitrix24 driver keeps the deals' last state in Redis: give redis_url")
        self.r = redis_lib.Redis.from_url(redis_url)
        settings = Settings.model_validate({"public_url": "http://127.0.0.1:8000", "accounts": [
            {"id": account, "webhook_secret": "d" * 30, **self.account_settings()}]})
        self.connector = Bitrix24CRM.for_account(settings.accounts[0], self.r, max_attempts=2)
        self.connector.baseline()

    # ------------------------------------------------------------------ plumbing
    def _call(self, method: str, params: dict | None = None, *, by: int | None = None) -> Any:
        if by is None or by == CREDS.webhook_user:
            resp = self.http.post(self.server.webhook_url + method, json=params or {}, timeout=10)
        else:
            if by not in self._tokens:
                self._tokens[by] = self.server.auth.issue(by)["access_token"]
            resp = self.http.post(f"{self.server.url}/rest/{method}", json={**(params or {}), "auth": self._tokens[by]},
                                  timeout=10)
        assert resp.status_code == 200, f"{method}: {resp.status_code} {resp.text}"
        body = resp.json()
        if "next" in body and isinstance(body["result"], list):
            rows, start = list(body["result"]), body["next"]
            while start:
                more = self.http.post(self.server.webhook_url + method, json={**(params or {}), "start": start},
                                      timeout=10).json()
                rows += more["result"]
                start = more.get("next")
            return rows
        return body["result"]

    def _doing(self, write) -> Events:
        mark = self.mark()
        write()
        return self.events_since(mark)

    def _stage_id(self, stage: str) -> str:
        if stage == WON:
            return "WON"
        if stage == LOST:
            return "LOSE"
        found = next((s for s, name in self._stages().items() if name == stage), None)
        assert found, f"no stage «{stage}»"
        return found

    def _stages(self) -> dict[str, str]:
        return {s["STATUS_ID"]: s["NAME"] for s in self._call("crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}})}

    def _fields(self) -> dict[str, dict]:
        return {f["EDIT_FORM_LABEL"]: f for f in self._call("crm.deal.userfield.list")}

    def _wire(self, values: dict[str, Any]) -> dict:
        fields, out = self._fields(), {}
        for label, value in values.items():
            uf = fields[label]
            if value is None:
                value = ""
            elif uf["USER_TYPE_ID"] == "enumeration":
                value = next(i["ID"] for i in uf["LIST"] if i["VALUE"] == value)
            elif isinstance(value, datetime):
                value = value.astimezone(self.tz).isoformat(timespec="seconds")
            elif isinstance(value, date):
                value = value.isoformat()
            out[uf["FIELD_NAME"]] = value
        return out

    # ------------------------------------------------------------------ the account
    def account_settings(self) -> dict:
        return {"crm": "bitrix24", "timezone": "Europe/Moscow",
                "bitrix24": {"webhook_url": self.server.webhook_url, "rate_limit": 1000, "catchup_seconds": 0,
                             "next_step": self.next_step}}

    def users(self) -> dict[str, int]:
        return dict(self._users)

    def add_field(self, name: str, kind: str) -> None:
        with self.portal.lock:  # an admin adds fields in the portal's settings
            fields = self.portal.userfields["CRM_DEAL"]
            number = max(int(f["ID"]) for f in fields) + 1
            fields.append(_userfield({"id": number, "code": f"UF_CRM_DRIVER_{number}", "type": UF_TYPES[kind],
                                      "name": name}, "CRM_DEAL", number * 10))
        if hasattr(self, "connector"):
            self.connector.names(refresh=True)

    def lead_link(self, lead_id: int) -> str:
        return f"/crm/deal/details/{lead_id}/"

    def generate_leads(self, n: int, *, without_task_share: float, seed: int) -> None:
        requests.post(f"{self.server.url}/_sandbox/generate", params={"n": n, "without_todo_share": without_task_share},
                      timeout=120)
        self.connector.baseline()

    # ------------------------------------------------------------------ writes
    def create_lead(self, stage: str, *, name: str = "Тестовая сделка", responsible: int | None = None,
                    values: dict[str, Any] | None = None, phone: str | None = None, client: str = "Клиент",
                    created_at: datetime | None = None, by: int | None = None) -> Created:
        fields: dict[str, Any] = {"TITLE": name, "STAGE_ID": self._stage_id(stage), "CATEGORY_ID": 0,
                                  **self._wire(values or {})}
        if responsible is not None:
            fields["ASSIGNED_BY_ID"] = responsible
        mark = self.mark()
        if phone:
            fields["CONTACT_ID"] = self._call("crm.contact.add", {"fields": {
                "NAME": client, "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}]}}, by=by)
        lead_id = int(self._call("crm.deal.add", {"fields": fields}, by=by))
        if created_at is not None:
            with self.portal.lock:  # Bitrix24 sets DATE_CREATE itself; an import can backdate it
                self.portal.deals[lead_id]["DATE_CREATE"] = self.portal.iso(created_at.timestamp())
        return Created(lead_id, self.events_since(mark))

    def move_lead(self, lead_id: int, stage: str, *, loss_reason: str | None = None,
                  by: int | None = None) -> Events:
        fields = {"STAGE_ID": self._stage_id(stage)}
        if loss_reason is not None:
            fields.update(self._wire({"Причина отказа": loss_reason}))
        return self._doing(lambda: self._call("crm.deal.update", {"id": lead_id, "fields": fields}, by=by))

    def set_responsible(self, lead_id: int, user: int, *, by: int | None = None) -> Events:
        return self._doing(lambda: self._call("crm.deal.update", {"id": lead_id,
                                                                  "fields": {"ASSIGNED_BY_ID": user}}, by=by))

    def set_values(self, lead_id: int, values: dict[str, Any], *, by: int | None = None) -> Events:
        return self._doing(lambda: self._call("crm.deal.update", {"id": lead_id, "fields": self._wire(values)},
                                              by=by))

    def create_task(self, lead_id: int, text: str, due: datetime, *, responsible: int | None = None,
                    type: str | None = None, by: int | None = None) -> Created:
        deadline = due.astimezone(self.tz).isoformat(timespec="seconds")
        mark = self.mark()
        if self.next_step == "task":
            fields = {"TITLE": text, "DEADLINE": deadline, "RESPONSIBLE_ID": responsible or by or CREDS.webhook_user,
                      "UF_CRM_TASK": [f"D_{lead_id}"]}
            task = int(self._call("tasks.task.add", {"fields": fields}, by=by)["task"]["id"])
            task_id = int(self._task_activity(task)["ID"])
        else:
            params: dict[str, Any] = {"ownerTypeId": 2, "ownerId": lead_id, "title": text, "deadline": deadline}
            if responsible is not None:
                params["responsibleId"] = responsible
            task_id = int(self._call("crm.activity.todo.add", params, by=by)["id"])
        return Created(task_id, self.events_since(mark))

    def _task_activity(self, task: int) -> dict:
        (act,) = self._call("crm.activity.list", {"filter": {"PROVIDER_ID": "TASKS_TASK", "ASSOCIATED_ENTITY_ID": task},
                                                  "select": ["ID", "ASSOCIATED_ENTITY_ID"]})
        return act

    def _task_of(self, activity_id: int) -> int | None:
        """The task behind a task's activity; None for a to-do."""
        act = self._call("crm.activity.get", {"id": activity_id})
        return int(act["ASSOCIATED_ENTITY_ID"]) if act["PROVIDER_ID"] == "TASKS_TASK" else None

    def complete_task(self, task_id: int, result: str | None, *, by: int | None = None) -> Events:
        task = self._task_of(task_id)
        if task is not None:   # a task's result is its description here, as a to-do's
            if result:
                self._call("tasks.task.update", {"taskId": task, "fields": {"DESCRIPTION": result}}, by=by)
            return self._doing(lambda: self._call("tasks.task.complete", {"taskId": task}, by=by))
        fields: dict[str, Any] = {"COMPLETED": "Y"}
        if result:
            fields["DESCRIPTION"] = result   # a to-do has no result field
        return self._doing(lambda: self._call("crm.activity.update", {"id": task_id, "fields": fields}, by=by))

    def set_task_due(self, task_id: int, due: datetime, *, by: int | None = None) -> Events:
        task = self._task_of(task_id)
        if task is not None:
            return self._doing(lambda: self._call("tasks.task.update", {"taskId": task, "fields": {
                "DEADLINE": due.astimezone(self.tz).isoformat(timespec="seconds")}}, by=by))
        act = self._call("crm.activity.get", {"id": task_id})
        return self._doing(lambda: self._call("crm.activity.todo.updateDeadline", {
            "ownerTypeId": act["OWNER_TYPE_ID"], "ownerId": act["OWNER_ID"], "id": task_id,
            "value": due.astimezone(self.tz).isoformat(timespec="seconds")}, by=by))

    def delete_task(self, task_id: int) -> Events:
        return self._doing(lambda: self._call("crm.activity.delete", {"id": task_id}))

    def add_comment(self, lead_id: int, text: str, *, by: int | None = None) -> Events:
        return self._doing(lambda: self._call("crm.timeline.comment.add", {"fields": {
            "ENTITY_TYPE": "deal", "ENTITY_ID": lead_id, "COMMENT": text}}, by=by))

    def log_call(self, lead_id: int, direction: str, outcome: str, *, duration: int = 0,
                 at: datetime | None = None, by: int | None = None, phone: str | None = None) -> Events:
        phone = phone or self.client_phone(lead_id)
        user = by or CREDS.webhook_user
        token = self._tokens.get(user) or self.server.auth.issue(user)["access_token"]
        self._tokens[user] = token

        def app(method: str, params: dict) -> dict:
            resp = self.http.post(f"{self.server.url}/rest/{method}", json={**params, "auth": token}, timeout=10)
            assert resp.status_code == 200, f"{method}: {resp.status_code} {resp.text}"
            return resp.json()["result"]

        # A call from the deal's card is bound to the deal's client: register takes CONTACT, COMPANY
        # or LEAD only (not DEAL), and the connector finds the contact's open deal.
        contact = self.lead(lead_id).contacts[:1]

        def call() -> None:
            params: dict[str, Any] = {"USER_ID": user, "PHONE_NUMBER": phone, "TYPE": 2 if direction == "in" else 1,
                                      "SHOW": 0}
            if contact:
                params.update(CRM_ENTITY_TYPE="CONTACT", CRM_ENTITY_ID=contact[0])
            if at is not None:
                params["CALL_START_DATE"] = at.astimezone(self.tz).isoformat(timespec="seconds")
            registered = app("telephony.externalcall.register", params)
            app("telephony.externalcall.finish", {"CALL_ID": registered["CALL_ID"], "USER_ID": user,
                                                  "DURATION": duration, "STATUS_CODE": STATUS_CODES[outcome]})
        return self._doing(call)

    # ------------------------------------------------------------------ reads
    def _lead_view(self, raw: dict, fields: dict[str, dict], stages: dict[str, str]) -> LeadView:
        values, loss = {}, None
        for label, uf in fields.items():
            v = raw.get(uf["FIELD_NAME"])
            if v in (None, "", []):
                continue
            if uf["USER_TYPE_ID"] in DATE_TYPES:
                moment = datetime.fromisoformat(v)
                v = moment if moment.tzinfo else moment.replace(tzinfo=self.tz)
            elif uf["USER_TYPE_ID"] == "enumeration":
                v = next((i["VALUE"] for i in uf["LIST"] if i["ID"] == str(v)), v)
            values[label] = v
            if label == "Причина отказа":
                loss = v
        semantic = raw.get("STAGE_SEMANTIC_ID")
        stage = WON if semantic == "S" else LOST if semantic == "F" else stages.get(raw["STAGE_ID"], raw["STAGE_ID"])
        return LeadView(id=int(raw["ID"]), name=raw.get("TITLE") or "", stage=stage,
                        responsible=int(raw["ASSIGNED_BY_ID"]) if raw.get("ASSIGNED_BY_ID") else None, values=values,
                        loss_reason=loss, created_at=datetime.fromisoformat(raw["DATE_CREATE"]).astimezone(timezone.utc),
                        contacts=(int(raw["CONTACT_ID"]),) if raw.get("CONTACT_ID") not in (None, "", "0") else ())

    def _task_view(self, raw: dict) -> TaskView:
        due = datetime.fromisoformat(raw["DEADLINE"])
        return TaskView(id=int(raw["ID"]), lead_id=int(raw["OWNER_ID"]) if raw["OWNER_TYPE_ID"] == "2" else None,
                        text=raw.get("SUBJECT") or "", due=due if due.tzinfo else due.replace(tzinfo=self.tz),
                        responsible=int(raw["RESPONSIBLE_ID"]) if raw.get("RESPONSIBLE_ID") else None, type="",
                        completed=raw.get("COMPLETED") == "Y", result=(raw.get("DESCRIPTION") or None)
                        if raw.get("COMPLETED") == "Y" else None)

    def lead(self, lead_id: int) -> LeadView | None:
        resp = self.http.post(self.server.webhook_url + "crm.deal.get", json={"id": lead_id}, timeout=10)
        if resp.status_code != 200:
            return None
        return self._lead_view(resp.json()["result"], self._fields(), self._stages())

    def leads(self) -> list[LeadView]:
        fields, stages = self._fields(), self._stages()
        return [self._lead_view(d, fields, stages) for d in self._call("crm.deal.list", {"select": ["*", "UF_*"]})]

    def open_tasks(self, lead_id: int) -> list[TaskView]:
        return [t for t in self.tasks(lead_id) if not t.completed]

    def tasks(self, lead_id: int) -> list[TaskView]:
        rows = self._call("crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": lead_id,
                                                           "@PROVIDER_ID": ["CRM_TODO", "TASKS_TASK"]},
                                                "select": ["*"]})
        return [self._task_view(a) for a in rows]

    def task(self, task_id: int) -> TaskView | None:
        resp = self.http.post(self.server.webhook_url + "crm.activity.get", json={"id": task_id}, timeout=10)
        return self._task_view(resp.json()["result"]) if resp.status_code == 200 else None

    def contacts(self) -> list[ContactView]:
        deals = self._call("crm.deal.list", {"select": ["ID", "CONTACT_ID"]})
        out = []
        for c in self._call("crm.contact.list", {"select": ["ID", "NAME", "LAST_NAME", "PHONE"]}):
            out.append(ContactView(id=int(c["ID"]), name=" ".join(p for p in (c.get("NAME"), c.get("LAST_NAME")) if p),
                                   phones=tuple(_digits(p["VALUE"]) for p in c.get("PHONE") or []),
                                   leads=tuple(int(d["ID"]) for d in deals if str(d.get("CONTACT_ID")) == c["ID"])))
        return out

    def comments(self, lead_id: int) -> list[str]:
        rows = self._call("crm.timeline.comment.list", {"filter": {"ENTITY_TYPE": "deal", "ENTITY_ID": lead_id}})
        return [c["COMMENT"] for c in sorted(rows, key=lambda c: (c["CREATED"], int(c["ID"])))]

    # ------------------------------------------------------------------ what the CRM saw
    def mark(self) -> Mark:
        assert self.server.wait_events(5), "the sandbox's events did not arrive"
        self._expand(0)   # the connector's last state is now's, as Reglament's would be
        log = requests.get(self.server.url + "/_sandbox/requests", timeout=5).json()
        return Mark(webhooks=len(self.receiver.deliveries), requests=log[-1]["index"] + 1 if log else 0)

    def events_since(self, mark: Mark) -> Events:
        assert self.server.wait_events(5), "the sandbox's events did not arrive"
        return self._expand(mark.webhooks)

    def _expand(self, since: int) -> Events:
        found = Events()
        for index in range(min([since, *[i for i in range(len(self.receiver.deliveries)) if i not in self._expanded]]),
                           len(self.receiver.deliveries)):
            if index not in self._expanded:  # expanding is comparing with the last state: once per body
                d = self.receiver.deliveries[index]
                assert d.content_type.startswith("application/x-www-form-urlencoded"), d.content_type
                self._expanded[index] = [e for event in parsers.parse("bitrix24", d.body, self.account).events
                                         for e in self.connector.expand(event)]
            if index >= since:
                found += self._expanded[index]
        return found

    def calls_since(self, mark: Mark) -> list[ApiCall]:
        calls = []
        for req in requests.get(self.server.url + "/_sandbox/requests", params={"since": mark.requests},
                                timeout=5).json():
            # a batch is one request, named by its first command (a write batch: deal updates first)
            commands = req.get("commands") or []
            method = (commands[0] if isinstance(commands, list) and commands else
                      next(iter(commands.values()), "") if isinstance(commands, dict) else "") or req.get("method") or ""
            method = str(method).split("?", 1)[0]
            parts = method.lower().split(".")
            calls.append(ApiCall(_op(method), next((ENTITIES[p] for p in parts if p in ENTITIES), "other")))
        return calls

    def close(self) -> None:
        self.server.__exit__(None, None, None)
        self.receiver.close()
        self.http.close()
        self.r.close()
