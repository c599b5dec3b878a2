"""Calls and chats: MISSED_CALL, FAILED_CALL_MESSAGE, WHATSAPP_SLA (GitHub issue "Calls and chats").

Events (call.ended, from the CRM's call records or a telephony provider's own webhook)
- an incoming call that did not talk (any outcome but talked, or zero duration) → MISSED_CALL:
  a «Перезвонить» task for the lead's responsible manager (due now, or at the shift's
  opening), a message to the client (at night held for the opening by a timer,
  jobs/timers.py; at most one per client per window), an alert to the manager. An unknown
  number gets a new lead.
- a talked call → the callback task is closed with a result.
- an outgoing call not reached or busy → FAILED_CALL_MESSAGE.
- chat.message_in starts the chat's SLA timer (jobs/timers.py, a deterministic id per chat and
  message); chat.message_out stops it unless it is the echo of our own automated message.
  The firing job re-reads the chat's state, so an answered chat never alerts.

The decisions are the pure functions of jobs/rules/{missed_call,failed_call_message,whatsapp_sla}.py.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timezone
from typing import Any

from rq import Queue

from jobs import batch, context, queues, timers
from jobs.clients import cached_client, find_client, remember_client
from jobs.router import on
from jobs.rules import failed_call_message, missed_call, whatsapp_sla
from jobs.support import alert, call_of, head_of, messenger_for, person
from jobs.support import moment as _moment
from jobs.support import phone_digits as digits
from reglament import keys, metrics, violations
from reglament.calls_settings import CallsSettings
from reglament.crm import CallDirection, CallStatus, CreateLead
from reglament.events import Event

log = logging.getLogger("reglament.calls")


# ---------------------------------------------------------------- small helpers

def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ref(value: Any) -> str:
    return hashlib.sha1(str(value).encode()).hexdigest()[:16]


def calls_settings(account: str) -> CallsSettings:
    return context.rules(account).calls


def render(text: str, *, client_name: str = "", manager: str = "", lead_link: str = "") -> str:
    return text.format(client_name=client_name, manager=manager, lead_link=lead_link)


# ---------------------------------------------------------------- the calls

@on("call.ended", name="calls")
def calls(event: Event) -> dict:
    """A finished call with a client: a missed incoming one, a talk, or a failed outgoing one."""
    f = event.fields
    call = call_of(event.account, f)
    phone, lead_id = digits(f.get("phone")), f.get("lead_id")
    talked = call.status is CallStatus.TALKED and call.duration > 0
    if call.direction is CallDirection.IN and not talked:
        return handle_missed(event.account, call.id, phone, call.at, lead_id=lead_id)
    if talked:
        return handle_talked(event.account, call.id, phone, lead_id=lead_id)
    if call.failed:
        return handle_failed(event.account, call.id, phone, lead_id=lead_id)
    return {"skipped": "call needs nothing"}


def handle_missed(account: str, call_id: str, phone: str | None, at: datetime, *,
                  lead_id: int | None = None, now: datetime | None = None) -> dict:
    settings = calls_settings(account).missed_call
    if not settings.enabled:
        return {"skipped": "disabled"}
    now = now or _now()
    r = context.redis_client()
    ex = context.executor_for(account)
    crm = context.crm_for(account)
    cal = context.calendar(account)
    client = find_client(account, phone, fresh=True) if lead_id is None else None
    if lead_id is None and client:
        lead_id = client["lead_id"]
    facts = missed_call.MissedFacts(call_id=call_id, phone=phone, at=at, lead_id=lead_id,
                                    contact_id=(client or {}).get("contact_id"),
                                    responsible_id=(client or {}).get("responsible_id"))
    plan = missed_call.decide(facts, settings, cal, now)
    if plan.needs_lead:
        (create,) = plan.actions
        assert isinstance(create, CreateLead)
        lead_id = crm.apply([create])[create.action_key]  # once per key (the client records keys)
        client = {**(client or {"name": "", "contact_id": None}), "lead_id": lead_id,
                  "responsible_id": create.responsible_id}
        remember_client(account, phone, client)
    if lead_id is None:
        log.info("missed call: %s", plan.why, extra={"account": account, "rule": missed_call.RULE})
        return {"skipped": plan.why}
    lock = ex.lock(lead_id)
    if not lock.acquire(blocking=True, blocking_timeout=ex.lock_wait):
        from jobs.executor import LeadBusy
        raise LeadBusy(f"lead {lead_id} of {account} stayed locked")
    try:
        lead = crm.get_lead(lead_id)
        open_tasks = crm.open_tasks(lead_id)
        responsible = (lead.responsible_id if lead else None) or (client or {}).get("responsible_id")
        window_key = keys.key(account, "calls", "client_msg", phone or "-")
        ref = missed_call.call_ref(call_id)
        previous = r.get(window_key) if phone else None
        facts = missed_call.MissedFacts(
            call_id=call_id, phone=phone, at=at, lead_id=lead_id, responsible_id=responsible,
            open_tasks=open_tasks, own_task_ids=ex.own(t.id for t in open_tasks),
            client_messaged_recently=previous is not None and previous.decode() != ref)
        plan = missed_call.decide(facts, settings, cal, now)
        actions = ex.unapplied(plan.actions)
        ex.apply(actions)
    finally:
        lock.release()
    manager = person(account, responsible)
    values = {"client_name": (client or {}).get("name") or (lead.name if lead else ""),
              "manager": (manager or {}).get("name", ""), "lead_link": crm.lead_url(lead_id)}
    sent = None
    if plan.message is not None:
        if settings.message_window_minutes:
            r.set(window_key, ref, nx=True, ex=settings.message_window_minutes * 60)
        text = render(settings.client_message, **{**values, "client_name": missed_call.client_name_part(
            (client or {}).get("name"))})
        template = ({"template_id": settings.wazzup_template,
                     "values": [render(v, **values) for v in settings.wazzup_template_values]}
                    if settings.wazzup_template else None)
        kwargs = dict(account=account, phone=plan.message.phone, text=text, action_key=plan.message.action_key,
                      template=template, not_if_talked_since=at.timestamp())
        if plan.message.send_at > now:
            timers.schedule(r, f"calls-msg-{account}-{_ref(plan.message.action_key)}", plan.message.send_at,
                            send_client_message, kwargs, account=account, kind="missed_call_message")
            sent = f"scheduled for {plan.message.send_at.isoformat()}"
        else:
            sent = send_client_message(**kwargs)
    if plan.alert_key:
        message = {"person": manager, "subject": render(settings.alert_subject, **values),
                   "text": render(settings.alert_text, **values), "action_key": plan.alert_key,
                   "lead_id": lead_id, "note": render(settings.note_text, **values)}
        if plan.alert_at and plan.alert_at > now:
            timers.schedule(r, f"calls-alert-{account}-{_ref(plan.alert_key)}", plan.alert_at, send_held_alert,
                            {"account": account, "phone": phone, "missed_at": at.timestamp(), "message": message},
                            account=account, kind="missed_call_alert")
        else:
            alert(account, messenger_for(account), **message)
    metrics.incr(r, account, "rule_actions_total", rule=missed_call.RULE, action="missed_call")
    return {"lead_id": lead_id, "actions": [a.action_key for a in actions], "message": sent}


def _talked_since(account: str, phone: str | None, since: float) -> bool:
    talked = context.redis_client().get(keys.key(account, "calls", "talked", phone)) if phone else None
    return talked is not None and float(talked) >= since


def send_client_message(account: str, phone: str, text: str, action_key: str, template: dict | None = None,
                        not_if_talked_since: float | None = None) -> str:
    """Send a message to a client (a timer's job when held for the shift's opening)."""
    if not_if_talked_since is not None and _talked_since(account, phone, not_if_talked_since):
        return "skipped: talked to the client since"
    result = messenger_for(account).message_client(f"+{phone}", text, action_key, template=template)
    return result.channel


def send_held_alert(account: str, phone: str | None, missed_at: float, message: dict) -> str:
    """A missed call's alert held for the shift's opening: sent unless the client was talked to since."""
    if _talked_since(account, phone, missed_at):
        return "skipped: talked to the client since"
    return "sent" if alert(account, messenger_for(account), **message) else "noted in the lead"


def handle_talked(account: str, call_id: str, phone: str | None, *, lead_id: int | None = None) -> dict:
    settings = calls_settings(account).missed_call
    r = context.redis_client()
    if phone:
        r.set(keys.key(account, "calls", "talked", phone), time.time(), ex=7 * 86400)
    if lead_id is None:
        client = find_client(account, phone)
        lead_id = client and client["lead_id"]
    if not lead_id:
        return {"skipped": "no lead"}
    ex = context.executor_for(account)
    lock = ex.lock(lead_id)
    if not lock.acquire(blocking=True, blocking_timeout=ex.lock_wait):
        from jobs.executor import LeadBusy
        raise LeadBusy(f"lead {lead_id} of {account} stayed locked")
    try:
        actions = ex.unapplied(missed_call.close_callbacks(lead_id, context.crm_for(account).open_tasks(lead_id),
                                                           call_id, settings))
        ex.apply(actions)
    finally:
        lock.release()
    return {"lead_id": lead_id, "closed": [a.task_id for a in actions]}


def handle_failed(account: str, call_id: str, phone: str | None, *, lead_id: int | None = None) -> dict:
    settings = calls_settings(account).failed_call_message
    if not settings.enabled:
        return {"skipped": "disabled"}
    r = context.redis_client()
    client = find_client(account, phone) if phone else None
    lead_id = lead_id or (client or {}).get("lead_id")
    seen = False
    ref = missed_call.call_ref(call_id)
    if phone and settings.same_attempt_minutes:
        key = keys.key(account, "calls", "failed_attempt", phone)
        if not r.set(key, ref, nx=True, ex=settings.same_attempt_minutes * 60):
            seen = (r.get(key) or b"").decode() != ref
    plan = failed_call_message.decide(failed_call_message.FailedFacts(call_id=call_id, phone=phone, lead_id=lead_id,
                                                                      same_attempt_seen=seen), settings)
    if plan.action_key is None:
        return {"skipped": plan.why}
    name = (client or {}).get("name") or ""
    values = {"client_name": missed_call.client_name_part(name), "manager": "",
              "lead_link": context.crm_for(account).lead_url(lead_id) if lead_id else ""}
    template = ({"template_id": settings.wazzup_template,
                 "values": [render(v, **values) for v in settings.wazzup_template_values]}
                if settings.wazzup_template else None)
    channel = send_client_message(account, phone, render(settings.client_message, **values), plan.action_key,
                                  template)
    # A failed call followed by our message to the client is contact (FIRST_CONTACT_SLA, seed 002).
    r.set(_messaged_key(account, call_id), channel, ex=MESSAGED_KEEP)
    return {"message": channel}


MESSAGED_KEEP = 7 * 86400


def _messaged_key(account: str, call_id: str) -> str:
    return keys.key(account, "calls", "failed_messaged", missed_call.call_ref(call_id))


def messaged_after_failure(account: str, call_id: str) -> bool:
    """Whether the client got FAILED_CALL_MESSAGE's message after this failed call."""
    return bool(context.redis_client().exists(_messaged_key(account, call_id)))


