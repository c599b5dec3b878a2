"""NEXT_TASK + STATUS_TASKS + TERMINAL as tables of cases (Moscow, RU holidays, 09:00-18:00)."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.rules import decide_all, next_task
from reglament.rule_settings import RuleSettings
from reglament.crm import (LEAD_ADDED, LEAD_STATUS_CHANGED, REDIAL_ATTEMPT, REDIAL_LAST_AT, SWEEP, TASK_DELETED,
                           TASK_UPDATED)
from tests.rules.rule_factory import (CAL, MANAGER, SETTINGS, AddNote, CreateTask, call_event, event, lead, m, of, only,
                          snap, task)

FRI_1730 = m(2026, 3, 13, 17, 30)
FRI_15 = m(2026, 3, 13, 15, 0)


def decide(ev, snapshot, settings=SETTINGS, now=None):
    return next_task.decide(ev, snapshot, settings, CAL, now or ev.at)


# status, lead fields, trigger time, expected due, expected task, important
STATUS_TABLE = [
    pytest.param("Недозвон", {}, FRI_1730, m(2026, 3, 16, 9, 30), "Дозвониться", False,
                 id="nedozvon-first-step-1h-over-weekend"),
    pytest.param("Недозвон", {REDIAL_ATTEMPT: "Н2", REDIAL_LAST_AT: m(2026, 3, 16, 10)}, m(2026, 3, 16, 10, 5),
                 m(2026, 3, 16, 13), "Дозвониться", False, id="nedozvon-H2-3h-after-last-attempt"),
    pytest.param("Недозвон", {REDIAL_ATTEMPT: "Н3", REDIAL_LAST_AT: FRI_15}, m(2026, 3, 13, 15, 5),
                 m(2026, 3, 16, 15), "Дозвониться", False, id="nedozvon-H3-1d-rolls-to-monday"),
    pytest.param("Просил перезвонить", {"callback_at": m(2026, 3, 17, 15, 0)}, FRI_15, m(2026, 3, 17, 15, 0),
                 "Перезвон", True, id="callback-at-named-time"),
    pytest.param("Просил перезвонить", {"callback_at": m(2026, 3, 14, 11, 0)}, FRI_15, m(2026, 3, 14, 11, 0),
                 "Перезвон", True, id="callback-on-saturday-kept-as-client-asked"),
    pytest.param("Просил перезвонить", {}, m(2026, 3, 13, 17, 0), m(2026, 3, 16, 10, 0), "Перезвон", True,
                 id="callback-empty-fallback-2-working-hours"),
    pytest.param("Просил перезвонить", {"callback_at": m(2026, 3, 12, 11, 0)}, FRI_15, m(2026, 3, 13, 17, 0),
                 "Перезвон", True, id="callback-in-past-fallback"),
    pytest.param("Записался на пробное", {"trial_at": m(2026, 3, 18, 18, 30)}, FRI_15, m(2026, 3, 17, 18, 0),
                 "Напомнить", False, id="trial-reminder-day-before-back-into-hours"),
    pytest.param("Записался на пробное", {"trial_at": m(2026, 3, 17, 12, 0)}, FRI_15, m(2026, 3, 16, 12, 0),
                 "Напомнить", False, id="trial-reminder-24h-before"),
    pytest.param("Записался на пробное", {"trial_at": m(2026, 3, 16, 10, 0)}, FRI_15, m(2026, 3, 13, 18, 0),
                 "Напомнить", False, id="trial-monday-reminder-friday-closing"),
    pytest.param("Записался на пробное", {"trial_at": m(2026, 3, 17, 10, 0)}, m(2026, 3, 16, 15, 0),
                 m(2026, 3, 16, 15, 0), "Напомнить", False, id="trial-tomorrow-remind-now"),
    pytest.param("Не пришел на пробное", {}, FRI_15, m(2026, 3, 16, 15, 0), "Записать", False,
                 id="no-show-next-working-day"),
    pytest.param("Не пришел на пробное", {}, m(2026, 3, 13, 20, 0), m(2026, 3, 17, 9, 0), "Записать", False,
                 id="no-show-after-hours-rolls-to-opening"),
    pytest.param("Пришел на пробное", {}, m(2026, 3, 5, 15, 0), m(2026, 3, 6, 15, 0), "Продать", False,
                 id="came-next-day"),
    pytest.param("Пришел на пробное", {}, m(2026, 3, 6, 15, 0), m(2026, 3, 10, 15, 0), "Продать", False,
                 id="came-next-day-skips-holiday-monday"),
    pytest.param("Принимает решение", {}, FRI_15, m(2026, 3, 17, 15, 0), "Продать", False,
                 id="deciding-2-working-days"),
    pytest.param("Клиент", {"subscription_end": date(2026, 3, 31)}, FRI_15, m(2026, 3, 24, 9, 0), "Продление",
                 False, id="client-renewal-7-days-before-end-date"),
    pytest.param("Клиент", {"subscription_end": m(2026, 3, 31, 12, 0)}, FRI_15, m(2026, 3, 24, 12, 0),
                 "Продление", False, id="client-renewal-7-days-before-end-moment"),
    pytest.param("Клиент", {}, FRI_15, m(2026, 3, 13, 17, 0), "Продление", False, id="client-no-end-fallback"),
    pytest.param("принимает  решение", {}, FRI_15, m(2026, 3, 17, 15, 0), "Продать", False,
                 id="status-name-matched-loosely"),
]


@pytest.mark.parametrize("status, fields, at, due, text, important", STATUS_TABLE)
def test_status_task_on_sweep(status, fields, at, due, text, important):
    actions = decide(event(SWEEP, at), snap(lead(status, **fields), last_task_id=800))
    created = only(actions, CreateTask)
    assert (created.text, created.due, created.important) == (text, due, important)
    assert created.task_type == "Звонок"
    assert created.responsible_id == MANAGER
    assert created.due.tzinfo is not None
    note = only(actions, AddNote)
    assert note.text.startswith("Reglament (NEXT_TASK): у сделки не было открытой задачи")
    assert f"«{text}» на {due:%d.%m %H:%M}" in note.text


@pytest.mark.parametrize("status, fields, note_part", [
    ("Просил перезвонить", {}, "время перезвона"),
    ("Клиент", {}, "окончание абонемента"),
    ("Записался на пробное", {"trial_at": m(2026, 3, 1, 10)}, "дата пробного занятия"),
])
def test_fallback_note_names_the_missing_field(status, fields, note_part):
    note = only(decide(event(SWEEP, FRI_15), snap(lead(status, **fields))), AddNote)
    assert note_part in note.text


def test_note_example_from_the_brief():
    actions = decide(event(SWEEP, m(2026, 11, 24, 9, 0)), snap(lead("Недозвон")))
    assert only(actions, AddNote).text == ("Reglament (NEXT_TASK): у сделки не было открытой задачи — "
                                           "создана задача «Дозвониться» на 24.11 10:00.")


@pytest.mark.parametrize("the_lead", [
    pytest.param(lead("Отказ"), id="Отказ"),
    pytest.param(lead("Расторгнут договор"), id="Расторгнут договор"),
    pytest.param(lead("Завершил"), id="Завершил"),
    pytest.param(lead("отказ"), id="terminal-any-case"),
    pytest.param(lead("Успешно реализовано", closed="won"), id="crm-won"),
    pytest.param(lead("Закрыто и не реализовано", closed="lost"), id="crm-lost"),
])
@pytest.mark.parametrize("open_tasks", [(), (task(),)], ids=["no-task", "open-task-left-alone"])
def test_terminal_leads_get_nothing(the_lead, open_tasks):
    for kind in (SWEEP, LEAD_STATUS_CHANGED, LEAD_ADDED):
        assert decide(event(kind, FRI_15), snap(the_lead, open_tasks)) == []
        assert decide_all(event(kind, FRI_15), snap(the_lead, open_tasks), SETTINGS, CAL, FRI_15) == []


@pytest.mark.parametrize("status", ["Недозвон", "Просил перезвонить", "Клиент", "Принимает решение"])
@pytest.mark.parametrize("kind", [SWEEP, LEAD_STATUS_CHANGED, LEAD_ADDED])
def test_open_task_means_never_a_second(status, kind):
    snapshot = snap(lead(status, callback_at=m(2026, 3, 17, 15)), [task(text="Любая задача")])
    assert decide(event(kind, FRI_15), snapshot) == []
    # REDIAL may still count an attempt (moved into «Недозвон»), but makes no task either.
    assert of(decide_all(event(kind, FRI_15), snapshot, SETTINGS, CAL, FRI_15), CreateTask) == []


def test_crm_won_lost_can_be_made_non_terminal():
    settings = RuleSettings(crm_closed_is_terminal=False, default_task={"task": "Проверить оплату",
                                                                        "due": {"kind": "days", "days": 1}})
    actions = decide(event(SWEEP, FRI_15), snap(lead("Успешно", closed="won")), settings)
    assert only(actions, CreateTask).text == "Проверить оплату"


@pytest.mark.parametrize("settings, expected", [
    pytest.param(RuleSettings(default_task=None), None, id="no-default-nothing"),
    pytest.param(RuleSettings(default_task={"task": "Записать на пробное", "due": {"kind": "hours", "hours": 4}}),
                 m(2026, 3, 16, 10, 0), id="default-task-4-working-hours"),
    pytest.param(SETTINGS, m(2026, 3, 16, 15, 0), id="the-default-default-next-working-day"),
])
def test_status_without_template(settings, expected):
    actions = decide(event(LEAD_ADDED, FRI_15), snap(lead("Пробный урок перенесён")), settings)
    if expected is None:
        assert actions == []
    else:
        assert only(actions, CreateTask).due == expected


def test_a_new_lead_is_due_for_first_contact_by_its_source():
    """«Новая заявка» gets «Связаться: первый контакт» due at the FIRST_CONTACT_SLA deadline."""
    site = decide(event(LEAD_ADDED, FRI_15), snap(lead("Новая заявка", created=FRI_15)), SETTINGS)
    assert only(site, CreateTask).text == "Связаться: первый контакт"
    assert only(site, CreateTask).due == m(2026, 3, 16, 10, 0)  # 4 working hours: 3 on Friday, 1 on Monday
    ads = decide(event(LEAD_ADDED, FRI_15), snap(lead("Новая заявка", created=FRI_15, source="Яндекс.Директ")),
                 SETTINGS)
    assert only(ads, CreateTask).due == m(2026, 3, 13, 15, 15)  # paid ads: 15 minutes


def test_an_incubated_lead_gets_a_present_in_a_month():
    actions = decide(event(LEAD_STATUS_CHANGED, FRI_15), snap(lead("Инкубатор")), SETTINGS)
    assert only(actions, CreateTask).text == "Презент" and only(actions, CreateTask).due == m(2026, 4, 13, 15, 0)


def test_notes_can_be_switched_off():
    actions = decide(event(SWEEP, FRI_15), snap(lead("Клиент")), RuleSettings(notes=False))
    assert of(actions, AddNote) == [] and len(of(actions, CreateTask)) == 1


def test_due_never_in_the_past_when_processed_late():
    # A status change at Friday 15:00 handled on Tuesday 10:00: «Продать» +2 days would be
    # Tuesday 15:00, still ahead; +1 day («Записать») would be Monday — moved to now.
    late = m(2026, 3, 17, 10, 0)
    actions = decide(event(LEAD_STATUS_CHANGED, FRI_15), snap(lead("Не пришел на пробное")), now=late)
    assert only(actions, CreateTask).due == late


# --- keys -----------------------------------------------------------------------------

def test_webhook_and_sweep_in_the_same_gap_share_keys():
    snapshot = snap(lead("Принимает решение"), last_task_id=800)
    by_webhook = decide(event(LEAD_STATUS_CHANGED, FRI_15), snapshot)
    by_sweep = decide(event(SWEEP, m(2026, 3, 13, 15, 10)), snapshot)
    assert [a.action_key for a in by_webhook] == [a.action_key for a in by_sweep]
    assert [a.action_key for a in by_webhook] == ["NEXT_TASK:501:s16:t800:task", "NEXT_TASK:501:s16:t800:note"]


def test_new_gap_new_keys():
    first = decide(event(SWEEP, FRI_15), snap(lead("Принимает решение"), last_task_id=800))
    # The manager completed our task 801: a new gap.
    after = decide(event(TASK_UPDATED, m(2026, 3, 17, 15), task=task(801, "Продать", completed=True, result="Думает")),
                   snap(lead("Принимает решение"), last_task_id=801))
    assert only(first, CreateTask).action_key != only(after, CreateTask).action_key
    # The manager deleted task 802 (the newest): last_task_id falls back, the event still tells.
    deleted = decide(event(TASK_DELETED, m(2026, 3, 18, 10), task=task(802, "Продать")),
                     snap(lead("Принимает решение"), last_task_id=801))
    assert only(deleted, CreateTask).action_key == "NEXT_TASK:501:s16:t802:task"


def test_status_change_gives_new_key():
    a = decide(event(SWEEP, FRI_15), snap(lead("Принимает решение"), last_task_id=800))
    b = decide(event(SWEEP, FRI_15), snap(lead("Пришел на пробное"), last_task_id=800))
    assert only(a, CreateTask).action_key != only(b, CreateTask).action_key


# --- hand-over to REDIAL ----------------------------------------------------------------

def test_moved_to_nedozvon_friday_1730_redial_monday_0930():
    """The brief's calendar edge: whichever rule makes it, exactly one task, Monday 09:30."""
    actions = decide_all(event(LEAD_STATUS_CHANGED, FRI_1730), snap(lead("Недозвон")), SETTINGS, CAL, FRI_1730)
    created = only(actions, CreateTask)
    assert (created.text, created.due) == ("Дозвониться", m(2026, 3, 16, 9, 30))


def test_next_task_stays_out_of_redial_failures():
    failed = call_event(m(2026, 3, 16, 10))
    assert decide(failed, snap(lead("Недозвон"))) == []
    closed = event(TASK_UPDATED, m(2026, 3, 16, 10), task=task(completed=True, result="не дозвонился"))
    assert decide(closed, snap(lead("Недозвон", **{REDIAL_ATTEMPT: "Н1", REDIAL_LAST_AT: m(2026, 3, 16, 9)}))) == []
    assert decide(event(LEAD_STATUS_CHANGED, FRI_15), snap(lead("Недозвон"))) == []


def test_task_closed_as_reached_is_next_task_business():
    closed = event(TASK_UPDATED, m(2026, 3, 16, 10), task=task(completed=True, result="Поговорили, думает"))
    actions = decide_all(closed, snap(lead("Принимает решение")), SETTINGS, CAL, m(2026, 3, 16, 10))
    assert only(actions, CreateTask).text == "Продать"
    assert only(actions, CreateTask).rule == "NEXT_TASK"
