"""Calls and chats end to end: the event job against a CRM's sandbox (through the neutral driver,
tests/driver) and real Redis; the messages land in the messaging outbox (no channel configured)
or in `responses` mocks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from rq import Queue, SimpleWorker

from connectors.outbox import Outbox
from connectors.wazzup import ours
from connectors.wazzup.client import crm_message_id
from jobs import context, events, queues, timers
from jobs.handlers import calls
from jobs.timers import Pump
from reglament import violations
from app.telephony.call import call_event as telephony_call
from reglament.events import Event, event_key
from tests.driver import LOST
from tests.engine.conftest import ACCOUNT, crm_settings

MSK = ZoneInfo("Europe/Moscow")
PHONE = "+7 901 111-22-33"


def contact_with_lead(crm, phone: str = PHONE, name: str = "Иван Клиентов", responsible: str = "Анна Смирнова") -> int:
    """A new lead of a client with this phone."""
    return crm.create_lead("Новая заявка", responsible=crm.user(responsible), phone=phone, client=name).id


CALLS = {"call.incoming_missed": (True, False), "call.incoming_answered": (True, True),
         "call.outgoing_failed": (False, False), "call.outgoing_answered": (False, True)}


def call_event(kind: str, call_id: str, phone: str = "79011112233") -> Event:
    """The call.ended event a telephony provider's webhook becomes (app/telephony/call.py)."""
    incoming, answered = CALLS[kind]
    return telephony_call(ACCOUNT, "zadarma", call_id, incoming, answered, client_phone=phone,
                          our_number="74950000000", extension="100", started_at=None,
                          duration=60 if answered else 0, result=None, raw_event=kind)


def outbox(r, kind: str):
    return [e for e in Outbox(r, ACCOUNT).entries(100) if e.kind == kind]


def callback_tasks(crm, lead_id):
    return [t for t in crm.open_tasks(lead_id) if t.text == "Перезвонить"]


# --- MISSED_CALL -------------------------------------------------------------------------------

def test_missed_call_three_times_gives_one_task_one_message_one_alert(crm, service, r):
    lead_id = contact_with_lead(crm)
    event = call_event("call.incoming_missed", "in-1")
    for _ in range(3):
        result = events.handle_event(event.to_dict())
        assert "calls" in result["rules"]
    (task,) = callback_tasks(crm, lead_id)
    assert task.responsible == crm.user("Анна Смирнова")
    assert abs((task.due - datetime.now(timezone.utc)).total_seconds()) < 60  # around the clock: due now
    (message,) = outbox(r, "client")
    assert message.recipient == "+79011112233" and "Иван Клиентов" in message.text
    (alert,) = outbox(r, "alert")
    assert crm.lead_link(lead_id) in alert.text
    # Another missed call within the window: no second message, the open task is enough.
    events.handle_event(call_event("call.incoming_missed", "in-2").to_dict())
    assert len(callback_tasks(crm, lead_id)) == 1 and len(outbox(r, "client")) == 1
    assert len(outbox(r, "alert")) == 2
    # A conversation with the client closes the callback task with a result.
    events.handle_event(call_event("call.outgoing_answered", "out-3").to_dict())
    assert callback_tasks(crm, lead_id) == []
    done = crm.task(task.id)
    assert done.completed and done.result == "Разговор состоялся"


def test_missed_call_from_an_unknown_number_creates_a_lead(crm, service, r):
    for _ in range(2):
        events.handle_event(call_event("call.incoming_missed", "in-x", phone="79995554433").to_dict())
    (lead,) = [x for x in crm.leads() if "79995554433" in x.name]
    assert len(callback_tasks(crm, lead.id)) == 1
    assert len(outbox(r, "client")) == 1


def test_missed_call_note_from_the_crm(crm, service, r):
    lead_id = contact_with_lead(crm)
    logged = crm.log_call(lead_id, "in", "not_reached", at=datetime.now(timezone.utc), by=crm.user("Анна Смирнова"),
                          phone="89011112233")
    notes = logged.of("call.ended", direction="in")
    assert len(notes) == 1
    for _ in range(3):
        events.handle_event(notes[0].to_dict())
    assert len(callback_tasks(crm, lead_id)) == 1
    assert [t.text for t in crm.open_tasks(lead_id)] == ["Перезвонить"]  # and no status task beside it
    assert len(outbox(r, "client")) == 1 and len(outbox(r, "alert")) == 1