# ---------------------------------------------------------------- WhatsApp SLA

# The chat's state changes in one Lua step each, so that a question and its answer handled
# at once by two workers (or in the wrong order) never leave a timer running. Each applies
# the pure decision of whatsapp_sla.py: START is sets_clock, ANSWER is answers.
# KEYS: the chat's waiting state (a hash), the moment of its last answer.
_START = """
local answered = tonumber(redis.call('GET', KEYS[2]) or '-1')
if answered >= tonumber(ARGV[2]) then return {0, ''} end
local current = redis.call('HGET', KEYS[1], 'message_id')
if current and (current == ARGV[1] or tonumber(redis.call('HGET', KEYS[1], 'since')) <= tonumber(ARGV[2])) then
  return {0, ''}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'message_id', ARGV[1], 'since', ARGV[2], 'phone', ARGV[3], 'deadline', ARGV[4],
           'name', ARGV[5], 'responsible_id', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {1, current or ''}
"""
_ANSWER = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[2]) or '-1') then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
local since = redis.call('HGET', KEYS[1], 'since')
if since and tonumber(ARGV[1]) >= tonumber(since) then
  local id = redis.call('HGET', KEYS[1], 'message_id')
  redis.call('DEL', KEYS[1])
  return id
end
return false
"""
STATE_TTL = 30 * 86400
ANSWER_TTL = 86400  # how long an answer is remembered against questions delivered after it


def chat_key(event_fields: dict) -> str:
    return f"{event_fields.get('channel_id') or '-'}:{event_fields.get('chat_id')}"


def _state_key(account: str, chat: str) -> str:
    return keys.key(account, "sla", "chat", chat)


def _answered_key(account: str, chat: str) -> str:
    return keys.key(account, "sla", "answered", chat)


def waiting(account: str, chat: str) -> tuple[whatsapp_sla.Waiting | None, dict]:
    raw = {k.decode(): v.decode() for k, v in context.redis_client().hgetall(_state_key(account, chat)).items()}
    if not raw.get("message_id"):
        return None, raw
    return whatsapp_sla.Waiting(raw["message_id"], datetime.fromtimestamp(float(raw["since"]), timezone.utc)), raw


def timer_id(account: str, chat: str, message_id: str, stage: int) -> str:
    return f"sla-{account}-{_ref(chat)}-{_ref(message_id)}-{stage}"


def schedule_timer(account: str, chat: str, message_id: str, stage: int, at: datetime) -> None:
    """The chat's timer, with a deterministic id: a repeated webhook replaces it, never doubles it."""
    timers.schedule(context.redis_client(), timer_id(account, chat, message_id, stage), at, sla_timer,
                    {"account": account, "chat": chat, "message_id": message_id, "stage": stage,
                     "deadline": at.timestamp()}, account=account, kind="whatsapp_sla")


