"""Pure decision tables of MISSED_CALL, FAILED_CALL_MESSAGE and WHATSAPP_SLA, with calendar edges."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from jobs.rules import failed_call_message as fcm
from jobs.rules import missed_call as mc
from jobs.rules import whatsapp_sla as sla
from reglament.calls_settings import CallsSettings, FailedCallMessage, MissedCall, WhatsappSla
from reglament.rule_settings import RuleSettings, defaults_yaml
from reglament.calendar import WorkCalendar
from reglament.crm import CompleteTask, CreateLead, CreateTask, Task

MSK = ZoneInfo("Europe/Moscow")
CAL = WorkCalendar("Europe/Moscow", {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")})
# 2026-03-02 is a Monday.
MON_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=MSK)
MON_NIGHT = datetime(2026, 3, 2, 23, 40, tzinfo=MSK)
FRI_LATE = datetime(2026, 3, 6, 17, 58, tzinfo=MSK)
SAT = datetime(2026, 3, 7, 14, 0, tzinfo=MSK)


def facts(**kw):
    base = dict(call_id="call-1", phone="79011112233", at=MON_NOON, lead_id=501, responsible_id=77)
    return mc.MissedFacts(**{**base, **kw})


def task(text: str, id: int = 1, done: bool = False) -> Task:
    return Task(id=id, lead_id=501, text=text, due=MON_NOON, is_completed=done)


# --- MISSED_CALL ---------------------------------------------------------------------------------

@pytest.mark.parametrize("now, due", [
    (MON_NOON, MON_NOON),                                        # working: due now
    (MON_NIGHT, datetime(2026, 3, 3, 9, 0, tzinfo=MSK)),         # night: next morning's opening
    (FRI_LATE, FRI_LATE),                                        # two minutes before closing: still now
    (SAT, datetime(2026, 3, 9, 9, 0, tzinfo=MSK)),               # weekend: Monday's opening
])
def test_missed_call_task_message_and_alert(now, due):
    plan = mc.decide(facts(at=now), MissedCall(), CAL, now)
    (t,) = plan.actions
    assert isinstance(t, CreateTask)
    assert (t.text, t.task_type, t.responsible_id, t.lead_id) == ("Перезвонить", "Звонок", 77, 501)
    assert t.due == due
    assert plan.message.send_at == due and plan.message.phone == "79011112233"
    assert plan.alert_key and plan.alert_key.startswith("MISSED_CALL:501:")
    assert plan.alert_at == due                                  # the manager isn't woken at night either


def test_same_call_same_keys_other_call_other_keys():
    a, b = mc.decide(facts(), MissedCall(), CAL, MON_NOON), mc.decide(facts(), MissedCall(), CAL, MON_NOON)
    c = mc.decide(facts(call_id="call-2"), MissedCall(), CAL, MON_NOON)
    assert a == b
    assert a.actions[0].action_key != c.actions[0].action_key
    assert a.message.action_key != c.message.action_key and a.alert_key != c.alert_key


def test_open_callback_task_is_not_doubled():
    plan = mc.decide(facts(open_tasks=(task("Перезвонить"),)), MissedCall(), CAL, MON_NOON)
    assert plan.actions == () and plan.message is not None and plan.alert_key


def test_the_callback_replaces_our_own_task_and_leaves_a_managers_task_alone():
    ours = task("Продать")
    plan = mc.decide(facts(open_tasks=(ours,), own_task_ids=frozenset({ours.id})), MissedCall(), CAL, MON_NOON)
    closed, created = plan.actions
    assert isinstance(closed, CompleteTask) and closed.task_id == ours.id and "Перезвонить" in closed.result
    assert isinstance(created, CreateTask) and created.text == "Перезвонить"
    # A task a person made stays the one current task: no second one, the alert tells the manager.
    plan = mc.decide(facts(open_tasks=(task("Продать"),)), MissedCall(), CAL, MON_NOON)
    assert plan.actions == () and plan.alert_key and plan.message is not None
    assert "manager's own task" in plan.why


def test_one_message_per_client_within_the_window():
    plan = mc.decide(facts(client_messaged_recently=True), MissedCall(), CAL, MON_NOON)
    assert plan.message is None and len(plan.actions) == 1


def test_unknown_number_gets_a_new_lead_or_nothing():
    plan = mc.decide(facts(lead_id=None), MissedCall(), CAL, MON_NOON)
    (lead,) = plan.actions
    assert plan.needs_lead and isinstance(lead, CreateLead) and lead.phone == "+79011112233"
    assert "+79011112233" in lead.name
    assert (lead.contact_id, lead.responsible_id) == (None, 77)
    off = MissedCall(create_lead_for_unknown=False)
    assert mc.decide(facts(lead_id=None), off, CAL, MON_NOON) == mc.MissedPlan(why="no lead for this number")


def test_returning_client_gets_a_new_lead_on_their_contact():
    plan = mc.decide(facts(lead_id=None, contact_id=9001, responsible_id=78), MissedCall(), CAL, MON_NOON)
    (lead,) = plan.actions
    assert plan.needs_lead and (lead.contact_id, lead.responsible_id) == (9001, 78)
    assert plan.why == "a returning client: a new lead first"


def test_switches():
    assert mc.decide(facts(), MissedCall(enabled=False), CAL, MON_NOON).actions == ()
    plan = mc.decide(facts(), MissedCall(message_client=False, alert_manager=False), CAL, MON_NOON)
    assert plan.message is None and plan.alert_key is None and len(plan.actions) == 1


def test_conversation_closes_only_callback_tasks():
    tasks = (task("Перезвонить", 1), task("Продать", 2), task("перезвонить  клиенту", 3))
    closed = mc.close_callbacks(501, tasks, "call-9", MissedCall())
    assert [(a.task_id, a.result) for a in closed] == [(1, "Разговор состоялся"), (3, "Разговор состоялся")]
    assert all(isinstance(a, CompleteTask) for a in closed)
    assert mc.close_callbacks(501, (task("Продать"),), "call-9", MissedCall()) == []


# --- FAILED_CALL_MESSAGE ---------------------------------------------------------------------

def test_failed_call_message_once_per_attempt():
    f = fcm.FailedFacts(call_id="out-1", phone="79011112233", lead_id=5)
    a, b = fcm.decide(f, FailedCallMessage()), fcm.decide(f, FailedCallMessage())
    other = fcm.decide(fcm.FailedFacts(call_id="out-2", phone="79011112233", lead_id=5), FailedCallMessage())
    assert a.action_key and a.action_key == b.action_key != other.action_key
    assert fcm.decide(fcm.FailedFacts("out-1", "79011112233", 5, same_attempt_seen=True),
                      FailedCallMessage()).action_key is None
    assert fcm.decide(fcm.FailedFacts("out-1", None, 5), FailedCallMessage()).action_key is None
    assert fcm.decide(f, FailedCallMessage(enabled=False)).action_key is None


# --- WHATSAPP_SLA ------------------------------------------------------------------------------

@pytest.mark.parametrize("since, deadline", [
    (MON_NOON, MON_NOON + timedelta(minutes=5)),
    (MON_NIGHT, datetime(2026, 3, 3, 9, 5, tzinfo=MSK)),          # night: counts from the opening
    (FRI_LATE, datetime(2026, 3, 9, 9, 3, tzinfo=MSK)),           # 2 minutes Friday, 3 on Monday
    (SAT, datetime(2026, 3, 9, 9, 5, tzinfo=MSK)),                # weekend
])
def test_sla_deadline_on_the_calendar(since, deadline):
    assert sla.deadline(since, WhatsappSla(), CAL) == deadline


def test_sla_escalation_after_a_second_interval():
    d = sla.deadline(MON_NOON, WhatsappSla(), CAL)
    assert sla.escalation_at(d, WhatsappSla(), CAL) == d + timedelta(minutes=10)
    assert sla.escalation_at(d, WhatsappSla(escalate_minutes=None), CAL) is None
    evening = datetime(2026, 3, 2, 17, 55, tzinfo=MSK)
    assert sla.escalation_at(evening, WhatsappSla(), CAL) == datetime(2026, 3, 3, 9, 5, tzinfo=MSK)


def test_sla_messages_that_count():
    s = WhatsappSla()
    assert sla.counts("whatsapp", s)
    assert not sla.counts("telegram", s)
    assert not sla.counts("whatsapp", s, edited=True)
    assert not sla.counts("whatsapp", s, deleted=True)
    assert not sla.counts("whatsapp", WhatsappSla(enabled=False))


MIN = timedelta(minutes=1)


@pytest.mark.parametrize("waiting_since, message_at, answered_at, starts", [
    (None, MON_NOON, None, True),                        # a first question
    (MON_NOON, MON_NOON + MIN, None, False),             # the first unanswered message sets the clock
    (MON_NOON, MON_NOON - MIN, None, True),              # an earlier question delivered late takes over
    (None, MON_NOON, MON_NOON + MIN, False),             # answered before its webhook came (out of order)
    (None, MON_NOON, MON_NOON, False),                   # answered in the same instant
    (None, MON_NOON, MON_NOON - MIN, True),              # an old answer is no answer to it
])
def test_sla_which_question_sets_the_clock(waiting_since, message_at, answered_at, starts):
    waiting = sla.Waiting("m0", waiting_since) if waiting_since else None
    assert sla.sets_clock(waiting, message_at, answered_at) is starts


def test_sla_what_answers():
    w = sla.Waiting("m1", MON_NOON)
    assert sla.is_answer(ours=False)
    assert not sla.is_answer(ours=True)                                    # our automated echo
    assert not sla.is_answer(ours=False, deleted=True)
    assert sla.answers(w, sent_at=MON_NOON + MIN)
    assert not sla.answers(w, sent_at=MON_NOON - MIN)                      # older than the question
    assert not sla.answers(None, sent_at=MON_NOON)


def test_sla_timer_fires_only_for_the_waiting_message():
    w = sla.Waiting("m1", MON_NOON)
    assert sla.on_timer(w, "m1", sla.ALERT) == "alert"
    assert sla.on_timer(w, "m1", sla.ESCALATE) == "escalate"
    assert sla.on_timer(None, "m1", sla.ALERT) == "answered"
    assert sla.on_timer(sla.Waiting("m2", MON_NOON), "m1", sla.ALERT) == "answered"


# --- settings ------------------------------------------------------------------------------------

def test_settings_validate_placeholders_and_are_in_the_rules_file():
    with pytest.raises(ValidationError):
        CallsSettings.model_validate({"missed_call": {"alert_text": "{client} звонил"}})
    with pytest.raises(ValidationError):
        RuleSettings.model_validate({"calls": {"whatsapp_sla": {"answer_minutes": 0}}})
    s = RuleSettings.model_validate({"calls": {"whatsapp_sla": {"answer_minutes": 3}}})
    assert s.calls.whatsapp_sla.answer_minutes == 3
    text = defaults_yaml()
    assert "calls:" in text and "missed_call:" in text and "Перезвонить" in text and "answer_minutes" in text
    for name, info in CallsSettings.model_fields.items():
        assert info.description
        for sub in type(getattr(CallsSettings(), name)).model_fields.values():
            assert sub.description
