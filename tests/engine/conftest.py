"""Fixtures for the rules engine: a running amoCRM sandbox (`amo`, for the tests about amoCRM itself)
or the neutral driver's CRM (`crm`, tests/driver), real Redis, and the job context set up as the
worker sets it up (jobs.context.set_settings)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import requests

from sandbox.amocrm import SandboxServer
from jobs import context
from tests.conftest import make_settings
from tests.driver import CrmDriver

TOKEN = "engine-test-token"
ACCOUNT = "demo"
PIPELINE = 7700001
STATUS = {"Новая заявка": 61000001, "Недозвон": 61000002, "Просил перезвонить": 61000003,
          "Записался на пробное": 61000004, "Не пришел на пробное": 61000005, "Пришел на пробное": 61000006,
          "Принимает решение": 61000007, "Клиент": 61000008, "Инкубатор": 61000009, "Отказ": 61000010,
          "Расторгнут договор": 61000011, "Завершил": 61000012, "won": 142, "lost": 143}
FIELD = {"Попытка дозвона": 883001, "Дата перезвона": 883002, "Дата пробного": 883003,
         "Окончание абонемента": 883004, "Последний недозвон": 883006}
ANNA, BORIS = 9100001, 9100002
ALL_DAY = {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _settings(crm: dict, rules: dict | None, account: dict):
    return make_settings(accounts=[{
        "id": ACCOUNT,
        **crm,
        "webhook_secret": "engine-webhook-secret-0123",
        # Around the clock and no holidays: expected due times are plain arithmetic.
        "working_hours": ALL_DAY, "holidays_country": None,
        "rules": rules or {},
        **account,
    }])


def engine_settings(base_url: str, rules: dict | None = None, **account):
    """The account on an amoCRM sandbox at base_url."""
    return _settings({"amocrm": {"base_url": base_url, "long_lived_token": TOKEN, "rate_limit": 1000}}, rules, account)


def crm_settings(crm: CrmDriver, rules: dict | None = None, **account):
    """The account on the neutral driver's CRM."""
    assert crm.account == ACCOUNT
    return _settings(crm.account_settings(), rules, account)


class Amo:
    """The sandbox as a test talks to it: plain API calls, plus its request log."""

    def __init__(self, server: SandboxServer):
        self.server = server
        self.account = server.account
        self.http = requests.Session()
        self.http.headers.update(server.headers)

    def api(self, method: str, path: str, **kw):
        resp = self.http.request(method, self.server.url + path, **kw)
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.content else None

    def create_lead(self, status: str, *, responsible: int = ANNA, fields: dict | None = None,
                    name: str = "Тестовая сделка") -> int:
        item = {"name": name, "status_id": STATUS[status], "pipeline_id": PIPELINE,
                "responsible_user_id": responsible,
                "custom_fields_values": [{"field_id": FIELD[k], "values": [{"value": v}]}
                                         for k, v in (fields or {}).items()]}
        return self.api("POST", "/api/v4/leads", json=[item])["_embedded"]["leads"][0]["id"]

    def lead(self, lead_id: int) -> dict:
        return self.api("GET", f"/api/v4/leads/{lead_id}")

    def field(self, lead_id: int, name: str):
        for f in self.lead(lead_id).get("custom_fields_values") or []:
            if f["field_id"] == FIELD[name]:
                return f["values"][0]["value"]
        return None

    def open_tasks(self, lead_id: int) -> list[dict]:
        found = self.http.get(self.server.url + "/api/v4/tasks",
                              params={"filter[entity_type]": "leads", "filter[entity_id][]": lead_id,
                                      "filter[is_completed]": 0})
        return found.json()["_embedded"]["tasks"] if found.status_code == 200 else []

    def requests_since(self, index: int) -> list[dict]:
        return self.server.sandbox.requests.since(index)

    def mark(self) -> int:
        """Where the request log ends now (pass to requests_since)."""
        log = self.server.sandbox.requests.since(0)
        return log[-1]["index"] + 1 if log else 0


@pytest.fixture
def amo():
    with SandboxServer(token=TOKEN, rate_limit=0, webhook_retry_delays=(0.2,)) as server:
        yield Amo(server)


@pytest.fixture
def engine(amo, r):
    """The job context as the worker sets it up, pointing at the sandbox."""
    settings = engine_settings(amo.server.url)
    context.set_settings(settings, r)
    return settings


@pytest.fixture
def service(crm, r):
    """The job context as the worker sets it up, on the neutral driver's CRM."""
    settings = crm_settings(crm)
    context.set_settings(settings, r)
    return settings


def now() -> datetime:
    return datetime.now(timezone.utc)


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()
