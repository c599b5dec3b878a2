"""The amoCRM REST API v4 client: the only place in Reglament that knows amoCRM's URLs.

Conventions:
- Reads return plain dicts as amoCRM sends them; collections are unwrapped from
  `_embedded` and returned as complete lists (every page fetched: limit 250, events 100,
  following `_links.next` until it is absent; HTTP 204 means an empty list).
- Writes go in batches of at most 50 items per request.
- Creates take an action key per item and happen once per key (see idempotency.py);
  they return the new ids in the order given.
- Errors: AmoCRMValidationError (400/422, message in plain words), AuthError (401 that a
  refresh cannot fix: an admin must re-authorize), ForbiddenError (403), NotFoundError
  (404), ApiError (other statuses), AmoCRMGaveUp (429/5xx/network until retries ran out).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
import requests

from connectors.amocrm import filters as f
from connectors.amocrm import finders
from connectors.amocrm.auth import REAUTHORIZE, LongLivedToken, OAuthTokens
from connectors.amocrm.errors import AmoCRMGaveUp, AuthError, NotFoundError, error_for
from connectors.amocrm.idempotency import ActionLog, IdempotentCreator
from connectors.http import DEFAULT_TIMEOUT, GaveUp, HttpClient
from connectors.ratelimit import RateLimiter
from connectors.oauth import TokenProvider
from reglament import keys
from reglament.config import AmoCRMSettings

SYSTEM = "amocrm"
PAGE = 250
EVENTS_PAGE = 100  # the Russian docs cap events at 100 per page (Kommo says 250)
BATCH = 50
NOTE_ENTITIES = ("leads", "contacts", "companies", "customers")


def budget_key(account_id: str) -> str:
    """The Redis key of the account's request budget (connectors/ratelimit.py), which also
    says when and why the account is paused."""
    return keys.key(account_id, "amocrm", "ratelimit")


class AmoCRMClient:
    """One amoCRM account. Safe to create per job; all shared state lives in Redis."""

    def __init__(self, account_id: str, settings: AmoCRMSettings, r: redis.Redis, *,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 max_attempts: int = 5,
                 backoff_base: float = 0.5,
                 backoff_max: float = 30.0,
                 sleep=time.sleep):
        self.account_id = account_id
        self.base_url = settings.base_url.rstrip("/")
        # The 7 req/s limit is documented without saying whether it is per integration,
        # account or IP; one budget per account is the natural reading for us.
        limiter = RateLimiter(r, budget_key(account_id), settings.rate_limit)
        self.http = HttpClient(r, account_id, SYSTEM, limiter=limiter, timeout=timeout, max_attempts=max_attempts,
                               backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep, session=session,
                               secrets=lambda: self.auth.secrets())
        self.auth: TokenProvider
        if settings.long_lived_token:
            self.auth = LongLivedToken(settings.long_lived_token)
        else:
            self.auth = OAuthTokens(r, account_id, self.base_url, settings.oauth, self.http)
        self.creator = IdempotentCreator(ActionLog(r, account_id), attempts=max_attempts,
                                         backoff=self.http.backoff, sleep=sleep)

    def __repr__(self) -> str:
        return f"AmoCRMClient(account={self.account_id!r}, base_url={self.base_url!r})"

    # ---------------------------------------------------------------- account & settings

    def account(self) -> dict:
        """The account, with `_embedded.task_types` and `_embedded.users_groups`."""
        return self._get("/api/v4/account", [("with", "task_types,users_groups")]) or {}

    def task_types(self) -> list[dict]:
        """Task types: 1 = call (follow-up), 2 = meeting, plus the account's own."""
        data = self._get("/api/v4/account", [("with", "task_types")]) or {}
        return list((data.get("_embedded") or {}).get("task_types") or [])

    def users(self) -> list[dict]:
        return self._pages("/api/v4/users", "users")

    def pipelines(self) -> list[dict]:
        """Pipelines, each with its stages in `_embedded.statuses` (142 won, 143 lost)."""
        return self._pages("/api/v4/leads/pipelines", "pipelines", page_size=None)

    def loss_reasons(self) -> list[dict]:
        return self._pages("/api/v4/leads/loss_reasons", "loss_reasons", page_size=None)

    def custom_fields(self, entity_type: str = "leads") -> list[dict]:
        """Custom field definitions of leads or contacts."""
        if entity_type not in ("leads", "contacts"):
            raise ValueError("entity_type must be 'leads' or 'contacts'")
        return self._pages(f"/api/v4/{entity_type}/custom_fields", "custom_fields")

    # ---------------------------------------------------------------- leads

    def get_lead(self, lead_id: int, *, with_contacts: bool = True) -> dict | None:
        """One lead (with its contacts in `_embedded.contacts`), or None if it does not exist."""
        return self._get(f"/api/v4/leads/{int(lead_id)}", [("with", "contacts")] if with_contacts else [])

    def leads(self, *, statuses: Iterable[tuple[int, int]] | None = None, pipeline_ids=None,
              responsible_user_ids=None, created_at: f.Range = None, updated_at: f.Range = None,
              ids=None, query: str | None = None, with_contacts: bool = False) -> list[dict]:
        """Leads matching every filter given; `statuses` are (pipeline_id, status_id) pairs, ranges (from, to)."""
        params = (f.lead_statuses(statuses) + f.values("pipeline_id", pipeline_ids)
                  + f.values("responsible_user_id", responsible_user_ids) + f.moment_range("created_at", created_at)
                  + f.moment_range("updated_at", updated_at) + f.values("id", ids))
        if query:
            params.append(("query", query))
        if with_contacts:
            params.append(("with", "contacts"))
        return self._pages("/api/v4/leads", "leads", params)

    def update_leads(self, updates: Sequence[dict]) -> list[dict]:
        """PATCH leads in batches; each dict has `id` plus the fields to change
        (moving to 142/143 needs `pipeline_id` too)."""
        _require_ids(updates)
        return self._write("PATCH", "/api/v4/leads", "leads", updates)

    def update_lead(self, lead_id: int, **fields) -> dict:
        return self.update_leads([{"id": int(lead_id), **fields}])[0]

    def create_leads(self, items: Sequence[tuple[str, dict]]) -> list[int]:
        """Create leads once per action key: items are (action_key, lead fields)."""
        return self.creator.create("leads", items, send=self._poster("/api/v4/leads", "leads"),
                                   find=lambda pending: finders.leads(self, pending))

    def create_lead(self, action_key: str, **fields) -> int:
        return self.create_leads([(action_key, fields)])[0]

    # ---------------------------------------------------------------- contacts

    def get_contact(self, contact_id: int, *, with_leads: bool = False) -> dict | None:
        return self._get(f"/api/v4/contacts/{int(contact_id)}", [("with", "leads")] if with_leads else [])

    def contacts(self, *, query: str | None = None, ids=None, created_at: f.Range = None,
                 updated_at: f.Range = None, with_leads: bool = False) -> list[dict]:
        params = (f.values("id", ids) + f.moment_range("created_at", created_at)
                  + f.moment_range("updated_at", updated_at))
        if query:
            params.append(("query", query))
        if with_leads:
            params.append(("with", "leads"))
        return self._pages("/api/v4/contacts", "contacts", params)

    def find_contacts_by_phone(self, phone: str, *, with_leads: bool = False) -> list[dict]:
        """Contacts having this phone number, compared on the last 10 digits (as amoCRM telephony does).

        Searching by the digits through `query` is UNCONFIRMED to match every stored
        format, so the results are also checked here.
        """
        digits = re.sub(r"\D", "", phone or "")[-10:]
        if len(digits) < 5:
            return []
        return [c for c in self.contacts(query=digits, with_leads=with_leads) if digits in _phone_tails(c)]

    def create_contacts(self, items: Sequence[tuple[str, dict]]) -> list[int]:
        return self.creator.create("contacts", items, send=self._poster("/api/v4/contacts", "contacts"),
                                   find=lambda pending: finders.contacts(self, pending))

    def create_contact(self, action_key: str, *, name: str | None = None, phone: str | None = None, **fields) -> int:
        """Create a contact once per action key; `phone` fills the standard PHONE field."""
        if name is not None:
            fields["name"] = name
        if phone:
            fields.setdefault("custom_fields_values", []).append(
                {"field_code": "PHONE", "values": [{"value": phone, "enum_code": "WORK"}]})
        return self.create_contacts([(action_key, fields)])[0]

    def link_contact_to_lead(self, lead_id: int, contact_id: int, *, main: bool = False) -> list[dict]:
        """Attach a contact to a lead (linking twice is harmless)."""
        body = [{"to_entity_id": int(contact_id), "to_entity_type": "contacts", "metadata": {"is_main": bool(main)}}]
        resp = self._send("POST", f"/api/v4/leads/{int(lead_id)}/link", json=body, idempotent=True)
        return _embedded(_json(resp), "links")

    # ---------------------------------------------------------------- tasks

    def tasks(self, *, entity_type: str | None = None, entity_ids=None, is_completed: bool | None = None,
              responsible_user_ids=None, task_type_ids=None, updated_at: f.Range = None) -> list[dict]:
        """Tasks matching every filter given (entity_ids needs entity_type: "leads", "contacts", ...)."""
        if entity_ids is not None and not entity_type:
            raise ValueError("entity_ids needs entity_type")
        params = (f.scalar("entity_type", entity_type) + f.values("entity_id", entity_ids)
                  + f.flag("is_completed", is_completed) + f.values("responsible_user_id", responsible_user_ids)
                  + f.values("task_type", task_type_ids) + f.moment_range("updated_at", updated_at))
        return self._pages("/api/v4/tasks", "tasks", params)

    def create_tasks(self, items: Sequence[tuple[str, dict]]) -> list[int]:
        """Create tasks once per action key: items are (action_key, task fields:
        text, complete_till, entity_type, entity_id, responsible_user_id, task_type_id, ...)."""
        for _, task in items:
            if not task.get("text") or not task.get("complete_till"):
                raise ValueError("a task needs text and complete_till")
        return self.creator.create("tasks", items, send=self._poster("/api/v4/tasks", "tasks"),
                                   find=lambda pending: finders.tasks(self, pending))

    def create_task(self, action_key: str, *, text: str, complete_till: int, entity_type: str | None = None,
                    entity_id: int | None = None, responsible_user_id: int | None = None,
                    task_type_id: int | None = None, **fields) -> int:
        if isinstance(complete_till, bool) or not isinstance(complete_till, (int, float)):
            raise TypeError(f"complete_till must be a unix time in seconds, not {complete_till!r}")
        task = {"text": text, "complete_till": int(complete_till), **fields}
        for name, value in (("entity_type", entity_type), ("entity_id", entity_id),
                            ("responsible_user_id", responsible_user_id), ("task_type_id", task_type_id)):
            if value is not None:
                task[name] = value
        return self.create_tasks([(action_key, task)])[0]

    def update_tasks(self, updates: Sequence[dict]) -> list[dict]:
        """PATCH tasks in batches; each dict has `id` plus the fields to change."""
        _require_ids(updates)
        return self._write("PATCH", "/api/v4/tasks", "tasks", updates)

    def complete_tasks(self, items: Sequence[tuple[int, str]]) -> list[dict]:
        """Close tasks with a result text: items are (task_id, result_text)."""
        return self.update_tasks([{"id": int(task_id), "is_completed": True, "result": {"text": text}}
                                  for task_id, text in items])

    def complete_task(self, task_id: int, result_text: str) -> dict:
        return self.complete_tasks([(task_id, result_text)])[0]

    # ---------------------------------------------------------------- notes

    def notes(self, entity_type: str = "leads", *, entity_ids=None, note_types=None,
              updated_at: f.Range = None) -> list[dict]:
        """Notes of leads (or contacts, ...); note_types like "common", "call_in", "call_out"."""
        _check_note_entity(entity_type)
        params = (f.values("entity_id", entity_ids) + f.values("note_type", note_types)
                  + f.moment_range("updated_at", updated_at))
        return self._pages(f"/api/v4/{entity_type}/notes", "notes", params)

    def create_notes(self, entity_type: str, items: Sequence[tuple[str, dict]]) -> list[int]:
        """Create notes once per action key: items are (action_key, {entity_id, note_type, params})."""
        _check_note_entity(entity_type)
        find = finders.notes(entity_type)
        return self.creator.create(f"notes:{entity_type}", items,
                                   send=self._poster(f"/api/v4/{entity_type}/notes", "notes"),
                                   find=lambda pending: find(self, pending))

    def add_note(self, action_key: str, entity_type: str, entity_id: int, text: str) -> int:
        """A plain text note on a lead or contact."""
        note = {"entity_id": int(entity_id), "note_type": "common", "params": {"text": text}}
        return self.create_notes(entity_type, [(action_key, note)])[0]

    def add_call_note(self, action_key: str, entity_type: str, entity_id: int, *, incoming: bool, phone: str,
                      duration: int, source: str, uniq: str | None = None, link: str | None = None,
                      call_status: int | None = None, call_result: str | None = None,
                      created_by: int | None = None, responsible_user_id: int | None = None) -> int:
        """A call note (call_in / call_out). call_status: 1 left a message, 2 call back later,
        3 not available, 4 talked, 5 wrong number, 6 did not get through, 7 busy."""
        params: dict[str, Any] = {"phone": phone, "duration": int(duration), "source": source}
        for name, value in (("uniq", uniq), ("link", link), ("call_status", call_status),
                            ("call_result", call_result), ("call_responsible", responsible_user_id)):
            if value is not None:
                params[name] = value
        note: dict[str, Any] = {"entity_id": int(entity_id), "note_type": "call_in" if incoming else "call_out",
                                "params": params}
        if created_by is not None:
            note["created_by"] = created_by
        return self.create_notes(entity_type, [(action_key, note)])[0]

    # ---------------------------------------------------------------- calls

    def add_calls(self, items: Sequence[tuple[str, dict]]) -> list[int | None]:
        """Log calls (amoCRM files each under the contact/lead with that phone's last 10 digits).

        Items are (action_key, {direction: inbound|outbound, phone, duration, source, ...}).
        None where amoCRM found nobody with the number and added nothing. A call whose
        outcome is unclear is never re-sent (AmbiguousWriteError): it cannot be looked up.
        """
        return self.creator.create("calls", items, send=self._poster("/api/v4/calls", "calls"), find=None,
                                   allow_missing=True)

    def add_call(self, action_key: str, *, direction: str, phone: str, duration: int, source: str,
                 **fields) -> int | None:
        if direction not in ("inbound", "outbound"):
            raise ValueError("direction must be 'inbound' or 'outbound'")
        call = {"direction": direction, "phone": phone, "duration": int(duration), "source": source, **fields}
        return self.add_calls([(action_key, call)])[0]

    # ---------------------------------------------------------------- events

    def events(self, *, types: Iterable[str] | None = None, entity: str | Iterable[str] | None = None,
               entity_ids=None, created_at: f.Range = None, created_by=None,
               lead_statuses_after: Iterable[tuple[int, int]] | None = None,
               with_names: bool = False) -> list[dict]:
        """Events (e.g. types lead_status_changed, task_completed, incoming_call) in 100-item pages.

        `entity` is "lead", "contact", "company", "task"; `entity_ids` (at most 10) needs one
        entity; `lead_statuses_after` keeps status changes into the given (pipeline_id, status_id).
        """
        params = f.moment_range("created_at", created_at) + f.values("entity", entity)
        params += f.values("entity_id", entity_ids) + f.values("created_by", created_by)
        if types:
            params.append(("filter[type]", ",".join(types)))
        for i, (pipeline_id, status_id) in enumerate(lead_statuses_after or ()):
            params += [(f"filter[value_after][leads_statuses][{i}][pipeline_id]", pipeline_id),
                       (f"filter[value_after][leads_statuses][{i}][status_id]", status_id)]
        if with_names:
            params.append(("with", "contact_name,lead_name,company_name"))
        return self._pages("/api/v4/events", "events", params, page_size=EVENTS_PAGE)

    # ---------------------------------------------------------------- webhooks (admin rights)

    def webhooks(self, destination: str | None = None) -> list[dict]:
        """Webhook subscriptions, optionally only the one with this exact URL."""
        params = [("filter[destination]", destination)] if destination else []
        return self._pages("/api/v4/webhooks", "webhooks", params, page_size=None)

    def subscribe_webhook(self, destination: str, events: Sequence[str], *, sort: int | None = None) -> dict:
        """Subscribe `destination` to `events` (amoCRM updates an existing subscription of that URL)."""
        body: dict[str, Any] = {"destination": destination, "settings": list(events)}
        if sort is not None:
            body["sort"] = sort
        return _json(self._send("POST", "/api/v4/webhooks", json=body, idempotent=True)) or {}

    def unsubscribe_webhook(self, destination: str) -> bool:
        """Remove the subscription of `destination`; False if there was none."""
        try:
            self._send("DELETE", "/api/v4/webhooks", json={"destination": destination})
        except NotFoundError:
            return False
        return True

    # ---------------------------------------------------------------- plumbing

    def _send(self, method: str, path_or_url: str, *, params=None, json=None,
              idempotent: bool | None = None) -> requests.Response:
        """One call with auth: on 401 refresh the token once and repeat once; map errors."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.base_url + path_or_url
        token = self.auth.access_token()
        resp = self._request(method, url, token, params, json, idempotent)
        if resp.status_code == 401:
            token = self.auth.refresh(token)  # raises AuthError when it cannot
            resp = self._request(method, url, token, params, json, idempotent)
            if resp.status_code == 401:
                raise AuthError(f"amoCRM answered 401 Unauthorized even with a freshly refreshed token. {REAUTHORIZE}")
        if resp.status_code >= 400:
            raise error_for(resp.status_code, _json(resp), resp.reason or "", redact=self.http.redact)
        return resp

    def _request(self, method, url, token, params, json, idempotent) -> requests.Response:
        try:
            return self.http.request(method, url, params=params, json=json, idempotent=idempotent,
                                     headers={"Authorization": f"Bearer {token}"})
        except GaveUp as exc:
            raise AmoCRMGaveUp(exc.system, exc.method, exc.path, exc.attempts, exc.last) from None

    def _get(self, path: str, params=None) -> dict | None:
        """One entity; None when amoCRM answers 204 or 404 (no such entity)."""
        try:
            resp = self._send("GET", path, params=params)
        except NotFoundError:
            return None
        return _json(resp) if resp.status_code != 204 else None

    def page(self, path: str, key: str, params: list, page: int, page_size: int = PAGE) -> tuple[list[dict], bool]:
        """One page of a collection and whether another follows, for a caller that wants
        memory bounded on big accounts (the sweep) rather than the whole collection."""
        resp = self._send("GET", path, params=[*params, ("limit", page_size), ("page", page)])
        if resp.status_code == 204 or not resp.content:
            return [], False
        data = _json(resp)
        links = (data.get("_links") or {}) if isinstance(data, dict) else {}
        return _embedded(data, key), bool(links.get("next"))

    def _pages(self, path: str, key: str, params: list | None = None, page_size: int | None = PAGE) -> list[dict]:
        """Every item of a collection, following `_links.next`; 204 is an empty page."""
        query = list(params or [])
        if page_size:
            query += [("limit", page_size), ("page", 1)]
        url: str | None = self.base_url + path
        seen: set = set()
        found: list[dict] = []
        while url:
            marker = (url, tuple(query))
            if marker in seen:
                break  # a next link pointing back would loop forever
            seen.add(marker)
            resp = self._send("GET", url, params=query or None)
            if resp.status_code == 204:
                break
            data = _json(resp)
            found += _embedded(data, key)
            links = (data.get("_links") or {}) if isinstance(data, dict) else {}
            href = (links.get("next") or {}).get("href")
            # The next link carries the whole query string, ours included.
            url, query = (self._on_our_host(href) if href else None), []
        return found

    def _on_our_host(self, href: str) -> str:
        # Next links may name another host (amoCRM shards); the token only ever goes to base_url.
        parts = urlsplit(href)
        return self.base_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _write(self, method: str, path: str, key: str, items: Sequence[dict]) -> list[dict]:
        found: list[dict] = []
        for start in range(0, len(items), BATCH):
            resp = self._send(method, path, json=list(items[start:start + BATCH]))
            found += _embedded(_json(resp), key)
        return found

    def _poster(self, path: str, key: str):
        """A sender for IdempotentCreator: one POST, not repeated after an unclear failure."""
        def send(payloads: list[dict]) -> list[dict]:
            return _embedded(_json(self._send("POST", path, json=payloads, idempotent=False)), key)
        return send


def _json(resp: requests.Response):
    if resp.status_code == 204 or not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _embedded(data, key: str) -> list[dict]:
    if not isinstance(data, dict):
        return []
    return list((data.get("_embedded") or {}).get(key) or [])


def _require_ids(updates: Sequence[dict]) -> None:
    if any("id" not in u for u in updates):
        raise ValueError("every update needs the id of the entity to change")


def _check_note_entity(entity_type: str) -> None:
    if entity_type not in NOTE_ENTITIES:
        raise ValueError(f"notes belong to one of {', '.join(NOTE_ENTITIES)}, not {entity_type!r}")


def _phone_tails(contact: dict) -> set[str]:
    tails = set()
    for field in contact.get("custom_fields_values") or []:
        if field.get("field_code") == "PHONE":
            for v in field.get("values") or []:
                tails.add(re.sub(r"\D", "", str(v.get("value") or ""))[-10:])
    return tails
