"""DIGEST for a seeded day: counts per manager and rule, change against the previous working day,
worst cases with links; sent to the head (outbox when no channel) and printed by the CLI."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from connectors.outbox import Outbox
from jobs import digest
from reglament import violations
from reglament.violations import Violation
from tests.engine.conftest import ACCOUNT, ANNA, BORIS

MSK = ZoneInfo("Europe/Moscow")
DAY = date.today() - timedelta(days=7)   # every day is a working day here: the previous one is DAY - 1
PREV = DAY - timedelta(days=1)


def at(d: date, hour: int) -> float:
    return datetime(d.year, d.month, d.day, hour, tzinfo=MSK).timestamp()


def seed(r):
    rows = [("OVERDUE", ANNA, 501, 10), ("OVERDUE", ANNA, 501, 11), ("TASK_RESULT", ANNA, 502, 12),
            ("NO_POSTPONE", BORIS, 503, 9), ("TASK_NAME", 9100003, 504, 9),      # Вера: in no department
            ("OVERDUE", ANNA, 505, 23)]                                           # 23:00 Moscow, still DAY
    for i, (rule, who, lead, hour) in enumerate(rows):
        violations.record(r, ACCOUNT, Violation(rule, f"{rule}:{i}", at(DAY, hour), who, lead,
                                                f"https://demo.amocrm.ru/leads/detail/{lead}", f"случай {i}"))
    violations.record(r, ACCOUNT, Violation("OVERDUE", "prev:1", at(PREV, 12), BORIS, 509))
    violations.record(r, ACCOUNT, Violation("OVERDUE", "prev:2", at(PREV, 13), BORIS, 509))
    violations.record(r, ACCOUNT, Violation("OVERDUE", "other-day", at(DAY + timedelta(days=1), 1), ANNA, 510))


def test_digest_counts_change_and_worst_cases(amo, disc, r):
    seed(r)
    (d,) = digest.build(ACCOUNT, DAY)
    rows = {row.manager: row for row in d.rows}
    assert rows["Анна Смирнова"].counts == {"OVERDUE": 3, "TASK_RESULT": 1} and rows["Анна Смирнова"].change == 4
    assert rows["Борис Иванов"].counts == {"NO_POSTPONE": 1} and rows["Борис Иванов"].change == -1
    assert d.total == 5 and d.previous == 2
    assert d.worst[0][0] == 501 and d.worst[0][1].endswith("/leads/detail/501")
    text = digest.render_text(d)
    assert "Анна Смирнова: 4 (+4) — Просрочка: 3, Без результата: 1" in text
    assert "Борис Иванов: 1 (-1)" in text and "Вера" not in text
    html = digest.render_html(d)
    assert '<a href="https://demo.amocrm.ru/leads/detail/501">' in html and "<td><b>4</b></td>" in html

    result = digest.send(ACCOUNT, DAY)
    assert result["sent"] == [{"department": "Продажи", "head": "Галина Орлова", "total": 5, "channels": ["outbox"]}]
    digest.send(ACCOUNT, DAY)
    sent = [e for e in Outbox(r, ACCOUNT).entries(50) if e.subject == f"Нарушения регламента за {DAY:%d.%m.%Y}"]
    assert len(sent) == 1 and sent[0].recipient == "Галина Орлова"


def test_cli_prints_the_digest(amo, disc, r, redis_url, tmp_path, monkeypatch):
    import yaml

    from shell.cli import main
    from tests.discipline.conftest import DEPARTMENTS
    from tests.engine.conftest import ALL_DAY, TOKEN

    seed(r)
    cfg = tmp_path / "reglament.yaml"
    cfg.write_text(yaml.safe_dump({"redis_url": redis_url, "accounts": [{
        "id": ACCOUNT, "amocrm": {"base_url": amo.server.url, "long_lived_token": TOKEN},
        "webhook_secret": "engine-webhook-secret-0123", "working_hours": ALL_DAY, "holidays_country": None,
        "departments": DEPARTMENTS}]}, allow_unicode=True))
    out = CliRunner().invoke(main, ["digest", "--config", str(cfg), "--account", ACCOUNT, "--date", DAY.isoformat()])
    assert out.exit_code == 0, out.output
    assert "Анна Смирнова: 4 (+4)" in out.output
    assert "Без отдела" in out.output and "9100003" not in out.output


def seed_first_contacts(r, day: date, first_lead: int = 601) -> None:
    """First contacts as FIRST_CONTACT_SLA records them (jobs/handlers/distribution.record_contact)."""
    import json

    from jobs.handlers.distribution import _k

    for n, (who, minutes, hour) in enumerate([(ANNA, 10, 10), (ANNA, 30, 11), (ANNA, 50, 12),
                                              (BORIS, 125, 10), (BORIS, 5, 8)]):
        lead = first_lead + n
        r.zadd(_k(ACCOUNT, "ttfc"), {str(lead): at(day, hour)})
        r.hset(_k(ACCOUNT, "ttfc", "data"), str(lead),
               json.dumps({"manager": who, "seconds": minutes * 60, "working_seconds": minutes * 60}))


def test_digest_shows_time_to_first_contact_per_manager(amo, disc, r):
    seed(r)
    seed_first_contacts(r, DAY)
    seed_first_contacts(r, PREV - timedelta(days=3), first_lead=701)  # another day: not counted
    (d,) = digest.build(ACCOUNT, DAY)
    rows = {row.manager: row for row in d.rows}
    assert rows["Анна Смирнова"].first_contact["count"] == 3
    assert rows["Анна Смирнова"].first_contact["median"] == 30 * 60
    text = digest.render_text(d)
    assert "первый контакт: медиана 30 мин" in text and "(заявок: 3)" in text
    assert "первый контакт: медиана 1 ч 05 мин" in text  # Борис: 5 and 125 minutes
    assert "<th>Первый контакт, медиана</th>" in digest.render_html(d)