@on("chat.message_in", "chat.message_out", name="whatsapp_sla")
def chat_message(event: Event) -> dict:
    f = event.fields
    if event.kind == "chat.message_in":
        return message_in(event.account, f)
    return message_out(event.account, f)


def message_in(account: str, f: dict, now: datetime | None = None) -> dict:
    settings = calls_settings(account).whatsapp_sla
    if not whatsapp_sla.counts(f.get("chat_type"), settings, edited=bool(f.get("is_edited")),
                               deleted=bool(f.get("is_deleted"))):
        return {"timer": "unchanged"}
    chat = chat_key(f)
    since = _moment(f.get("date_time")) or now or _now()
    r = context.redis_client()
    phone = digits((f.get("contact") or {}).get("phone") or f.get("chat_id"))
    deadline = whatsapp_sla.deadline(since, settings, context.calendar(account))
    known, client = cached_client(account, phone)
    started, replaced = r.eval(_START, 2, _state_key(account, chat), _answered_key(account, chat),
                               f["message_id"], since.timestamp(), phone or "", deadline.timestamp(),
                               (f.get("contact") or {}).get("name") or "", STATE_TTL,
                               (client or {}).get("responsible_id") or "")
    if not started:
        return {"timer": "unchanged"}
    schedule_timer(account, chat, f["message_id"], whatsapp_sla.ALERT, deadline)
    if replaced:  # an earlier message of the client arrived late: its clock counts, not the later one's
        _cancel_timers(account, chat, replaced.decode())
    if not known and phone:
        # Who the client's manager is takes CRM calls: a job among the account's CRM events
        # (under its in-flight cap), so that this queue stays quick for answers. The timer
        # looks again if it hasn't run by then.
        batch.enqueue(Queue(queues.EVENTS, connection=r), [batch.job_data(
            [batch.call(tie_chat, account=account, chat=chat, message_id=f["message_id"], phone=phone)],
            queues.EVENTS, description=f"{account} chat {chat}: find its lead",
            meta={"account": account, "kind": "whatsapp_sla_lookup"})])
    return {"timer": "started", "deadline": deadline.isoformat()}


