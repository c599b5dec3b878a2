"""amoCRM API v4 as `responses` callbacks, answering only in the shapes the reference gives.

Reference: /work/shared/reference/amocrm.md. Success bodies are application/hal+json with
`_links` / `_embedded` (§3), lists page by `page`/`limit` (≤250, events ≤100) with
`_links.next` only while more remain, and answer 204 with an empty body when nothing
matches (§2); errors are application/problem+json, validation errors 400 with
`validation-errors` (§2); 429 has an empty (non-JSON) body (§2). Entity bodies start from
the reference's examples (tests/connectors/amo_bodies.py) with our fields laid over them.

The state is the least that lets the same test bodies run here and on the sandbox:
what was created, linked, completed, subscribed, and the events the tests filter on.
Contacts and /link are not in the reference; their shapes follow amo_bodies.CONTACT and
the sandbox's answer is not copied.
"""

from __future__ import annotations

import collections
import copy
import itertools
import json
import re
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import responses

from tests.connectors import amo_bodies as ref
from tests.contract import world as w

HAL = {"Content-Type": "application/hal+json"}
PROBLEM = {"Content-Type": "application/problem+json"}
NOT_SUPPORTED_CHOICE = ("NotSupportedChoice", "The value you selected is not a valid choice.")  # CONFIRMED
FIELD_MISSING = ("FieldMissing", "This field is missing.")
INVALID_TYPE = ("InvalidType", "This value should be of type {}.")
CLOSED = (w.WON, w.LOST)


class Invalid(Exception):
    def __init__(self, errors: dict[str, list[dict]]):
        super().__init__("Request validation failed")
        self.errors = errors


class Problems:
    def __init__(self):
        self.by_request: dict[str, list[dict]] = {}

    def add(self, rid: str, path: str, kind: tuple[str, str], type_: str = "") -> None:
        code, detail = kind
        self.by_request.setdefault(rid, []).append({"code": code, "path": path, "detail": detail.format(type_)})

    def check(self) -> None:
        if self.by_request:
            raise Invalid(self.by_request)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def digits_tail(text) -> str:
    """amoCRM telephony compares phones by their last 10 digits (reference §3.6)."""
    return re.sub(r"\D", "", str(text or ""))[-10:]


