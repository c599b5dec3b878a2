"""Outgoing events: handlers bound with event.bind or set up as outgoing webhooks, and their delivery.

Each change the portal announces goes to every handler of that event as one
application/x-www-form-urlencoded POST (CONFIRMED): `event`, `event_handler_id`,
`data[...]`, `ts`, then `auth[...]`. A handler bound by the application gets the full
auth block with an access token of the user who made the change; an outgoing webhook
gets only domain, client_endpoint, server_endpoint, member_id and its own
application_token (CONFIRMED). Events carry only ids, except the telephony ones.
A delivery is tried once and never again, whatever the answer (CONFIRMED). Deliveries go
off the request path (sandbox/outbox.py): each handler URL has its own sender thread, so
one slow handler does not hold up another and a handler sees its events in order.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from sandbox.outbox import Outbox, post_form

from .auth import ACCESS_TTL, SCOPE, Auth
from .errors import ApiError
from .portal import Caller, Portal

SERVER_ENDPOINT = "https://oauth.bitrix.info/rest/"
USER_AGENT = "Bitrix24 Webhook Engine"   # UNCONFIRMED
# Events this sandbox fires; event.bind also accepts the other names below (never fired here).
FIRED = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONCRMLEADADD", "ONCRMLEADUPDATE",
         "ONCRMLEADDELETE", "ONCRMCONTACTADD", "ONCRMCONTACTUPDATE", "ONCRMCONTACTDELETE", "ONCRMACTIVITYADD",
         "ONCRMACTIVITYUPDATE", "ONCRMACTIVITYDELETE", "ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE",
         "ONCRMTIMELINECOMMENTADD", "ONVOXIMPLANTCALLEND"}
KNOWN = FIRED | {"ONCRMCOMPANYADD", "ONCRMCOMPANYUPDATE", "ONCRMCOMPANYDELETE", "ONVOXIMPLANTCALLINIT",
                 "ONVOXIMPLANTCALLSTART", "ONCRMTIMELINECOMMENTUPDATE",
                 "ONCRMTIMELINECOMMENTDELETE", "ONTASKCOMMENTADD", "ONAPPINSTALL", "ONAPPUNINSTALL",
                 "ONCRMDEALMOVETOCATEGORY", "ONUSERADD", "ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"}


@dataclass
class Handler:
    id: int
    event: str                   # upper case
    url: str
    kind: str                    # "app" (event.bind) | "webhook" (an outgoing webhook)
    application_token: str
    auth_type: int = 0
    webhook_id: int | None = None


def flatten(prefix: str, value, out: list[tuple[str, str]]) -> None:
    """PHP-style form pairs: data[FIELDS][ID]=7 (what http_build_query writes)."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}[{k}]", v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            flatten(f"{prefix}[{i}]", v, out)
    else:
        out.append((prefix, "" if value is None else str(value)))