_TIE = """
if redis.call('HGET', KEYS[1], 'message_id') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'responsible_id', ARGV[2])
  return 1
end
return 0
"""


def tie_chat(account: str, chat: str, message_id: str, phone: str) -> dict:
    """Find a waiting chat's lead and manager in amoCRM (cached for the timer and the
    dashboard), and note the manager in the chat's state if it still waits for this message."""
    settings = calls_settings(account).whatsapp_sla
    client = find_client(account, phone, ttl=settings.chat_cache_minutes * 60) or {}
    if client.get("responsible_id"):
        context.redis_client().eval(_TIE, 1, _state_key(account, chat), message_id, client["responsible_id"])
    return {"lead_id": client.get("lead_id"), "responsible_id": client.get("responsible_id")}


def message_out(account: str, f: dict, now: datetime | None = None) -> dict:
    ours = messenger_for(account).is_our_message(f.get("message_id"), f.get("crm_message_id"))
    if not whatsapp_sla.is_answer(ours, deleted=bool(f.get("is_deleted"))):
        return {"timer": "ours" if ours else "unchanged"}
    chat = chat_key(f)
    sent_at = _moment(f.get("date_time")) or now or _now()
    r = context.redis_client()
    stopped = r.eval(_ANSWER, 2, _state_key(account, chat), _answered_key(account, chat),
                     sent_at.timestamp(), ANSWER_TTL)
    if not stopped:
        return {"timer": "unchanged"}
    # A timer that fires anyway (already claimed) finds the chat answered and does nothing.
    _cancel_timers(account, chat, stopped.decode())
    return {"timer": "stopped"}


