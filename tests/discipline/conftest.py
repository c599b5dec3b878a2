"""Fixtures: the engine's sandbox and Redis, with a department and the discipline settings tests need."""

from __future__ import annotations

import pytest

from sandbox.amocrm.model import CustomField
from jobs import context
from tests.engine.conftest import amo, crm_settings, engine_settings  # noqa: F401 — the engine's sandbox fixture

HEAD_TOKEN = "head-token-0123456789abcdef"
DEPARTMENTS = [{"name": "Продажи", "head": "Галина Орлова", "managers": ["Анна Смирнова", "Борис Иванов"],
                "dashboard_token": HEAD_TOKEN}]
INVOICE = {"Статус счёта": (883020, "text"), "Срок оплаты": (883021, "date"),
           "Обещанная дата оплаты": (883022, "date")}


def _rules(discipline: dict) -> dict:
    return {"discipline": {"comment_codes": {"check_after_minutes": 0}, **discipline}}


def discipline_settings(url: str, **discipline):
    return engine_settings(url, rules=_rules(discipline), departments=DEPARTMENTS)


def crm_discipline_settings(crm, **discipline):
    """The same on the neutral driver's CRM."""
    return crm_settings(crm, rules=_rules(discipline), departments=DEPARTMENTS)


@pytest.fixture
def disc(amo, r):
    """The job context on the sandbox, with invoice fields in the account."""
    for name, (fid, kind) in INVOICE.items():
        amo.account.fields["leads"][fid] = CustomField(id=fid, name=name, type=kind, entity_type="leads")
    settings = discipline_settings(amo.server.url)
    context.set_settings(settings, r)
    return settings


@pytest.fixture
def discipline_on(crm, r):
    """The job context on the neutral driver's CRM, with invoice fields in the account."""
    for name, (_, kind) in INVOICE.items():
        crm.add_field(name, kind)
    settings = crm_discipline_settings(crm)
    context.set_settings(settings, r)
    return settings