class MockAmo:
    """Registers itself on a responses.RequestsMock; `log` lists (method, path, status) of every answer."""

    def __init__(self, rsps: responses.RequestsMock, base: str = ref.BASE, token: str = w.TOKEN):
        self.base, self.token = base, token
        self.log: list[tuple[str, str, int]] = []
        self.rate = 0.0
        self._window: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._ids = {kind: itertools.count(first) for kind, first in w.FIRST_IDS.items()}
        self._event_ids = itertools.count(1)
        self.leads: dict[int, dict] = {}
        self.contacts: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.notes: dict[int, dict] = {}
        self.events: list[dict] = []
        self.webhooks: dict[str, dict] = {}
        self.routes = [
            ("GET", r"/api/v4/account", self.account),
            ("GET", r"/api/v4/users", self.users),
            ("GET", r"/api/v4/leads/pipelines", self.pipelines),
            ("GET", r"/api/v4/leads/loss_reasons", self.loss_reasons),
            ("GET", r"/api/v4/(leads|contacts)/custom_fields", self.custom_fields),
            ("GET", r"/api/v4/leads", self.leads_list),
            ("POST", r"/api/v4/leads", self.leads_add),
            ("PATCH", r"/api/v4/leads", self.leads_update),
            ("GET", r"/api/v4/leads/(\d+)", self.lead_get),
            ("POST", r"/api/v4/leads/(\d+)/link", self.lead_link),
            ("GET", r"/api/v4/contacts", self.contacts_list),
            ("POST", r"/api/v4/contacts", self.contacts_add),
            ("GET", r"/api/v4/tasks", self.tasks_list),
            ("POST", r"/api/v4/tasks", self.tasks_add),
            ("PATCH", r"/api/v4/tasks", self.tasks_update),
            ("GET", r"/api/v4/leads/notes", self.notes_list),
            ("POST", r"/api/v4/leads/notes", self.notes_add),
            ("POST", r"/api/v4/calls", self.calls_add),
            ("GET", r"/api/v4/events", self.events_list),
            ("GET", r"/api/v4/webhooks", self.webhooks_list),
            ("POST", r"/api/v4/webhooks", self.webhooks_subscribe),
            ("DELETE", r"/api/v4/webhooks", self.webhooks_unsubscribe),
        ]
        pattern = re.compile(re.escape(base) + r"/api/v4/.*")
        for method in ("GET", "POST", "PATCH", "DELETE"):
            rsps.add_callback(method, pattern, callback=self._dispatch)

    # ------------------------------------------------------------------ plumbing
    def _dispatch(self, request):
        parts = urlsplit(request.url)
        status, headers, body = self._answer(request, parts.path, parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            self.log.append((request.method, parts.path, status))
        return status, headers, body

    def _answer(self, request, path: str, pairs: list[tuple[str, str]]):
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._problem(401, "Unauthorized")
        if not self._allow():
            return 429, {}, ""  # non-JSON body (reference §2, PHP client)
        for method, route, handler in self.routes:
            m = re.fullmatch(route, path)
            if m and method == request.method:
                body = json.loads(request.body) if request.body else None
                try:
                    data = handler(pairs, body, *m.groups())
                except Invalid as e:
                    return 400, PROBLEM, json.dumps({
                        "validation-errors": [{"request_id": rid, "errors": errs} for rid, errs in e.errors.items()],
                        "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400,
                        "detail": "Request validation failed"})
                except LookupError as e:
                    return self._problem(404, str(e))
                if data is None:
                    return 204, {}, ""
                return 200, HAL, json.dumps(data, ensure_ascii=False)
        return self._problem(404, "Not Found")

    @staticmethod
    def _problem(status: int, detail: str):
        title = {401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
        return status, PROBLEM, json.dumps({"title": title, "type": f"https://httpstatus.es/{status}",
                                            "status": status, "detail": detail})

    def _allow(self) -> bool:
        """At most `rate` accepted requests in any sliding second (reference §2: 7 per second)."""
        if not self.rate:
            return True
        with self._lock:
            now = time.monotonic()
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if len(self._window) >= self.rate:
                return False
            self._window.append(now)
            return True

    def _id(self, kind: str) -> int:
        return next(self._ids[kind])

    def link(self, path: str) -> dict:
        return {"self": {"href": self.base + path}}

    def _href(self, path: str, pairs, page: int, limit: int) -> str:
        kept = [(k, v) for k, v in pairs if k not in ("page", "limit")] + [("page", page), ("limit", limit)]
        return f"{self.base}{path}?{urlencode(kept)}"

    def listing(self, key: str, items: list, pairs, path: str, max_limit: int = 250, extra: dict | None = None):
        """One HAL page; `_links.next` while more remain; None (→ 204) when the page is empty."""
        q = dict(pairs)
        page = max(1, int(q.get("page") or 1))
        limit = min(max(1, int(q.get("limit") or 50)), max_limit)
        chunk = items[(page - 1) * limit: page * limit]
        if not chunk:
            return None
        links = {"self": {"href": self._href(path, pairs, page, limit)}}
        if page * limit < len(items):
            links["next"] = {"href": self._href(path, pairs, page + 1, limit)}
        return {**(extra or {}), "_page": page, "_links": links, "_embedded": {key: chunk}}

    @staticmethod
    def values(pairs, name: str) -> list[str] | None:
        """filter values sent as name=a,b or name[]=a or name[0]=a; None when absent."""
        found = None
        for k, v in pairs:
            if k == name or re.fullmatch(re.escape(name) + r"\[\d*\]", k):
                found = (found or []) + [x for x in v.split(",") if x != ""]
        return found

    @staticmethod
    def _items(body) -> list[tuple[str, dict]]:
        """Collection writes take a JSON array of objects; request_id defaults to the position."""
        if not isinstance(body, list) or not body or not all(isinstance(x, dict) for x in body):
            raise Invalid({"0": [{"code": "InvalidType", "path": "", "detail": "This value should be of type array."}]})
        return [(str(x.get("request_id", i)), x) for i, x in enumerate(body)]

    def _event(self, type_: str, entity_type: str, entity_id: int, before=None, after=None) -> None:
        self.events.append({"id": f"01hq{next(self._event_ids):022d}", "type": type_, "entity_id": entity_id,
                            "entity_type": entity_type, "created_by": w.ADMIN, "created_at": int(time.time()),
                            "value_after": after or [], "value_before": before or [], "account_id": w.ACCOUNT_ID,
                            "_links": self.link(f"/api/v4/events/{type_}"),
                            "_embedded": {"entity": {"id": entity_id}}})

    # ------------------------------------------------------------------ account and settings (static)
    def account(self, pairs, body):
        withs = set(",".join(v for k, v in pairs if k == "with").split(","))
        data = {"id": w.ACCOUNT_ID, "name": w.ACCOUNT_NAME, "subdomain": w.SUBDOMAIN, "current_user_id": w.ADMIN,
                "country": "RU", "currency": "RUB", "currency_symbol": "₽", "customers_mode": "disabled",
                "is_unsorted_on": True, "is_loss_reason_enabled": True, "is_helpbot_enabled": False,
                "is_technical_account": False, "contact_name_display_order": 1,
                "_links": self.link("/api/v4/account")}
        embedded = {}
        if "task_types" in withs:
            embedded["task_types"] = [{"id": i, "name": n, "color": None, "icon_id": None, "code": c}
                                      for i, n, c in w.TASK_TYPES]
        if "users_groups" in withs:
            embedded["users_groups"] = [{"id": 0, "name": "Отдел продаж"}]
        if embedded:
            data["_embedded"] = embedded
        return data

    def users(self, pairs, body):
        items = [{"id": i, "name": n, "email": e, "lang": "ru", "rights": {"is_admin": a, "is_active": True},
                  "_links": self.link(f"/api/v4/users/{i}")} for i, n, e, a in w.USERS]
        return self.listing("users", items, pairs, "/api/v4/users", extra={"_total_items": len(items)})

    def pipelines(self, pairs, body):
        statuses = [{"id": sid, "name": n, "sort": {w.WON: 10000, w.LOST: 11000}.get(sid, (k + 1) * 10),
                     "is_editable": sid not in CLOSED, "pipeline_id": w.PIPELINE, "color": "#99ccff", "type": 0,
                     "account_id": w.ACCOUNT_ID,
                     "_links": self.link(f"/api/v4/leads/pipelines/{w.PIPELINE}/statuses/{sid}")}
                    for k, (sid, n) in enumerate(w.STATUSES)]
        pipeline = {"id": w.PIPELINE, "name": "Воронка", "sort": 1, "is_main": True, "is_unsorted_on": True,
                    "is_archive": False, "account_id": w.ACCOUNT_ID,
                    "_links": self.link(f"/api/v4/leads/pipelines/{w.PIPELINE}"),
                    "_embedded": {"statuses": statuses}}
        return {"_total_items": 1, "_links": self.link("/api/v4/leads/pipelines"),
                "_embedded": {"pipelines": [pipeline]}}

    def loss_reasons(self, pairs, body):
        items = [{"id": i, "name": n, "sort": (k + 1) * 10, "created_at": 1700000000, "updated_at": 1700000000,
                  "_links": self.link(f"/api/v4/leads/loss_reasons/{i}")} for k, (i, n) in enumerate(w.LOSS_REASONS)]
        return self.listing("loss_reasons", items, pairs, "/api/v4/leads/loss_reasons")

    def custom_fields(self, pairs, body, entity):
        if entity == "leads":
            defs = [(fid, n, t, None, None) for fid, n, t in w.LEAD_FIELDS]
        else:
            defs = [(w.PHONE_FIELD, "Телефон", "multitext", "PHONE", w.phone_enums())]
        items = [{"id": fid, "name": n, "type": t, "code": code, "sort": (k + 1) * 10, "enums": enums,
                  "entity_type": entity, "account_id": w.ACCOUNT_ID,
                  "_links": self.link(f"/api/v4/{entity}/custom_fields/{fid}")}
                 for k, (fid, n, t, code, enums) in enumerate(defs)]
        return self.listing("custom_fields", items, pairs, f"/api/v4/{entity}/custom_fields")

    # ------------------------------------------------------------------ leads
    def _check_status(self, item: dict, rid: str, problems: Problems, current: dict | None) -> None:
        pipeline_id, status_id = item.get("pipeline_id"), item.get("status_id")
        if pipeline_id is not None and pipeline_id != w.PIPELINE:
            problems.add(rid, "pipeline_id", NOT_SUPPORTED_CHOICE)
        if status_id is None:
            return
        if status_id in CLOSED and pipeline_id is None:
            problems.add(rid, "pipeline_id", FIELD_MISSING)  # 142/143 need the pipeline (reference §3.1)
        elif status_id not in [s for s, _ in w.STATUSES]:
            problems.add(rid, "status_id", NOT_SUPPORTED_CHOICE)

    def _fields(self, raw, rid: str, problems: Problems) -> list[dict] | None:
        if raw is None:
            return None
        names = {fid: (n, t) for fid, n, t in w.LEAD_FIELDS}
        out = []
        for i, f in enumerate(raw):
            if f.get("field_id") not in names:
                problems.add(rid, f"custom_fields_values.{i}.field_id", NOT_SUPPORTED_CHOICE)
                continue
            name, type_ = names[f["field_id"]]
            out.append({"field_id": f["field_id"], "field_name": name, "field_code": None, "field_type": type_,
                        "values": [{"value": v.get("value")} for v in f.get("values") or []]})
        return out

    def _check_lead(self, item: dict, rid: str, problems: Problems, current: dict | None) -> dict:
        self._check_status(item, rid, problems, current)
        if "responsible_user_id" in item and item["responsible_user_id"] not in [u[0] for u in w.USERS]:
            problems.add(rid, "responsible_user_id", NOT_SUPPORTED_CHOICE)
        if "name" in item and not isinstance(item["name"], str):
            problems.add(rid, "name", INVALID_TYPE, "string")
        return {"cfv": self._fields(item.get("custom_fields_values"), rid, problems)}

    def render_lead(self, lead: dict, with_contacts: bool) -> dict:
        body = copy.deepcopy(ref.LEAD)
        body.update({k: v for k, v in lead.items() if k != "contacts"})
        body["_links"] = self.link(f"/api/v4/leads/{lead['id']}")
        body["_embedded"] = {"tags": [], "companies": []}
        if with_contacts:
            body["_embedded"]["contacts"] = [{"id": c, "is_main": i == 0, "_links": self.link(f"/api/v4/contacts/{c}")}
                                             for i, c in enumerate(lead["contacts"])]
        return body

    def leads_list(self, pairs, body):
        ids = self.values(pairs, "filter[id]")
        wanted = collections.defaultdict(dict)
        for k, v in pairs:
            m = re.fullmatch(r"filter\[statuses\]\[(\d+)\]\[(pipeline_id|status_id)\]", k)
            if m:
                wanted[m.group(1)][m.group(2)] = int(v)
        stages = {(s["pipeline_id"], s["status_id"]) for s in wanted.values() if len(s) == 2}
        items = [lead for lead in self.leads.values()
                 if (ids is None or str(lead["id"]) in ids)
                 and (not wanted or (lead["pipeline_id"], lead["status_id"]) in stages)]
        with_contacts = "contacts" in (self.values(pairs, "with") or [])
        return self.listing("leads", [self.render_lead(x, with_contacts) for x in items], pairs, "/api/v4/leads")

    def lead_get(self, pairs, body, lead_id):
        lead = self.leads.get(int(lead_id))
        if lead is None:
            return None  # 204, as for an empty list (PHP client: AmoCRMApiNoContentException)
        return self.render_lead(lead, "contacts" in (self.values(pairs, "with") or []))

    def leads_add(self, pairs, body):
        items = self._items(body)
        problems = Problems()
        plans = [(rid, item, self._check_lead(item, rid, problems, None)) for rid, item in items]
        problems.check()
        created = []
        for rid, item, plan in plans:
            now = int(time.time())
            lead_id = self._id("lead")
            self.leads[lead_id] = {
                "id": lead_id, "name": item.get("name") or f"Сделка #{lead_id}", "price": item.get("price", 0),
                "responsible_user_id": item.get("responsible_user_id", w.ADMIN),
                "status_id": item.get("status_id", w.NEW), "pipeline_id": item.get("pipeline_id", w.PIPELINE),
                "loss_reason_id": item.get("loss_reason_id"), "created_by": w.ADMIN, "updated_by": w.ADMIN,
                "created_at": now, "updated_at": now, "closed_at": None, "closest_task_at": None,
                "custom_fields_values": plan["cfv"] or None, "account_id": w.ACCOUNT_ID, "contacts": []}
            self._event("lead_added", "lead", lead_id)
            created.append({"id": lead_id, "request_id": rid, "_links": self.link(f"/api/v4/leads/{lead_id}")})
        return {"_links": self.link("/api/v4/leads"), "_embedded": {"leads": created}}

    def leads_update(self, pairs, body):
        items = self._items(body)
        problems = Problems()
        plans = []
        for rid, item in items:
            lead = self.leads.get(item.get("id")) if _int(item.get("id")) else None
            if lead is None:
                problems.add(rid, "id", NOT_SUPPORTED_CHOICE)
                continue
            plans.append((lead, item, self._check_lead(item, rid, problems, lead)))
        problems.check()
        updated = []
        for lead, item, plan in plans:
            before = (lead["pipeline_id"], lead["status_id"])
            for key in ("name", "price", "responsible_user_id", "status_id", "pipeline_id", "loss_reason_id"):
                if key in item:
                    lead[key] = item[key]
            if plan["cfv"] is not None:
                kept = [f for f in lead["custom_fields_values"] or []
                        if f["field_id"] not in {x["field_id"] for x in plan["cfv"]}]
                lead["custom_fields_values"] = (kept + plan["cfv"]) or None
            lead["updated_at"] = int(time.time())
            if (lead["pipeline_id"], lead["status_id"]) != before:
                self._event("lead_status_changed", "lead", lead["id"],
                            before=[{"lead_status": {"id": before[1], "pipeline_id": before[0]}}],
                            after=[{"lead_status": {"id": lead["status_id"], "pipeline_id": lead["pipeline_id"]}}])
            updated.append({"id": lead["id"], "updated_at": lead["updated_at"],
                            "_links": self.link(f"/api/v4/leads/{lead['id']}")})
        return {"_links": self.link("/api/v4/leads"), "_embedded": {"leads": updated}}

    def lead_link(self, pairs, body, lead_id):
        lead = self.leads.get(int(lead_id))
        items = self._items(body)
        problems = Problems()
        for rid, item in items:
            if lead is None:
                problems.add(rid, "entity_id", NOT_SUPPORTED_CHOICE)
            elif item.get("to_entity_type") != "contacts" or item.get("to_entity_id") not in self.contacts:
                problems.add(rid, "to_entity_id", NOT_SUPPORTED_CHOICE)
        problems.check()
        links = []
        for _, item in items:
            contact_id = item["to_entity_id"]
            if contact_id not in lead["contacts"]:
                main = bool((item.get("metadata") or {}).get("is_main"))
                lead["contacts"].insert(0, contact_id) if main else lead["contacts"].append(contact_id)
                self.contacts[contact_id]["leads"].append(lead["id"])
            links.append({"entity_id": lead["id"], "entity_type": "leads", "to_entity_id": contact_id,
                          "to_entity_type": "contacts", "metadata": {"main_contact": lead["contacts"][0] == contact_id}})
        return {"_total_items": len(links), "_links": self.link(f"/api/v4/leads/{lead_id}/link"),
                "_embedded": {"links": links}}

    # ------------------------------------------------------------------ contacts
    def render_contact(self, c: dict) -> dict:
        body = copy.deepcopy(ref.CONTACT)
        body.update({k: v for k, v in c.items() if k != "leads"})
        body["_links"] = self.link(f"/api/v4/contacts/{c['id']}")
        return body

    def contacts_add(self, pairs, body):
        items = self._items(body)
        problems = Problems()
        enums = {e["value"]: e["id"] for e in w.phone_enums()}
        plans = []
        for rid, item in items:
            phones = []
            for i, f in enumerate(item.get("custom_fields_values") or []):
                if f.get("field_code") != "PHONE" and f.get("field_id") != w.PHONE_FIELD:
                    problems.add(rid, f"custom_fields_values.{i}.field_id", NOT_SUPPORTED_CHOICE)
                    continue
                for v in f.get("values") or []:
                    code = v.get("enum_code", "WORK")
                    phones.append({"value": str(v.get("value")), "enum_id": enums.get(code), "enum_code": code})
            plans.append((rid, item, phones))
        problems.check()
        created = []
        for rid, item, phones in plans:
            now = int(time.time())
            contact_id = self._id("contact")
            first, _, last = (item.get("name") or "").partition(" ")
            self.contacts[contact_id] = {
                "id": contact_id, "name": item.get("name", ""), "first_name": first, "last_name": last,
                "responsible_user_id": item.get("responsible_user_id", w.ADMIN), "created_by": w.ADMIN,
                "updated_by": w.ADMIN, "created_at": now, "updated_at": now, "account_id": w.ACCOUNT_ID,
                "custom_fields_values": [{"field_id": w.PHONE_FIELD, "field_name": "Телефон", "field_code": "PHONE",
                                          "field_type": "multitext", "values": phones}] if phones else None,
                "leads": []}
            created.append({"id": contact_id, "request_id": rid, "_links": self.link(f"/api/v4/contacts/{contact_id}")})
        return {"_links": self.link("/api/v4/contacts"), "_embedded": {"contacts": created}}

    def _phones(self, c: dict) -> list[str]:
        return [v["value"] for f in c["custom_fields_values"] or [] for v in f["values"]]

    def contacts_list(self, pairs, body):
        needle = dict(pairs).get("query", "").strip()
        tail = digits_tail(needle)
        items = [c for c in self.contacts.values()
                 if not needle or needle.casefold() in c["name"].casefold()
                 or (len(tail) >= 5 and any(tail in digits_tail(p) for p in self._phones(c)))]
        return self.listing("contacts", [self.render_contact(c) for c in items], pairs, "/api/v4/contacts")

    # ------------------------------------------------------------------ tasks
    def render_task(self, t: dict) -> dict:
        body = copy.deepcopy(ref.TASK)
        body.update(t)
        body["result"] = {"text": t["result"]} if t.get("result") else []
        body["_links"] = self.link(f"/api/v4/tasks/{t['id']}")
        return body

    def _check_task(self, item: dict, rid: str, problems: Problems, creating: bool) -> None:
        if creating or "text" in item:
            if not isinstance(item.get("text"), str) or not item["text"].strip():
                problems.add(rid, "text", FIELD_MISSING)
        if creating or "complete_till" in item:
            if item.get("complete_till") is None:
                problems.add(rid, "complete_till", FIELD_MISSING)
            elif not _int(item["complete_till"]):
                problems.add(rid, "complete_till", INVALID_TYPE, "int")
        if "entity_type" in item or "entity_id" in item:
            store = {"leads": self.leads, "contacts": self.contacts}.get(item.get("entity_type"))
            if store is None or item.get("entity_id") not in store:
                problems.add(rid, "entity_id", NOT_SUPPORTED_CHOICE)
        if "task_type_id" in item and item["task_type_id"] not in [t[0] for t in w.TASK_TYPES]:
            problems.add(rid, "task_type_id", NOT_SUPPORTED_CHOICE)
        if "is_completed" in item and not isinstance(item["is_completed"], bool):
            problems.add(rid, "is_completed", INVALID_TYPE, "bool")

    def tasks_add(self, pairs, body):
        items = self._items(body)
        problems = Problems()
        for rid, item in items:
            self._check_task(item, rid, problems, creating=True)
        problems.check()
        created = []
        for rid, item in items:
            now = int(time.time())
            task_id = self._id("task")
            self.tasks[task_id] = {
                "id": task_id, "created_by": w.ADMIN, "updated_by": w.ADMIN, "created_at": now, "updated_at": now,
                "responsible_user_id": item.get("responsible_user_id", w.ADMIN), "group_id": 0,
                "entity_id": item.get("entity_id"), "entity_type": item.get("entity_type"),
                "duration": item.get("duration", 0), "is_completed": item.get("is_completed", False),
                "task_type_id": item.get("task_type_id", 1), "text": item["text"],
                "result": (item.get("result") or {}).get("text"), "complete_till": item["complete_till"],
                "account_id": w.ACCOUNT_ID}
            self._event("task_added", "task", task_id)
            created.append({"id": task_id, "request_id": rid, "_links": self.link(f"/api/v4/tasks/{task_id}")})
        return {"_links": self.link("/api/v4/tasks"), "_embedded": {"tasks": created}}

    def tasks_update(self, pairs, body):
        items = self._items(body)
        problems = Problems()
        for rid, item in items:
            if item.get("id") not in self.tasks:
                problems.add(rid, "id", NOT_SUPPORTED_CHOICE)
            self._check_task(item, rid, problems, creating=False)
        problems.check()
        updated = []
        for rid, item in items:
            task = self.tasks[item["id"]]
            was_completed = task["is_completed"]
            for key in ("text", "complete_till", "responsible_user_id", "task_type_id", "is_completed", "duration"):
                if key in item:
                    task[key] = item[key]
            if "result" in item:
                task["result"] = (item["result"] or {}).get("text")
            task["updated_at"] = int(time.time())
            if task["is_completed"] and not was_completed:
                self._event("task_completed", "task", task["id"], before=[{"task_completed": False}],
                            after=[{"task_completed": True}])
            updated.append({"id": task["id"], "updated_at": task["updated_at"],
                            "_links": self.link(f"/api/v4/tasks/{task['id']}")})
        return {"_links": self.link("/api/v4/tasks"), "_embedded": {"tasks": updated}}

    def tasks_list(self, pairs, body):
        etype = dict(pairs).get("filter[entity_type]")
        eids = self.values(pairs, "filter[entity_id]")
        done = dict(pairs).get("filter[is_completed]")
        items = [t for t in self.tasks.values()
                 if (etype is None or t["entity_type"] == etype)
                 and (eids is None or str(t["entity_id"]) in eids)
                 and (done is None or t["is_completed"] == (done in ("1", "true")))]
        return self.listing("tasks", [self.render_task(t) for t in items], pairs, "/api/v4/tasks")

    # ------------------------------------------------------------------ notes and calls
    def render_note(self, n: dict) -> dict:
        return {**n, "_links": self.link(f"/api/v4/leads/{n['entity_id']}/notes/{n['id']}")}

    def _add_note(self, entity_id: int, note_type: str, params: dict, created_by: int) -> dict:
        now = int(time.time())
        note = {"id": self._id("note"), "entity_id": entity_id, "created_by": created_by, "updated_by": created_by,
                "created_at": now, "updated_at": now, "responsible_user_id": self.leads[entity_id]["responsible_user_id"],
                "group_id": 0, "note_type": note_type, "params": params, "account_id": w.ACCOUNT_ID}
        self.notes[note["id"]] = note
        event = {"common": "common_note_added", "call_in": "incoming_call", "call_out": "outgoing_call"}[note_type]
        self._event(event, "lead", entity_id, after=[{"note": {"id": note["id"]}}])
        return note

    def notes_add(self, pairs, body):
        items = self._items(body)
        problems = Problems()
        for rid, item in items:
            if item.get("entity_id") not in self.leads:
                problems.add(rid, "entity_id", NOT_SUPPORTED_CHOICE)
            if item.get("note_type") not in ("common", "call_in", "call_out"):
                problems.add(rid, "note_type", NOT_SUPPORTED_CHOICE)
            elif not isinstance(item.get("params"), dict):
                problems.add(rid, "params", FIELD_MISSING)
            else:
                key = "text" if item["note_type"] == "common" else "phone"
                if not item["params"].get(key):
                    problems.add(rid, f"params.{key}", FIELD_MISSING)
        problems.check()
        created = []
        for rid, item in items:
            note = self._add_note(item["entity_id"], item["note_type"], dict(item["params"]),
                                  item.get("created_by", w.ADMIN))
            created.append({"id": note["id"], "entity_id": note["entity_id"], "request_id": rid,
                            "_links": self.render_note(note)["_links"]})
        return {"_links": self.link("/api/v4/leads/notes"), "_embedded": {"notes": created}}

    def notes_list(self, pairs, body):
        eids = self.values(pairs, "filter[entity_id]")
        types = self.values(pairs, "filter[note_type]")
        items = [n for n in self.notes.values()
                 if (eids is None or str(n["entity_id"]) in eids) and (types is None or n["note_type"] in types)]
        return self.listing("notes", [self.render_note(n) for n in items], pairs, "/api/v4/leads/notes")

    def calls_add(self, pairs, body):
        """POST /api/v4/calls (reference §3.6): found by the last 10 digits, filed under the single active lead."""
        items = self._items(body)
        problems = Problems()
        for rid, item in items:
            if item.get("direction") not in ("inbound", "outbound"):
                problems.add(rid, "direction", FIELD_MISSING)
            for key in ("duration", "source", "phone"):
                if item.get(key) in (None, ""):
                    problems.add(rid, key, FIELD_MISSING)
        problems.check()
        calls, errors = [], []
        for rid, item in items:
            tail = digits_tail(item["phone"])
            contacts = [c for c in self.contacts.values() if any(digits_tail(p) == tail for p in self._phones(c))]
            active = sorted({lid for c in contacts for lid in c["leads"] if self.leads[lid]["status_id"] not in CLOSED})
            if len(active) != 1:
                # Filing under a contact card is not needed by these tests; no entity, no call (reference §3.6).
                errors.append({"request_id": rid, "status": 404, "title": "Not Found",
                               "detail": "Entity with this phone number was not found"})
                continue
            params = {k: item.get(k) for k in ("uniq", "duration", "source", "link", "phone", "call_result",
                                                "call_status")}
            note = self._add_note(active[0], "call_in" if item["direction"] == "inbound" else "call_out", params,
                                  item.get("created_by", 0))
            calls.append({"id": note["id"], "entity_id": active[0], "entity_type": "leads", "request_id": rid})
        return {"_embedded": {"calls": calls}, "errors": errors}

    # ------------------------------------------------------------------ events
    def events_list(self, pairs, body):
        types = self.values(pairs, "filter[type]")
        entities = self.values(pairs, "filter[entity]")
        eids = self.values(pairs, "filter[entity_id]")
        items = [e for e in self.events
                 if (types is None or e["type"] in types) and (entities is None or e["entity_type"] in entities)
                 and (eids is None or str(e["entity_id"]) in eids)]
        return self.listing("events", items, pairs, "/api/v4/events", max_limit=100)

    # ------------------------------------------------------------------ webhooks (reference §3.10)
    def webhooks_list(self, pairs, body):
        destination = dict(pairs).get("filter[destination]")
        items = [h for h in self.webhooks.values() if destination is None or h["destination"] == destination]
        if not items:
            return None
        return {"_total_items": len(items), "_links": self.link("/api/v4/webhooks"),
                "_embedded": {"webhooks": [dict(h) for h in items]}}

    def webhooks_subscribe(self, pairs, body):
        problems = Problems()
        if not isinstance(body, dict) or not str(body.get("destination", "")).startswith(("http://", "https://")):
            problems.add("0", "destination", FIELD_MISSING)
        elif not isinstance(body.get("settings"), list) or not body["settings"]:
            problems.add("0", "settings", FIELD_MISSING)
        problems.check()
        now = int(time.time())
        hook = self.webhooks.get(body["destination"])
        if hook is None:
            hook = self.webhooks[body["destination"]] = {**ref.WEBHOOK, "id": self._id("webhook"),
                                                         "destination": body["destination"], "created_at": now,
                                                         "account_id": w.ACCOUNT_ID, "created_by": w.ADMIN}
        hook.update(settings=list(body["settings"]), sort=body.get("sort", 1), updated_at=now, disabled=False)
        return dict(hook)

    def webhooks_unsubscribe(self, pairs, body):
        destination = (body or {}).get("destination")
        if destination not in self.webhooks:
            raise LookupError("Webhook not found")
        del self.webhooks[destination]
        return None