def _cancel_timers(account: str, chat: str, message_id: str) -> None:
    timers.cancel(context.redis_client(), *(timer_id(account, chat, message_id, stage)
                                            for stage in (whatsapp_sla.ALERT, whatsapp_sla.ESCALATE)))


def sla_timer(account: str, chat: str, message_id: str, stage: int, deadline: float,
              now: datetime | None = None) -> dict:
    """The timer job: alert (stage 1) or escalate (stage 2) if the chat still waits for this message."""
    now = now or _now()
    settings = calls_settings(account).whatsapp_sla
    current, raw = waiting(account, chat)
    decision = whatsapp_sla.on_timer(current, message_id, stage)
    if decision == "answered":
        return {"outcome": "answered"}
    if now.timestamp() < deadline - 0.5:
        # Not due yet (a direct call, or a clock step): look again at the deadline.
        schedule_timer(account, chat, message_id, stage, datetime.fromtimestamp(deadline, timezone.utc))
        return {"outcome": "early"}
    client = find_client(account, raw.get("phone"), ttl=settings.chat_cache_minutes * 60) or {}
    lead_id = client.get("lead_id")
    manager = person(account, client.get("responsible_id"))
    values = {"client_name": raw.get("name") or client.get("name") or f"+{raw.get('phone', '')}",
              "manager": (manager or {}).get("name", ""),
              "lead_link": context.crm_for(account).lead_url(lead_id) if lead_id else ""}
    base = f"{whatsapp_sla.RULE}:{_ref(chat)}:{_ref(message_id)}"
    lateness = now.timestamp() - deadline
    if decision == "alert":
        subject, text = render(settings.alert_subject, **values), render(settings.alert_text, **values)
        alert(account, messenger_for(account), manager, subject, text, action_key=f"{base}:alert",
              lead_id=lead_id, note=f"{subject}. {text}")
        violations.record(context.redis_client(), account, violations.Violation(
            rule=whatsapp_sla.RULE, key=base, at=deadline,
            manager_id=client.get("responsible_id"), lead_id=lead_id, link=values["lead_link"] or None,
            details=f"Нет ответа клиенту {values['client_name']} в WhatsApp за "
                    f"{settings.answer_minutes:g} рабочих минут",
            extra={"chat": chat, "message_id": message_id}))
        at = whatsapp_sla.escalation_at(datetime.fromtimestamp(deadline, timezone.utc), settings,
                                        context.calendar(account))
        if at is not None:
            schedule_timer(account, chat, message_id, whatsapp_sla.ESCALATE, at)
        return {"outcome": "alert", "lateness": lateness}
    head = head_of(account, values["manager"]) if manager else None
    subject, text = render(settings.escalation_subject, **values), render(settings.escalation_text, **values)
    alert(account, messenger_for(account), head, subject, text, action_key=f"{base}:escalate", lead_id=lead_id,
          note=f"{subject}. {text}")
    return {"outcome": "escalate", "lateness": lateness}