def test_missed_call_at_night_message_and_alert_wait_for_the_shift(crm, r):
    weekdays = {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}
    context.set_settings(crm_settings(crm, working_hours=weekdays), r)
    lead_id = contact_with_lead(crm)
    night = datetime(2026, 3, 2, 23, 40, tzinfo=MSK)  # a Monday night
    calls.handle_missed(ACCOUNT, "night-1", "79011112233", night, now=night)
    opening = datetime(2026, 3, 3, 9, 0, tzinfo=MSK)
    (task,) = callback_tasks(crm, lead_id)
    assert task.due == opening
    assert outbox(r, "client") == [] and outbox(r, "alert") == []  # nobody is messaged at night...
    assert sorted(t.kind for t in timers.pending(r)) == ["missed_call_alert", "missed_call_message"]
    assert {t.at for t in timers.pending(r)} == {opening.timestamp()}
    assert Pump(r).pump_once(now=opening.timestamp() - 1) == 0
    assert Pump(r).pump_once(now=opening.timestamp()) == 2   # ...both go at the opening
    SimpleWorker([Queue(queues.TIMERS, connection=r)], connection=r).work(burst=True)
    assert len(outbox(r, "client")) == 1 and len(outbox(r, "alert")) == 1


def test_held_message_and_alert_are_dropped_when_the_client_was_talked_to_before_the_opening(crm, r):
    weekdays = {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}
    context.set_settings(crm_settings(crm, working_hours=weekdays), r)
    contact_with_lead(crm)
    night = datetime(2026, 3, 2, 23, 40, tzinfo=MSK)
    calls.handle_missed(ACCOUNT, "night-2", "79011112233", night, now=night)
    calls.handle_talked(ACCOUNT, "morning-call", "79011112233")  # the client got through at 8:30
    Pump(r).pump_once(now=datetime(2026, 3, 3, 9, 0, tzinfo=MSK).timestamp())
    SimpleWorker([Queue(queues.TIMERS, connection=r)], connection=r).work(burst=True)
    assert outbox(r, "client") == [] and outbox(r, "alert") == []


def test_returning_client_with_closed_leads_gets_a_new_lead_on_the_same_contact(crm, service, r):
    lead_id = contact_with_lead(crm, responsible="Борис Иванов")
    crm.move_lead(lead_id, LOST)
    contacts_before = [(c.id, c.name, c.phones) for c in crm.contacts()]
    out = calls.handle_missed(ACCOUNT, "back-1", "79011112233", datetime.now(timezone.utc))
    new_lead = out["lead_id"]
    assert new_lead != lead_id
    assert [(c.id, c.name, c.phones) for c in crm.contacts()] == contacts_before  # no second contact
    linked = crm.lead(new_lead)
    assert list(linked.contacts) == [c for c, name, _ in contacts_before if name == "Иван Клиентов"]
    assert linked.responsible == crm.user("Борис Иванов")      # back to the client's manager
    assert len(callback_tasks(crm, new_lead)) == 1


# --- FAILED_CALL_MESSAGE -------------------------------------------------------------------------

def test_failed_call_message_once_per_attempt(crm, service, r):
    contact_with_lead(crm)
    for _ in range(3):
        events.handle_event(call_event("call.outgoing_failed", "out-1").to_dict())
    (message,) = outbox(r, "client")
    assert "не смогли до вас дозвониться" in message.text


# --- WHATSAPP_SLA --------------------------------------------------------------------------------

def chat_event(kind: str, message_id: str, at: datetime, *, crm_id: str | None = None,
               chat_id: str = "79011112233") -> Event:
    fields = {"message_id": message_id, "date_time": at.isoformat(), "channel_id": "ch-1",
              "chat_type": "whatsapp", "chat_id": chat_id, "is_echo": kind == "chat.message_out",
              "status": "sent" if kind == "chat.message_out" else "inbound", "text": "…",
              "crm_message_id": crm_id, "author_id": None, "is_edited": False, "is_deleted": False,
              "contact": {"phone": chat_id, "name": "Иван"}}
    return Event(account=ACCOUNT, source="wazzup", kind=kind, entity_id=message_id, fields=fields,
                 key=event_key("wazzup", message_id))


def users_of(crm):
    return {i: name for name, i in crm.users().items()}


def timer_jobs(r):
    return [(t, datetime.fromtimestamp(t.at, timezone.utc)) for t in timers.pending(r)]


def fire(timer, now: datetime):
    return calls.sla_timer(**{**timer.kwargs, "now": now})


@pytest.fixture
def sla_engine(crm, r):
    settings = crm_settings(crm, departments=[{"name": "Продажи", "head": "Борис Иванов", "managers": ["Анна Смирнова"]}])
    context.set_settings(settings, r)
    return settings


