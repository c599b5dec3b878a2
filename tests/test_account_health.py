"""Each account's share of the work is visible: in /metrics per account, and on the dashboard's queue health."""

from __future__ import annotations

import re

from connectors import ratelimit
from connectors.amocrm.client import budget_key
from jobs.dispatcher import enqueue
from reglament.events import Event
from tests.discipline.conftest import HEAD_TOKEN, discipline_settings
from tests.engine.conftest import ACCOUNT, amo  # noqa: F401 — the sandbox fixture


def _events(account: str, n: int) -> list[Event]:
    return [Event(account=account, source="amocrm", kind="lead.status_changed", entity_id=i, fields={"id": i},
                  key=f"k{i}") for i in range(n)]


def _gauge(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^reglament_{name}{{{re.escape(wanted)}}} (\S+)$", text, re.M)
    assert found, f"no {name}{{{wanted}}} in /metrics"
    return float(found.group(1))


def test_metrics_show_each_accounts_jobs_and_why_its_crm_is_paused(client, r):
    for e in _events("acme", 3):
        enqueue(r, [e])                     # a job each: 2 in flight, 1 held back
    ratelimit.pause(r, budget_key("acme"), "429", at_least=30)
    text = client.get("/metrics").get_data(as_text=True)
    assert _gauge(text, "account_jobs", account="acme", state="in_flight") == 2
    assert _gauge(text, "account_jobs", account="acme", state="waiting") == 1
    assert 29 < _gauge(text, "account_paused_seconds", account="acme", reason="429") <= 30
    assert _gauge(text, "account_stopped", account="acme") == 0


def test_the_dashboard_says_when_the_accounts_crm_is_stopped_and_why(amo, r):  # noqa: F811
    from app import create_app

    web = create_app(discipline_settings(amo.server.url), r).test_client()
    assert web.post("/dashboard/login", data={"token": HEAD_TOKEN}).status_code == 302
    page = web.get("/dashboard/").get_data(as_text=True)
    assert 'id="account-crm" data-state="ok"' in page and "работает" in page

    for e in _events(ACCOUNT, 3):
        enqueue(r, [e])
    ratelimit.pause(r, budget_key(ACCOUNT), "auth", at_least=300)
    page = web.get("/dashboard/").get_data(as_text=True)
    assert 'id="account-crm" data-state="stopped"' in page
    assert "остановлено: токен не принят: нужна повторная авторизация" in page
    row = re.search(r'<td class="num">(\d+)</td><td class="num">(\d+)</td>', page)
    assert row and row.groups() == ("2", "1")   # in flight, waiting


def test_the_dashboard_names_the_accounts_own_crm(crm, r):
    from app import create_app
    from connectors import registry
    from jobs import context
    from reglament.config import CRM_NAMES
    from tests.discipline.conftest import crm_discipline_settings

    settings = crm_discipline_settings(crm)
    context.set_settings(settings, r)
    web = create_app(settings, r).test_client()
    assert web.post("/dashboard/login", data={"token": HEAD_TOKEN}).status_code == 302
    page = web.get("/dashboard/").get_data(as_text=True)
    assert f"События аккаунта в {CRM_NAMES[crm.name]}</th>" in page
    assert crm.name == "amocrm" or "amoCRM" not in page
    ratelimit.pause(r, registry.budget_key(context.account(ACCOUNT)), "network", at_least=60)
    page = web.get("/dashboard/").get_data(as_text=True)
    assert re.search(rf"пауза (59|60) с: {CRM_NAMES[crm.name]} не отвечает", page)
