import time

from reglament import violations
from reglament.violations import Violation


def v(key, at, rule="WHATSAPP_SLA", manager=9100001):
    return Violation(rule=rule, key=key, at=at, manager_id=manager, lead_id=1, details="ждал 7 минут")


def test_one_breach_is_one_violation(r):
    now = time.time()
    assert violations.record(r, "acme", v("chat:1:msg:a", now)) is True
    assert violations.record(r, "acme", v("chat:1:msg:a", now + 5)) is False
    assert violations.record(r, "acme", v("chat:1:msg:b", now + 10)) is True
    assert [x.key for x in violations.between(r, "acme", now - 1, now + 60)] == ["chat:1:msg:a", "chat:1:msg:b"]


def test_between_is_half_open_and_per_account(r):
    t = time.time() - 3600
    violations.record(r, "acme", v("a", t))
    violations.record(r, "acme", v("b", t + 100))
    violations.record(r, "other", v("c", t + 50))
    assert [x.key for x in violations.between(r, "acme", t, t + 100)] == ["a"]
    assert [x.key for x in violations.between(r, "other", t - 1, t + 1000)] == ["c"]


def test_old_violations_are_dropped(r):
    now = time.time()
    violations.record(r, "acme", v("old", now - 10 * 86400), retention_days=5)
    violations.record(r, "acme", v("new", now), retention_days=5)
    assert [x.key for x in violations.between(r, "acme", 0, now + 1)] == ["new"]