def test_unanswered_message_alerts_after_five_minutes_then_escalates(crm, sla_engine, r):
    lead_id = contact_with_lead(crm)
    t0 = datetime.now(timezone.utc)
    events.handle_event(chat_event("chat.message_in", "in-1", t0).to_dict())
    events.handle_event(chat_event("chat.message_in", "in-2", t0 + timedelta(minutes=1)).to_dict())
    ((job, at),) = timer_jobs(r)                           # one timer, from the first message
    assert 0 <= (at - (t0 + timedelta(minutes=5))).total_seconds() < 1
    assert fire(job, t0 + timedelta(minutes=4))["outcome"] == "early"
    assert outbox(r, "alert") == []
    out = fire(job, t0 + timedelta(minutes=5, seconds=1))
    assert out["outcome"] == "alert"
    (alert,) = outbox(r, "alert")
    assert crm.lead_link(lead_id) in alert.text
    fire(job, t0 + timedelta(minutes=5, seconds=2))        # a retried job: no second alert or violation
    assert len(outbox(r, "alert")) == 1
    (v,) = violations.between(r, ACCOUNT, 0, 2e10)
    assert v.rule == "WHATSAPP_SLA" and v.manager_id == crm.user("Анна Смирнова") and v.lead_id == lead_id
    escalation = [(j, a) for j, a in timer_jobs(r) if j.kwargs["stage"] == 2]
    ((job2, at2),) = escalation
    assert 0 <= (at2 - (t0 + timedelta(minutes=15))).total_seconds() < 1
    assert fire(job2, at2)["outcome"] == "escalate"
    alerts = outbox(r, "alert")
    assert len(alerts) == 2 and alerts[0].recipient == "Борис Иванов"


def test_answered_message_never_alerts(crm, sla_engine, r):
    contact_with_lead(crm)
    t0 = datetime.now(timezone.utc)
    events.handle_event(chat_event("chat.message_in", "in-1", t0).to_dict())
    ((job, _),) = timer_jobs(r)
    events.handle_event(chat_event("chat.message_out", "out-1", t0 + timedelta(minutes=2)).to_dict())
    assert timer_jobs(r) == []                             # the timer is cancelled...
    assert fire(job, t0 + timedelta(minutes=6))["outcome"] == "answered"  # ...and a stray one re-checks
    assert outbox(r, "alert") == [] and violations.between(r, ACCOUNT, 0, 2e10) == []


def test_an_answer_handled_before_its_question_still_stops_the_clock(crm, sla_engine, r):
    """Workers run events in parallel: the manager's answer may be handled first."""
    contact_with_lead(crm)
    t0 = datetime.now(timezone.utc)
    events.handle_event(chat_event("chat.message_out", "out-1", t0 + timedelta(seconds=40)).to_dict())
    events.handle_event(chat_event("chat.message_in", "in-1", t0).to_dict())
    assert timer_jobs(r) == []
    events.handle_event(chat_event("chat.message_in", "in-2", t0 + timedelta(minutes=1)).to_dict())
    ((timer, at),) = timer_jobs(r)                         # a later question is a new one
    assert timer.kwargs["message_id"] == "in-2"


def test_an_earlier_question_delivered_late_sets_the_clock(crm, sla_engine, r):
    contact_with_lead(crm)
    t0 = datetime.now(timezone.utc)
    events.handle_event(chat_event("chat.message_in", "in-2", t0 + timedelta(minutes=1)).to_dict())
    events.handle_event(chat_event("chat.message_in", "in-1", t0).to_dict())
    ((timer, at),) = timer_jobs(r)
    assert timer.kwargs["message_id"] == "in-1" and at == t0 + timedelta(minutes=5)


def test_the_dashboard_shows_a_waiting_chat_with_its_manager(crm, sla_engine, r):
    from app.dashboard import data

    contact_with_lead(crm)
    t0 = datetime.now(timezone.utc)
    events.handle_event(chat_event("chat.message_in", "in-1", t0 - timedelta(minutes=3)).to_dict())
    (chat,) = data.whatsapp_timers(r, context.account(ACCOUNT), users_of(crm), t0, MSK)
    assert chat["manager"] == "—"          # the clock runs at once; the CRM is asked in a job of its own
    SimpleWorker([Queue(queues.EVENTS, connection=r)], connection=r).work(burst=True)
    (chat,) = data.whatsapp_timers(r, context.account(ACCOUNT), users_of(crm), t0, MSK)
    assert (chat["manager"], chat["minutes"]) == ("Анна Смирнова", 3)
    events.handle_event(chat_event("chat.message_in", "in-2", t0 - timedelta(minutes=1), chat_id="79011112233"
                                   ).to_dict())  # a later question: nothing new
    assert Queue(queues.EVENTS, connection=r).count == 0