class Events(Outbox):
    def __init__(self, portal: Portal, auth: Auth, timeout: float = 5.0, log_limit: int = 10000):
        super().__init__(timeout, log_limit, name="b24-sandbox-events")
        self.portal = portal
        self.auth = auth
        self.handlers: list[Handler] = []
        self.webhooks: dict[int, dict] = {}   # outgoing webhooks: id -> {handler, events, application_token}
        self._ids = 0
        self._lock = threading.RLock()        # guards handlers and webhooks
        portal.add_listener(self.publish)

    # ------------------------------------------------------------------ bindings
    def _next_id(self) -> int:
        self._ids += 1
        return self.portal.ids.get("handler", 100) + self._ids

    def bind(self, event: str, url: str, auth_type: int = 0) -> None:
        name = str(event or "").strip().upper()
        if name not in KNOWN:
            raise ApiError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
        if not str(url or "").startswith(("http://", "https://")):
            raise ApiError(400, "ERROR_HANDLER_URL_MISMATCH", "Handler URL is not valid")
        with self._lock:
            if any(h.kind == "app" and h.event == name and h.url == url for h in self.handlers):
                raise ApiError(400, "ERROR_HANDLER_ALREADY_EXIST", "Handler already exists!")
            self.handlers.append(Handler(self._next_id(), name, url, "app",
                                         self.auth.credentials.application_token, auth_type))

    def unbind(self, event: str, url: str | None, auth_type: int | None = None) -> int:
        name = str(event or "").strip().upper()
        with self._lock:
            gone = [h for h in self.handlers if h.kind == "app" and h.event == name and (not url or h.url == url)
                    and (auth_type is None or h.auth_type == auth_type)]
            self.handlers = [h for h in self.handlers if h not in gone]
            return len(gone)

    def bound(self) -> list[dict]:
        with self._lock:
            return [{"event": h.event, "handler": h.url, "auth_type": str(h.auth_type), "offline": 0}
                    for h in self.handlers if h.kind == "app"]

    def add_webhook(self, url: str, events: list[str], application_token: str | None = None) -> dict:
        """An outgoing webhook as an admin sets one up on the portal's page; its token is shown once."""
        names = [str(e).strip().upper() for e in events]
        unknown = [n for n in names if n not in KNOWN]
        if unknown or not names:
            raise ValueError(f"unknown events: {', '.join(unknown) or 'none given'}")
        if not str(url).startswith(("http://", "https://")):
            raise ValueError("handler must be an http(s) URL")
        token = application_token or secrets.token_hex(16)
        with self._lock:
            webhook_id = self._next_id()
            self.webhooks[webhook_id] = {"id": webhook_id, "handler": url, "events": names}
            for n in names:
                self.handlers.append(Handler(self._next_id(), n, url, "webhook", token, 0, webhook_id))
        return {"id": webhook_id, "handler": url, "events": names, "application_token": token}

    def remove_webhook(self, webhook_id: int) -> bool:
        with self._lock:
            if self.webhooks.pop(webhook_id, None) is None:
                return False
            self.handlers = [h for h in self.handlers if h.webhook_id != webhook_id]
            return True

    # ------------------------------------------------------------------ sending
    def body(self, handler: Handler, event: str, data: dict, caller: Caller) -> str:
        p = self.portal
        pairs: list[tuple[str, str]] = [("event", event), ("event_handler_id", str(handler.id))]
        flatten("data", data, pairs)
        pairs.append(("ts", str(int(p.now()))))
        if handler.kind == "app":
            auth = {"access_token": self.auth.event_token(caller.user_id), "expires_in": str(ACCESS_TTL),
                    "scope": SCOPE, "domain": p.domain, "server_endpoint": SERVER_ENDPOINT, "status": "L",
                    "client_endpoint": p.client_endpoint, "member_id": p.info["member_id"],
                    "application_token": handler.application_token}
        else:
            auth = {"domain": p.domain, "client_endpoint": p.client_endpoint, "server_endpoint": SERVER_ENDPOINT,
                    "member_id": p.info["member_id"], "application_token": handler.application_token}
        flatten("auth", auth, pairs)
        return urlencode(pairs)

    def publish(self, event: str, data: dict, caller: Caller) -> None:
        with self._lock:
            chosen = [h for h in self.handlers if h.event == event]
        for handler in chosen:
            self.put(handler.url, (handler, event, self.body(handler, event, data, caller)))

    def deliver(self, session: requests.Session, job: tuple[Handler, str, str]) -> None:
        handler, event, body = job
        status, error = post_form(session, handler.url, body, self.timeout, {"User-Agent": USER_AGENT})
        # Never retried, whatever happened.
        self._log.add({"time": time.time(), "event": event, "handler": handler.url, "event_handler_id": handler.id,
                       "kind": handler.kind, "status": status, "ok": status is not None and 200 <= status < 300,
                       "error": error, "body": body})

    # ------------------------------------------------------------------ the application's install
    def install(self, url: str) -> dict:
        """Install the application with `url` as its handler: ONAPPINSTALL with a fresh token pair
        of the installing user (CONFIRMED fields and order, on-app-install.md), posted once."""
        _handler_url(url)
        p, c = self.portal, self.auth.credentials
        pair = self.auth.issue(c.app_user)
        pairs = [("event", "ONAPPINSTALL")]
        flatten("data", {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"}, pairs)
        pairs.append(("ts", str(int(p.now()))))
        flatten("auth", {"domain": p.domain, "scope": SCOPE, "access_token": pair["access_token"],
                         "refresh_token": pair["refresh_token"], "expires_in": str(ACCESS_TTL),
                         "server_endpoint": SERVER_ENDPOINT, "status": "L", "client_endpoint": p.client_endpoint,
                         "member_id": p.info["member_id"], "application_token": c.application_token}, pairs)
        return self._send_once(url, "ONAPPINSTALL", urlencode(pairs))

    def uninstall(self, url: str) -> dict:
        """Uninstall the application: its tokens stop working, its event.bind handlers go
        (UNCONFIRMED: the docs say only that API access is revoked), and ONAPPUNINSTALL is
        posted once to `url` (CONFIRMED fields, on-app-uninstall.md)."""
        _handler_url(url)
        p, c = self.portal, self.auth.credentials
        self.auth.revoke()
        with self._lock:
            self.handlers = [h for h in self.handlers if h.kind != "app"]
        pairs = [("event", "ONAPPUNINSTALL")]
        flatten("data", {"LANGUAGE_ID": "ru", "CLEAN": "0"}, pairs)
        pairs.append(("ts", str(int(p.now()))))
        flatten("auth", {"domain": p.domain, "server_endpoint": SERVER_ENDPOINT, "client_endpoint": p.client_endpoint,
                         "member_id": p.info["member_id"], "application_token": c.application_token}, pairs)
        return self._send_once(url, "ONAPPUNINSTALL", urlencode(pairs))

    def _send_once(self, url: str, event: str, body: str) -> dict:
        """Posted now, on the caller's thread, and never again; logged as every delivery is."""
        with requests.Session() as session:
            status, error = post_form(session, url, body, self.timeout, {"User-Agent": USER_AGENT})
        entry = {"time": time.time(), "event": event, "handler": url, "event_handler_id": None, "kind": "app",
                 "status": status, "ok": status is not None and 200 <= status < 300, "error": error, "body": body}
        self._log.add(entry)
        return {k: v for k, v in entry.items() if k != "body"}

    def stop(self) -> None:
        self.portal.remove_listener(self.publish)
        super().stop()


def _handler_url(url: str) -> None:
    if not str(url).startswith(("http://", "https://")):
        raise ValueError("handler must be an http(s) URL")
