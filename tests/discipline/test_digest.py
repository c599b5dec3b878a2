"""DIGEST for a seeded day: counts per manager and rule, change against the previous working day,
worst cases with links; sent to the head (outbox when no channel) and printed by the CLI."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from connectors.outbox import Outbox
from jobs import digest
from reglament import keys, violations
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
    d, none = digest.build(ACCOUNT, *digest.one_day(ACCOUNT, DAY))
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
    # Вера Петрова is in no department: a section of its own.
    assert none.department == "Без отдела" and [(row.manager, row.total) for row in none.rows] == [("Вера Петрова", 1)]

    result = digest.send(ACCOUNT, *digest.one_day(ACCOUNT, DAY))
    assert result["sent"] == [{"head": "Галина Орлова", "departments": ["Продажи", "Без отдела"], "total": 6,
                               "channels": ["outbox"]}]
    digest.send(ACCOUNT, *digest.one_day(ACCOUNT, DAY))
    sent = [e for e in Outbox(r, ACCOUNT).entries(50)
            if e.subject == f"Нарушения регламента за {DAY:%d.%m.%Y}"]
    assert len(sent) == 1 and sent[0].recipient == "Галина Орлова"
    assert "Анна Смирнова: 4 (+4)" in sent[0].text and "Вера Петрова: 1 (+0)" not in sent[0].text
    assert "Без отдела (менеджеры не из отделов)" in sent[0].text and "Вера Петрова: 1 (+1)" in sent[0].text


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
    # Without --date: what the next digest covers, from where the last one ended (DAY) to today.
    r.set(keys.key(ACCOUNT, "discipline", "digest_last"), json.dumps([at(DAY, 0), at(DAY + timedelta(days=1), 0)]))
    out = CliRunner().invoke(main, ["digest", "--config", str(cfg), "--account", ACCOUNT])
    assert out.exit_code == 0, out.output
    yesterday = date.today() - timedelta(days=1)
    assert f"Нарушения регламента за {DAY + timedelta(days=1):%d.%m}–{yesterday:%d.%m.%Y} — отдел «Продажи»" \
        in out.output
    assert "Анна Смирнова: 1 (-3) — Просрочка: 1" in out.output   # the OVERDUE of the day after DAY


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
    d, _ = digest.build(ACCOUNT, *digest.one_day(ACCOUNT, DAY))
    rows = {row.manager: row for row in d.rows}
    assert rows["Анна Смирнова"].first_contact["count"] == 3
    assert rows["Анна Смирнова"].first_contact["median"] == 30 * 60
    text = digest.render_text(d)
    assert "первый контакт: медиана 30 мин" in text and "(заявок: 3)" in text
    assert "первый контакт: медиана 1 ч 05 мин" in text  # Борис: 5 and 125 minutes
    assert "<th>Первый контакт, медиана</th>" in digest.render_html(d)


# --------------------------------------------------------------------------- on schedule: since the last digest

FRIDAY = date.today() - timedelta(days=(date.today().weekday() - 4) % 7 + 14)
MONDAY_OFF = FRIDAY + timedelta(days=3)       # a company day off
WEEKDAYS = {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}
TWO_HEADS = [{"name": "Продажи", "head": "Галина Орлова", "managers": ["Анна Смирнова", "Борис Иванов"]},
             {"name": "Продление", "head": "Борис Иванов", "managers": []}]


def local(d: date, hour: int, minute: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=MSK)


def test_each_digest_covers_everything_since_the_previous_one(amo, r):
    from jobs import context
    from jobs.handlers import discipline
    from tests.engine.conftest import engine_settings

    context.set_settings(engine_settings(amo.server.url, departments=TWO_HEADS, working_hours=WEEKDAYS,
                                         days_off=[MONDAY_OFF.isoformat()]), r)
    thursday, saturday, sunday, tuesday = (FRIDAY + timedelta(days=n) for n in (-1, 1, 2, 4))
    for n, (rule, who, d, hour) in enumerate([
            ("OVERDUE", ANNA, thursday, 12), ("OVERDUE", ANNA, FRIDAY, 11), ("TASK_RESULT", BORIS, saturday, 10),
            ("TASK_NAME", 9100003, sunday, 15), ("NO_POSTPONE", ANNA, MONDAY_OFF, 12),
            ("OVERDUE", ANNA, tuesday, 8)]):
        violations.record(r, ACCOUNT, Violation(rule, f"{rule}:{n}", local(d, hour).timestamp(), who, 500 + n))

    def tick(d: date, hour: int, minute: int = 0) -> dict:
        return discipline.digest_tick(ACCOUNT, now=local(d, hour, minute))

    r.set(digest.watching_key(ACCOUNT), local(thursday - timedelta(days=7), 12).timestamp())  # watched all along

    assert tick(FRIDAY, 9, 0) == {"skipped": "not yet"}          # 09:30 by default
    first = tick(FRIDAY, 9, 31)                                   # the first digest: the previous working day
    assert first["period"][0].startswith(thursday.isoformat()) and first["period"][1].startswith(FRIDAY.isoformat())
    assert {(s["head"], tuple(s["departments"]), s["total"]) for s in first["sent"]} == {
        ("Галина Орлова", ("Продажи",), 1), ("Борис Иванов", ("Продление",), 0)}
    assert tick(FRIDAY, 12) == {"skipped": "nothing since the last digest"}
    assert tick(saturday, 10) == {"skipped": "not yet"} and tick(MONDAY_OFF, 10) == {"skipped": "not yet"}

    second = tick(tuesday, 10)                                    # Friday, the weekend and the day off
    assert second["period"][0].startswith(FRIDAY.isoformat()) and second["period"][1].startswith(tuesday.isoformat())
    # Вера Петрова, in no department, reaches every head in a section of her own.
    assert {(s["head"], tuple(s["departments"]), s["total"]) for s in second["sent"]} == {
        ("Галина Орлова", ("Продажи", "Без отдела"), 4), ("Борис Иванов", ("Продление", "Без отдела"), 1)}
    label = f"{FRIDAY:%d.%m}–{MONDAY_OFF:%d.%m.%Y}"
    mail = [e for e in Outbox(r, ACCOUNT).entries(50) if e.subject.startswith(f"Нарушения регламента за {label}")]
    assert sorted(e.recipient for e in mail) == ["Борис Иванов", "Галина Орлова"]
    galina = next(e.text for e in mail if e.recipient == "Галина Орлова")
    assert f"Всего: 3 (+2 к {thursday:%d.%m.%Y})" in galina      # compared with the previous digest's period
    assert "Анна Смирнова: 2 (+1)" in galina and "Борис Иванов: 1 (+1)" in galina and "Вера Петрова: 1 (+1)" in galina

    third = tick(tuesday + timedelta(days=1), 10)                 # Tuesday alone again
    assert third["period"][0].startswith(tuesday.isoformat())
    assert next(s["total"] for s in third["sent"] if s["head"] == "Галина Орлова") == 1


def test_a_digest_that_failed_to_go_out_goes_on_the_next_tick(amo, r, monkeypatch):
    from jobs import context
    from jobs.handlers import discipline
    from tests.engine.conftest import engine_settings

    context.set_settings(engine_settings(amo.server.url, departments=TWO_HEADS, working_hours=WEEKDAYS), r)
    real = digest.send

    def down(*args):
        raise ConnectionError("SMTP down")

    monkeypatch.setattr(digest, "send", down)
    r.set(digest.watching_key(ACCOUNT), local(FRIDAY - timedelta(days=7), 12).timestamp())
    try:
        discipline.digest_tick(ACCOUNT, now=local(FRIDAY, 10))
    except ConnectionError:
        pass
    assert digest.last_period(ACCOUNT) is None
    monkeypatch.setattr(digest, "send", real)
    assert len(discipline.digest_tick(ACCOUNT, now=local(FRIDAY, 10, 5))["sent"]) == 2
    assert digest.last_period(ACCOUNT).end == local(FRIDAY, 0)


def test_the_first_digest_covers_no_time_before_reglament_watched(amo, r):
    from jobs import context
    from jobs.handlers import discipline
    from tests.engine.conftest import engine_settings

    context.set_settings(engine_settings(amo.server.url, departments=TWO_HEADS, working_hours=WEEKDAYS), r)
    thursday = FRIDAY - timedelta(days=1)
    violations.record(r, ACCOUNT, Violation("OVERDUE", "OVERDUE:x", local(thursday, 16).timestamp(), ANNA, 501))

    def tick(d: date, hour: int, minute: int = 0) -> dict:
        return discipline.digest_tick(ACCOUNT, now=local(d, hour, minute))

    # Installed on Thursday at 15:00: nothing is sent for Thursday on Thursday, nor said of Wednesday.
    assert tick(thursday, 15)["skipped"].startswith("watching began today")   # past 09:30, nothing to send
    assert tick(thursday, 15, 30)["skipped"].startswith("watching began today")
    first = tick(FRIDAY, 9, 31)
    assert first["period"][0].startswith(thursday.isoformat())
    galina = next(e.text for e in Outbox(r, ACCOUNT).entries(20) if e.recipient == "Галина Орлова")
    assert "Всего: 1\n" in galina and " к " not in galina and "Анна Смирнова: 1 — " in galina
