"""A CRM-neutral driver for the end-to-end suites: what a sales manager does in the CRM, and
what a test reads back, in terms no CRM owns.

A test asks for a lead in a stage (by the stage's name), moves it, completes a task with a
result, logs a call, and reads a lead's stage, responsible, values and open tasks — never a
CRM's ids, field names or API. Every write a real CRM answers with a webhook returns the
neutral events (reglament.events.Event) that webhook becomes: the CRM's local sandbox posts its
real webhook to a receiver the driver subscribed, and the driver parses the body with the
product's own parser. A test hands those events to the event job as the dispatcher would.

One implementation per CRM (tests/driver/<crm>.py), listed in DRIVERS; the `crm` fixture
(tests/conftest.py) runs a test once per CRM. Every implementation serves the same demo
account, by name:

- users: Анна Смирнова, Борис Иванов, Вера Петрова (managers), Галина Орлова (the head; the
  user the integration acts as, which is what `by=None` means below);
- the pipeline «Продажи» with its stages Новая заявка … Завершил, and the CRM's own closing
  stages, called WON and LOST here;
- loss reasons (Не дозвонились 7 раз, Не удобно, ...), task types (Звонок, Встреча, Важный
  звонок), lead fields (Попытка дозвона, Дата перезвона, Дата пробного, Окончание
  абонемента, Источник, Последний недозвон);
- the demo leads, among them «Наталья Лебедева», an active lead without a task.

Users are the CRM's user ids (as violations and events carry them); `users()` maps names to ids.
Times are aware datetimes; date and date-time field values are written as datetime or date
and read back as aware datetimes.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from reglament.events import Event

WON, LOST = "won", "lost"   # the CRM's own closing stages, whatever the CRM calls them

# crm name → "module:class" of its driver
DRIVERS = {"amocrm": "tests.driver.amocrm:AmoCRMDriver", "bitrix24": "tests.driver.bitrix24:Bitrix24Driver"}

Direction = Literal["in", "out"]
Outcome = Literal["talked", "not_reached", "busy", "other"]


# --- what a test reads back ------------------------------------------------------------------

@dataclass(frozen=True)
class LeadView:
    id: int
    name: str
    stage: str                          # the stage's name; WON or LOST for the closing stages
    responsible: int | None
    values: dict[str, Any]              # custom values by field name (dates as aware datetimes)
    loss_reason: str | None
    created_at: datetime
    contacts: tuple[int, ...] = ()      # the client's cards linked to the lead, the main one first

    def value(self, name: str) -> Any:
        return self.values.get(name)


@dataclass(frozen=True)
class TaskView:
    id: int
    lead_id: int | None
    text: str
    due: datetime
    responsible: int | None
    type: str                           # the task type's name; "" where the CRM has none
    completed: bool
    result: str | None


@dataclass(frozen=True)
class ContactView:
    id: int
    name: str
    phones: tuple[str, ...]             # digits
    leads: tuple[int, ...]


@dataclass(frozen=True)
class ApiCall:
    """One request the CRM answered, as far as a test counts them."""
    op: Literal["read", "create", "update", "delete"]
    entity: str                         # "lead", "task", "contact", "comment", "call", "other"


class Events(list):
    """The events some webhooks became, in the order they came."""

    def of(self, kind: str, **fields: Any) -> "Events":
        return Events(e for e in self if e.kind == kind and all(e.fields.get(k) == v for k, v in fields.items()))

    def one(self, kind: str, **fields: Any) -> Event:
        found = self.of(kind, **fields)
        assert len(found) == 1, f"expected one {kind} {fields or ''}, got {[(e.kind, e.fields) for e in self]}"
        return found[0]


@dataclass(frozen=True)
class Created:
    id: int
    events: Events


@dataclass(frozen=True)
class Mark:
    """Where the webhooks received and the requests answered end at one moment."""
    webhooks: int
    requests: int


# --- the protocol ----------------------------------------------------------------------------

class CrmDriver(ABC):
    name: str                           # the `crm:` of an account's configuration
    account: str                        # our account id, which events carry
    local_urls: tuple[str, ...]         # the sandbox's and the receiver's addresses, for HTTP mocks to let through
    # Whether the CRM's tasks have a type (amoCRM). Without (Bitrix24's to-dos) a task's type reads
    # back as "" and an important task carries the important marker's prefix in its text instead.
    has_task_types: bool = True

    # --- the account
    @abstractmethod
    def account_settings(self) -> dict:
        """The CRM's part of an account's configuration (`crm:` and its section)."""

    @abstractmethod
    def users(self) -> dict[str, int]:
        """The account's users: name → id."""

    @abstractmethod
    def add_field(self, name: str, kind: Literal["text", "date", "datetime"]) -> None:
        """A new custom lead field (an admin's change: no webhook)."""

    @abstractmethod
    def lead_link(self, lead_id: int) -> str:
        """The part of the lead's web address that a message linking to it contains."""

    @abstractmethod
    def generate_leads(self, n: int, *, without_task_share: float, seed: int) -> None:
        """n more leads across the pipeline, each with a client, an open task for all but a share of
        the active ones; silently (no webhooks)."""

    # --- writes; `by` is the user who acts (None: the integration's own user)
    @abstractmethod
    def create_lead(self, stage: str, *, name: str = "Тестовая сделка", responsible: int | None = None,
                    values: dict[str, Any] | None = None, phone: str | None = None, client: str = "Клиент",
                    created_at: datetime | None = None, by: int | None = None) -> Created:
        """A lead in the main pipeline's stage; with `phone`, linked to a new client card (`client`
        is its name)."""

    @abstractmethod
    def move_lead(self, lead_id: int, stage: str, *, loss_reason: str | None = None,
                  by: int | None = None) -> Events: ...

    @abstractmethod
    def set_responsible(self, lead_id: int, user: int, *, by: int | None = None) -> Events: ...

    @abstractmethod
    def set_values(self, lead_id: int, values: dict[str, Any], *, by: int | None = None) -> Events: ...

    @abstractmethod
    def create_task(self, lead_id: int, text: str, due: datetime, *, responsible: int | None = None,
                    type: str | None = None, by: int | None = None) -> Created: ...

    @abstractmethod
    def complete_task(self, task_id: int, result: str | None, *, by: int | None = None) -> Events: ...

    @abstractmethod
    def set_task_due(self, task_id: int, due: datetime, *, by: int | None = None) -> Events:
        """A manager moves the task's deadline."""

    @abstractmethod
    def delete_task(self, task_id: int) -> Events:
        """A manager deletes the task in the CRM's interface."""

    @abstractmethod
    def add_comment(self, lead_id: int, text: str, *, by: int | None = None) -> Events: ...

    @abstractmethod
    def log_call(self, lead_id: int, direction: Direction, outcome: Outcome, *, duration: int = 0,
                 at: datetime | None = None, by: int | None = None, phone: str | None = None) -> Events:
        """A finished call recorded on the lead, as a telephony integrated with the CRM records it
        (`phone`: the lead's client's by default)."""

    # --- reads (fresh, not cached)
    @abstractmethod
    def lead(self, lead_id: int) -> LeadView | None: ...

    @abstractmethod
    def leads(self) -> list[LeadView]: ...

    @abstractmethod
    def open_tasks(self, lead_id: int) -> list[TaskView]: ...

    @abstractmethod
    def tasks(self, lead_id: int) -> list[TaskView]:
        """The lead's tasks, open and completed."""

    @abstractmethod
    def task(self, task_id: int) -> TaskView | None: ...

    @abstractmethod
    def contacts(self) -> list[ContactView]: ...

    @abstractmethod
    def comments(self, lead_id: int) -> list[str]:
        """The texts of the lead's comments (notes), oldest first."""

    # --- what the CRM saw
    @abstractmethod
    def mark(self) -> Mark:
        """Now, once every webhook on its way has arrived."""

    @abstractmethod
    def events_since(self, mark: Mark) -> Events:
        """The events of every webhook received after the mark (those Reglament's own changes
        caused too), once every webhook on its way has arrived."""

    @abstractmethod
    def calls_since(self, mark: Mark) -> list[ApiCall]:
        """The API requests the CRM answered after the mark."""

    @abstractmethod
    def close(self) -> None: ...

    # --- shared
    def user(self, name: str) -> int:
        return self.users()[name]

    def user_name(self, user_id: int | None) -> str:
        return next((n for n, i in self.users().items() if i == user_id), "")

    def client_phone(self, lead_id: int) -> str:
        """The phone of the lead's client (a placeholder when it has none)."""
        lead = self.lead(lead_id)
        phones = [p for c in self.contacts() if lead and c.id in lead.contacts for p in c.phones]
        return phones[0] if phones else "70000000000"

    def __enter__(self) -> "CrmDriver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_driver(name: str, account: str, redis_url: str | None = None, **options: Any) -> CrmDriver:
    """A CRM's driver; `redis_url`: the test's Redis, for a driver that keeps state (Bitrix24's last-seen deals);
    `options`: that CRM's account options (Bitrix24: next_step="task")."""
    module, cls = DRIVERS[name].split(":")
    return getattr(importlib.import_module(module), cls)(account, redis_url=redis_url, **options)


# --- a local webhook receiver ----------------------------------------------------------------

@dataclass
class Delivery:
    path: str
    content_type: str
    body: bytes


class WebhookReceiver:
    """A local URL a sandbox posts its webhooks to; keeps every body, in the order they came."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        received, lock = self.deliveries, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append(Delivery(self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def since(self, index: int) -> list[Delivery]:
        return self.deliveries[index:]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def timestamp(value: datetime | date, tz) -> int:
    """A datetime (aware) or a date (its midnight in `tz`) as a unix time."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None, "the driver takes aware datetimes"
        return int(value.timestamp())
    return int(datetime(value.year, value.month, value.day, tzinfo=tz).timestamp())
