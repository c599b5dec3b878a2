"""Decision tables of the pure discipline rules."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from jobs.rules import comment_codes, incubator, no_postpone, overdue, task_name, task_result, unpaid_invoice
from reglament import rule_settings
from reglament.discipline_settings import DisciplineSettings
from reglament.calendar import WorkCalendar
from reglament.crm import AddNote, CreateTask, Lead, LeadSnapshot, SetLeadStatus, SetTaskDue, Task

MSK = ZoneInfo("Europe/Moscow")
S = DisciplineSettings()
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc)  # a Wednesday
CAL = WorkCalendar("Europe/Moscow", {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}, None)
ANNA = 9100001


def task(text="Перезвон: согласовать пробное", due=NOW, done=False, result=None, tid=1):
    return Task(id=tid, lead_id=10, text=text, due=due, responsible_id=ANNA, is_completed=done, result=result)


@pytest.mark.parametrize("before, after, text, by, settings, breach", [
    (NOW, NOW + timedelta(days=1), "Перезвон", ANNA, S, True),
    (NOW, NOW, "Перезвон", ANNA, S, False),                                   # not moved
    (NOW, NOW - timedelta(hours=1), "Перезвон", ANNA, S, False),              # earlier is allowed
    (NOW, NOW - timedelta(hours=1), "Перезвон", ANNA,
     S.model_copy(update={"no_postpone": S.no_postpone.model_copy(update={"only_later": False})}), True),
    (NOW, NOW + timedelta(seconds=30), "Перезвон", ANNA, S, False),           # within tolerance
    (None, NOW + timedelta(days=1), "Перезвон", ANNA, S, False),              # never knew the deadline
    (NOW, NOW + timedelta(days=1), "Продление", ANNA, S, False),              # seed 003: may move
    (NOW, NOW + timedelta(days=1), "Перезвон", 0, S, False),                  # amoCRM's robot
    (NOW, NOW + timedelta(days=1), "Перезвон", ANNA, DisciplineSettings(ignore_users=[ANNA]), False),
])
def test_no_postpone(before, after, text, by, settings, breach):
    out = no_postpone.decide(task(text, after), before, by, settings, NOW, MSK, "L")
    assert bool(out.violations) is breach and len(out.alerts) == int(breach)
    assert out.remember["due"] == after
    if breach:
        assert out.violations[0].key == f"NO_POSTPONE:1:{int(after.timestamp())}"
        assert "перенесён" in out.alerts[0].text and out.actions == ()


def test_no_postpone_revert_puts_the_deadline_back():
    s = DisciplineSettings(no_postpone={"revert": True})
    out = no_postpone.decide(task(due=NOW + timedelta(days=2)), NOW, ANNA, s, NOW, MSK)
    (revert,) = out.actions
    assert isinstance(revert, SetTaskDue) and revert.due == NOW and out.remember["due"] == NOW


@pytest.mark.parametrize("done, result, by, breach", [
    (True, None, ANNA, True), (True, "  ", ANNA, True), (True, "Записал на пробное", ANNA, False),
    (False, None, ANNA, False), (True, None, 0, False)])
def test_task_result(done, result, by, breach):
    out = task_result.decide(task(done=done, result=result), by, S, NOW)
    assert bool(out.violations) is breach and len(out.alerts) == int(breach)


@pytest.mark.parametrize("text, by, breach", [
    ("Связаться", ANNA, True), ("  позвонить! ", ANNA, True), ("ЗАДАЧА", ANNA, True), ("❗ ВАЖНО: Связаться", ANNA, False),
    ("Позвонить: напомнить о пробном в субботу", ANNA, False), ("Перезвон", ANNA, False), ("Связаться", 0, False),
    ("...", ANNA, True)])
def test_task_name(text, by, breach):
    assert bool(task_name.decide(task(text), by, S, NOW).violations) is breach


@pytest.mark.parametrize("status, lost, reason, breach", [
    ("Просил перезвонить", False, "Думает", False), ("Просил перезвонить", False, "не удобно", False),
    ("Просил перезвонить", False, "Другое: уехали на дачу", False), ("Просил перезвонить", False, "пн 18:00", False),
    ("Просил перезвонить", False, "перезвоните потом", True), ("Просил перезвонить", False, None, True),
    ("Просил перезвонить", False, "Думаете", True),                  # a code must end where a word ends
    ("Просил перезвонить", False, "15.03 18:00", False),              # seed 003: a specific date and time
    ("Просил перезвонить", False, "15.03.2026 в 18:00", False), ("Просил перезвонить", False, "Вых.", False),
    ("Просил перезвонить", False, "Будни", False), ("Просил перезвонить", False, "15.03", True),
    ("Отказ", False, "Дубль", False), ("Отказ", False, "Больше 7", False), ("Отказ", False, "Не удобно", True),
    ("Закрыто и не реализовано", True, "дорого", True), ("Недозвон", False, "что угодно", False)])
def test_comment_codes(status, lost, reason, breach):
    out = comment_codes.decide(10, status, lost, reason, ANNA, NOW, S, "L")
    assert bool(out.violations) is breach and len(out.alerts) == int(breach)


@pytest.mark.parametrize("late_minutes, alerts, escalated", [(5, 0, False), (30, 1, False), (60 * 3, 2, True)])
def test_overdue(late_minutes, alerts, escalated):
    out = overdue.decide(task(due=NOW - timedelta(minutes=late_minutes)), S, CAL, NOW, MSK, "Анна")
    assert len(out.alerts) == alerts and len(out.violations) == int(alerts > 0)
    assert any(a.to == "head" for a in out.alerts) is escalated


def test_overdue_counts_working_time_before_escalating():
    # due Tuesday 17:30 Moscow, now Wednesday 09:10: 40 working minutes late → reminder, no escalation.
    due = datetime(2026, 3, 3, 17, 30, tzinfo=MSK)
    out = overdue.decide(task(due=due), S, CAL, datetime(2026, 3, 4, 9, 10, tzinfo=MSK), MSK)
    assert [a.to for a in out.alerts] == ["manager"]


def lead(status="Новая заявка", days=40, closed=None):
    return Lead(id=10, stage="1", status=status, pipeline="1", responsible_id=ANNA,
                created_at=NOW - timedelta(days=days), closed=closed)


@pytest.mark.parametrize("status, days, tasks, meeting, moved", [
    ("Новая заявка", 40, (), None, True), ("Новая заявка", 20, (), None, False),
    ("Недозвон", 31, (Task(id=2, lead_id=10, text="Дозвониться", task_type="Звонок", due=NOW),), None, True),
    ("Новая заявка", 40, (Task(id=2, lead_id=10, text="Встреча", task_type="Встреча", due=NOW),), None, False),
    ("Новая заявка", 40, (), 1772000000, False), ("Записался на пробное", 40, (), None, False),
    ("Инкубатор", 40, (), None, False), ("Отказ", 40, (), None, False)])
def test_incubator(status, days, tasks, meeting, moved):
    out = incubator.decide(LeadSnapshot(lead=lead(status, days), open_tasks=tasks), meeting, ["Отказ"], S, NOW)
    assert bool(out.actions) is moved and len(out.violations) == int(moved)
    if moved:
        assert isinstance(out.actions[0], SetLeadStatus) and out.actions[0].status == "Инкубатор"
        assert isinstance(out.actions[-1], AddNote) and "30 дней" in out.actions[-1].text


def test_incubator_leaves_a_running_cadence_to_redial_and_closes_only_our_task():
    ours = Task(id=2, lead_id=10, text="Дозвониться", task_type="Звонок", due=NOW)
    running = LeadSnapshot(lead=lead("Недозвон", 35), open_tasks=(ours,), own_task_ids=frozenset({2}))
    assert not incubator.decide(running, None, ["Отказ"], S, NOW, cadence_running=True)
    out = incubator.decide(running, None, ["Отказ"], S, NOW, cadence_running=False)
    status, close, note = out.actions
    assert (status.status, close.task_id, close.result) == ("Инкубатор", 2, "Сделка переведена в «Инкубатор»")
    persons = LeadSnapshot(lead=lead("Новая заявка", 35), open_tasks=(ours,))
    assert [type(a).__name__ for a in incubator.decide(persons, None, ["Отказ"], S, NOW).actions] == \
        ["SetLeadStatus", "AddNote"]


TODAY = date(2026, 3, 4)


@pytest.mark.parametrize("status, due, promised, key", [
    ("Выставлен", date(2026, 3, 1), None, "UNPAID_INVOICE:10:due:2026-03-01"),
    ("Выставлен", date(2026, 3, 4), None, None),                          # due today: not late yet
    ("Оплачен", date(2026, 3, 1), None, None), (None, date(2026, 3, 1), None, None),
    ("выставлен", date(2026, 3, 1), date(2026, 3, 10), None),              # promised later, still waiting
    ("Выставлен", date(2026, 2, 20), date(2026, 3, 2), "UNPAID_INVOICE:10:promised:2026-03-02")])
def test_unpaid_invoice(status, due, promised, key):
    out = unpaid_invoice.decide(10, ANNA, status, due, promised, S, CAL, NOW, TODAY)
    assert [v.key for v in out.violations] == ([key] if key else [])
    if key:
        (t,) = out.actions
        assert isinstance(t, CreateTask) and t.action_key == f"{key}:task" and t.responsible_id == ANNA


def test_unpaid_invoice_keeps_one_current_task():
    late = ("Выставлен", date(2026, 3, 1), None)
    ours, persons = task("Продать", tid=1), task("Позвонить насчёт договора", tid=2)
    out = unpaid_invoice.decide(10, ANNA, *late, S, CAL, NOW, TODAY, "", (ours,), frozenset({1}))
    closed, created = out.actions
    assert closed.task_id == 1 and "оплате" in closed.result and created.text == S.unpaid_invoice.task
    # A person's task stays the one task: the manager is alerted instead.
    out = unpaid_invoice.decide(10, ANNA, *late, S, CAL, NOW, TODAY, "L", (persons,), frozenset({1}))
    (alert,) = out.alerts
    assert out.actions == () and alert.user_id == ANNA and "01.03.2026" in alert.text and len(out.violations) == 1
    # The reminder is already the lead's task: nothing more.
    reminder = task(S.unpaid_invoice.task, tid=3)
    assert unpaid_invoice.decide(10, ANNA, *late, S, CAL, NOW, TODAY, "", (reminder,), frozenset()).actions == ()


def test_settings_defaults_placeholders_and_rules_file():
    s = rule_settings.load({}).discipline
    assert "Связаться" in s.task_name.vague_names and "Не звонить" in s.comment_codes.refusal_codes
    assert s.incubator.after_days == 30 and s.incubator.status == "Инкубатор"
    with pytest.raises(ValidationError):
        rule_settings.load({"discipline": {"task_result": {"text": "{nope}"}}})
    with pytest.raises(ValidationError):
        rule_settings.load({"discipline": {"unknown": 1}})
    for name, f in DisciplineSettings.model_fields.items():
        assert f.description, name


@pytest.mark.parametrize("reason, due", [
    ("15.03 18:00", datetime(2026, 3, 15, 18, 0, tzinfo=MSK)),          # that moment, even on a Sunday evening
    ("15.03.2027 в 10:30", datetime(2027, 3, 15, 10, 30, tzinfo=MSK)),
    ("Презент", datetime(2026, 4, 3, 15, 0, tzinfo=MSK)),               # a month later
    ("Скидывает", datetime(2026, 3, 4, 15, 0, tzinfo=MSK)),             # at once (NOW is Wednesday 15:00 MSK)
    ("пн 18:00", datetime(2026, 3, 9, 18, 0, tzinfo=MSK)),
    ("Думает", None), ("Другое: уехали", None)])
def test_a_callback_code_says_when_to_call(reason, due):
    assert comment_codes.callback_time(reason, NOW, CAL, S) == due


def test_the_code_s_time_goes_into_the_field_and_onto_our_own_callback_task():
    from reglament.crm import CALLBACK_AT, SetLeadField, SetTaskDue

    rules = rule_settings.load({})
    at = datetime(2026, 3, 15, 18, 0, tzinfo=MSK)
    ours, persons = task("Перезвон", tid=1), task("❗ ВАЖНО: Перезвон", tid=2)
    snap = LeadSnapshot(lead=lead("Просил перезвонить"), open_tasks=(ours, persons), own_task_ids=frozenset({1}))
    field, move = comment_codes.schedule_callback(snap, at, rules, "K")
    assert isinstance(field, SetLeadField) and (field.field, field.value) == (CALLBACK_AT, at)
    assert isinstance(move, SetTaskDue) and (move.task_id, move.due) == (1, at)