def test_our_own_automated_echo_does_not_stop_the_timer(crm, sla_engine, r):
    contact_with_lead(crm)
    t0 = datetime.now(timezone.utc)
    events.handle_event(chat_event("chat.message_in", "in-1", t0).to_dict())
    ours.remember(r, ACCOUNT, crm_message_id=crm_message_id(ACCOUNT, "MISSED_CALL:x:client@79011112233"))
    echo = chat_event("chat.message_out", "our-1", t0 + timedelta(seconds=5),
                      crm_id=crm_message_id(ACCOUNT, "MISSED_CALL:x:client@79011112233"))
    events.handle_event(echo.to_dict())
    ((job, _),) = timer_jobs(r)
    assert fire(job, t0 + timedelta(minutes=5, seconds=1))["outcome"] == "alert"


def test_message_at_night_waits_for_the_shift(crm, r):
    weekdays = {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}
    context.set_settings(crm_settings(crm, working_hours=weekdays), r)
    contact_with_lead(crm)
    night = datetime(2026, 3, 6, 22, 0, tzinfo=MSK)        # a Friday night: the shift opens on Monday
    events.handle_event(chat_event("chat.message_in", "in-1", night).to_dict())
    ((job, at),) = timer_jobs(r)
    assert at == datetime(2026, 3, 9, 9, 5, tzinfo=MSK).astimezone(timezone.utc)
    assert fire(job, datetime(2026, 3, 7, 9, 5, tzinfo=MSK))["outcome"] == "early"
    assert fire(job, datetime(2026, 3, 9, 9, 5, 1, tzinfo=MSK))["outcome"] == "alert"


# --- real channels, mocked at the HTTP layer with the reference's formats ------------------------

def test_missed_call_three_times_through_wazzup_sms_and_telegram(crm, r):
    """WhatsApp first (Wazzup), SMS when WhatsApp refuses, the alert by Telegram: a missed call
    delivered three times still sends one of each."""
    import json as _json

    import responses

    channel = "e0629e11-0f67-4567-92a9-2237e91ec1b9"
    settings = crm_settings(crm, wazzup={"api_key": "wz-key-0123456789", "channel_id": channel},
                            sms={"provider": "smsru", "api_id": "smsru-key-0123"},
                            telegram={"bot_token": "123:tg-token-abc",
                                      "chats": {str(crm.user("Анна Смирнова")): 555001}})
    context.set_settings(settings, r)
    lead_id = contact_with_lead(crm)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for url in crm.local_urls:
            mock.add_passthru(url)
        mock.get("https://api.wazzup24.com/v3/channels",
                 json=[{"channelId": channel, "transport": "whatsapp", "plainId": "74950000000", "state": "active"}])
        wazzup = mock.post("https://api.wazzup24.com/v3/message", status=201,
                           json={"messageId": "3a3c2c1e-5b7a-4d2f-9d64-0b3c0f9b1a11", "chatId": "79011112233"})
        telegram = mock.post("https://api.telegram.org/bot123:tg-token-abc/sendMessage",
                             json={"ok": True, "result": {"message_id": 1, "chat": {"id": 555001}, "date": 1}})
        sms = mock.post("https://sms.ru/sms/send", json={"status": "OK", "status_code": 100, "sms": {
            "79011112233": {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"}}, "balance": 100})
        for _ in range(3):
            events.handle_event(call_event("call.incoming_missed", "in-9").to_dict())
        assert len(callback_tasks(crm, lead_id)) == 1
        assert wazzup.call_count == 1 and telegram.call_count == 1 and sms.call_count == 0
        body = _json.loads(wazzup.calls[0].request.body)
        assert body["chatId"] == "79011112233" and body["chatType"] == "whatsapp" and body["channelId"] == channel
        assert body["clearUnanswered"] is False and body["crmMessageId"]
        assert _json.loads(telegram.calls[0].request.body)["chat_id"] == 555001

        # WhatsApp refuses the next client (e.g. no WhatsApp on that number): SMS is the fallback.
        mock.replace(responses.POST, "https://api.wazzup24.com/v3/message", status=400,
                     json={"error": "CHAT_NO_ACCOUNT", "description": "no WhatsApp account"})
        other = contact_with_lead(crm, phone="+7 902 222-33-44", name="Мария")
        for _ in range(3):
            events.handle_event(call_event("call.incoming_missed", "in-10", phone="79022223344").to_dict())
        assert len(callback_tasks(crm, other)) == 1
        assert sms.call_count == 1 and "79022223344" in sms.calls[0].request.body
