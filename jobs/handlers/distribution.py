"""New leads: DISTRIBUTION, FIRST_CONTACT_SLA, the shift-start list (GitHub issue "New leads:
even distribution among managers on shift, first contact in time, shift-start priorities").

Events
- lead.added in the configured pipeline and status → the lead is remembered (arrival time,
  the responsible it came with, its source); it gets the next manager on shift by smooth
  weighted round robin (reglament.shifts.take_turn, one Lua script that also records the
  pick for the lead), or the fallback user; and its first-contact timer starts
  (jobs/timers.py, id fc-<account>-<lead>-<stage>).
- lead.responsible_changed to someone other than our pick → a person chose: never reassigned.
- comment.added / message.outgoing by a person, call.ended (from the CRM or telephony),
  chat.message_out (Wazzup) → the lead's first contact: its time is recorded, the timer cancelled.
- The timer job re-checks (Redis, then the lead's notes in the CRM) and alerts the manager
  only when there was no contact and the deadline has passed; a violation is recorded and a
  second timer alerts the head of department after `escalation_after`.
- Every minute (PERIODIC) a manager whose shift has just opened gets the list of their
  untouched leads in priority order (also `reglament queue`).

Redis keys under rg:<account>:dist: — pick:<lead>, rr (weights), absent, lead:<lead> (hash),
manual:<lead>, pending (zset lead → arrival), ttfc (zset lead → contact time) and ttfc:data,
shift:<manager>, me (the integration's own CRM user).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from connectors import registry
from jobs import clients, context, names, timers
from jobs.router import on
from jobs.handlers import calls
from jobs.rules import distribution as dist
from jobs.rules import first_contact as fc
from jobs.scheduler import PERIODIC
from jobs.support import alert, call_of, head_of, messenger_for, person
from jobs.support import moment as _moment
from jobs.support import phone_digits as _digits
from reglament.names import norm
from reglament import keys, metrics, shifts, violations
from reglament.crm import Touch
from reglament.distribution_settings import DistributionSettings
from reglament.events import Event

log = logging.getLogger("reglament.distribution")

KEEP = 45 * 86400
SHIFT_INTERVAL = 60            # seconds between looks for opened shifts
SHIFT_MESSAGE_WINDOW = 3600    # a shift opened longer ago than this gets no message any more


# ---------------------------------------------------------------- helpers

def _now() -> datetime:
    return datetime.now(timezone.utc)


def _k(account: str, *parts: object) -> str:
    return keys.key(account, "dist", *parts)






def dsettings(account: str) -> DistributionSettings:
    return context.rules(account).distribution






def target(account: str) -> tuple[str, str, str] | None:
    """(pipeline id, stage id, pipeline name) where new leads arrive."""
    s = dsettings(account)
    return context.crm_for(account).arrival_stage(s.pipeline or context.rules(account).pipeline, s.status)


def integration_user(account: str) -> int | None:
    """The CRM user Reglament acts as (its notes are Reglament's, not a person's)."""
    return context.crm_for(account).own_user_id()


def _lead_state(account: str, lead_id: int) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in context.redis_client().hgetall(_k(account, "lead", lead_id)).items()}


# ---------------------------------------------------------------- lead.added

@on("lead.added", name="distribution")
def lead_added(event: Event, now: datetime | None = None) -> dict:
    account, f = event.account, event.fields
    s = dsettings(account)
    if not dist.group_active(s) and not s.first_contact_enabled:
        return {"skipped": "disabled"}
    tgt = target(account)
    if tgt is None or (f.get("pipeline"), f.get("stage")) != tgt[:2]:
        return {"skipped": "not a new lead of the configured pipeline and status"}
    now = now or _now()
    lead_id = int(event.entity_id)
    arrived = _moment(f.get("created_at")) or now
    original = f.get("responsible_id")
    candidates = [fc.field_value(f.get("values"), s.source_field), fc.field_value(f.get("values"), s.utm_field),
                  tgt[2]]
    label, source = fc.resolve_source(candidates, s)
    cal = context.calendar(account)
    due = fc.deadline(arrived, fc.sla_minutes(source, s), cal).astimezone(timezone.utc)
    r = context.redis_client()
    key = _k(account, "lead", lead_id)
    fresh = r.hsetnx(key, "arrived", arrived.timestamp())
    if fresh:
        r.hset(key, mapping={"original": original or "", "name": f.get("name") or "", "source": label,
                             "priority": fc.priority(source), "status_id": tgt[1], "pipeline_id": tgt[0],
                             "deadline": due.timestamp()})
        r.expire(key, KEEP)
        r.zadd(_k(account, "pending"), {str(lead_id): arrived.timestamp()}, nx=True)
    result: dict = {"lead_id": lead_id, "source": label}
    if dist.group_active(s):
        result["assignment"] = assign(account, lead_id, int(original) if original else None, now)
    if s.first_contact_enabled and not _lead_state(account, lead_id).get("contacted_at"):
        _schedule(account, lead_id, fc.ALERT, due)
        result["deadline"] = due.isoformat()
    return result


def assign(account: str, lead_id: int, original: int | None, now: datetime) -> str:
    s = dsettings(account)
    r = context.redis_client()
    if r.exists(_k(account, "manual", lead_id)):
        return "the responsible was changed by a person"
    crm = context.crm_for(account)
    users = crm.users()
    ex = context.executor_for(account)
    lock = ex.lock(lead_id)
    if not lock.acquire(blocking=True, blocking_timeout=ex.lock_wait):
        from jobs.executor import LeadBusy
        raise LeadBusy(f"lead {lead_id} of {account} stayed locked")
    try:
        lead = crm.get_lead(lead_id)
        if lead is None:
            return "the lead is gone"
        current = lead.responsible_id
        manual = bool(r.exists(_k(account, "manual", lead_id)))
        pick = shifts.recorded_pick(r, account, lead_id)
        if pick is None and not manual and (original is None or current == original):
            # The turn is taken only for a lead we will assign: a lead a person took keeps its turn free.
            duty = dist.on_duty(s.managers, context.calendar(account), shifts.absences(r, account), now)
            names.report_missing_users(r, account, dist.RULE, [m.name for m in duty] + [s.fallback_user], users)
            pick = shifts.take_turn(r, account, lead_id, dist.eligible_ids(duty, users),
                                    dist.user_id(users, s.fallback_user))
        decision = dist.decide(lead_id, pick, current, original, manual)
        if decision.action is not None:
            ex.apply(ex.unapplied([decision.action]))
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 — expired: the action key covers a retry
            pass
    log.info("lead %s: %s (%s)", lead_id, decision.why, pick, extra={"account": account, "rule": dist.RULE,
                                                                      "lead_id": lead_id})
    return decision.why if decision.action is None else f"assigned to {pick}"


@on("lead.responsible_changed", name="distribution")
def responsible_changed(event: Event) -> dict:
    account, lead_id = event.account, int(event.fields.get("lead_id") or event.entity_id)
    new = event.fields.get("responsible_id")
    r = context.redis_client()
    pick = shifts.recorded_pick(r, account, lead_id)
    if new is not None and pick is not None and int(new) == pick:
        return {"changed_by": "us"}
    r.set(_k(account, "manual", lead_id), new or "", ex=KEEP)
    return {"changed_by": "a person"}


# ---------------------------------------------------------------- first contact

def timer_id(account: str, lead_id: int, stage: int) -> str:
    return f"fc-{account}-{lead_id}-{stage}"


def _schedule(account: str, lead_id: int, stage: int, at: datetime) -> None:
    timers.schedule(context.redis_client(), timer_id(account, lead_id, stage), at, first_contact_timer,
                    {"account": account, "lead_id": lead_id, "stage": stage, "deadline": at.timestamp()},
                    account=account, kind="first_contact_sla")


def record_contact(account: str, lead_id: int, at: datetime, by: int | None = None, how: str = "") -> bool:
    """The lead's first contact (False when the lead is not watched or was contacted before)."""
    r = context.redis_client()
    key = _k(account, "lead", lead_id)
    state = _lead_state(account, lead_id)
    if not state.get("arrived") or not r.hsetnx(key, "contacted_at", at.timestamp()):
        return False
    arrived = datetime.fromtimestamp(float(state["arrived"]), timezone.utc)
    manager = by or shifts.recorded_pick(r, account, lead_id) or (int(state["original"]) if state.get("original")
                                                                   else None)
    seconds = max(0.0, (at - arrived).total_seconds())
    working = context.calendar(account).working_between(arrived, at).total_seconds() if at > arrived else 0.0
    with r.pipeline(transaction=False) as p:
        p.hset(key, mapping={"contact_by": manager or "", "contact_how": how})
        p.zrem(_k(account, "pending"), str(lead_id))
        p.zadd(_k(account, "ttfc"), {str(lead_id): at.timestamp()})
        p.hset(_k(account, "ttfc", "data"), str(lead_id),
               json.dumps({"manager": manager, "seconds": seconds, "working_seconds": working}))
        p.execute()
    timers.cancel(r, *(timer_id(account, lead_id, stage) for stage in (fc.ALERT, fc.ESCALATE)))  # they re-check anyway
    metrics.incr(r, account, "first_contacts_total")
    return True


def _is_contact(account: str, touch: Touch, me: int | None) -> bool:
    messaged = touch.call is not None and calls.messaged_after_failure(account, touch.call.id)
    return fc.touch_is_contact(touch, dsettings(account), me if touch.kind != "call" else None, messaged)


def _record_touch(account: str, lead_id: int, touch: Touch, how: str) -> bool:
    me = integration_user(account) if touch.kind != "call" else None
    if not _is_contact(account, touch, me):
        return False
    author = touch.by if touch.by and touch.by != me else None
    return record_contact(account, lead_id, touch.at, author, how)


@on("comment.added", "message.outgoing", name="first_contact")
def comment_added(event: Event) -> dict:
    f = event.fields
    if not f.get("lead_id"):
        return {"skipped": "not on a lead"}
    account, lead_id = event.account, int(f["lead_id"])
    if not context.redis_client().exists(_k(account, "lead", lead_id)):
        return {"skipped": "not a watched lead"}
    kind = "comment" if event.kind == "comment.added" else "message"
    touch = Touch(kind=kind, at=_moment(f.get("at")) or _now(), by=f.get("by"))
    return {"contact": _record_touch(account, lead_id, touch, kind)}


def _pending_leads_of_phone(account: str, phone: str | None) -> list[int]:
    r = context.redis_client()
    if not phone or not r.zcard(_k(account, "pending")):
        return []
    return [i for i in clients.leads_of_phone(account, phone) if r.zscore(_k(account, "pending"), str(i)) is not None]


@on("chat.message_out", name="first_contact")
def chat_out(event: Event) -> dict:
    f = event.fields
    account = event.account
    if not context.redis_client().zcard(_k(account, "pending")) or f.get("is_deleted"):
        return {"skipped": "nothing waits"}
    if messenger_for(account).is_our_message(f.get("message_id"), f.get("crm_message_id")):
        return {"skipped": "our automated message"}
    phone = _digits((f.get("contact") or {}).get("phone") or f.get("chat_id"))
    at = _moment(f.get("date_time")) or _now()
    return {"contacts": [lid for lid in _pending_leads_of_phone(account, phone)
                         if record_contact(account, lid, at, None, "chat")]}


@on("call.ended", name="first_contact")
def call_ended(event: Event) -> dict:
    """A call on a watched lead (a CRM call record) or with a pending lead's phone (telephony)."""
    f, account = event.fields, event.account
    r = context.redis_client()
    if f.get("lead_id"):
        leads = [int(f["lead_id"])] if r.exists(_k(account, "lead", int(f["lead_id"]))) else []
    else:
        leads = _pending_leads_of_phone(account, _digits(f.get("phone")))
    if not leads:
        return {"skipped": "no watched lead"}
    call = call_of(account, f)
    touch = Touch(kind="call", at=call.at, by=call.responsible_id, call=call)
    return {"contacts": [lid for lid in leads if _record_touch(account, lid, touch, f"call:{call.direction.value}")]}


def _contact_in_crm(account: str, lead_id: int, arrived: datetime) -> datetime | None:
    """The earliest contact on the lead since it arrived (a webhook may have been lost)."""
    me = integration_user(account)
    found = [t for t in context.crm_for(account).touches(lead_id, arrived - timedelta(seconds=1))
             if _is_contact(account, t, me)]
    if not found:
        return None
    first = min(found, key=lambda t: t.at)
    record_contact(account, lead_id, first.at, first.by if first.by and first.by != me else None,
                   "found by the timer")
    return first.at


def first_contact_timer(account: str, lead_id: int, stage: int, deadline: float, now: datetime | None = None) -> dict:
    """The timer: alert (stage 1) or escalate (stage 2) when the lead still has no contact."""
    scheduled = now is None
    now = now or _now()
    s = dsettings(account)
    state = _lead_state(account, lead_id)
    if not state.get("arrived"):
        return {"outcome": "gone"}
    due = datetime.fromtimestamp(deadline, timezone.utc)
    contacted = bool(state.get("contacted_at"))
    if not contacted and now < due:
        if scheduled:  # fired early (clocks): look again at the due time
            _schedule(account, lead_id, stage, due)
        return {"outcome": "early"}
    lead = None
    if not contacted:
        lead = context.crm_for(account).get_lead(lead_id)
        active = lead is not None and not lead.closed
        arrived = datetime.fromtimestamp(float(state["arrived"]), timezone.utc)
        if active and _contact_in_crm(account, lead_id, arrived):
            contacted = True
    else:
        active = True
    decision = fc.on_timer(stage, contacted, now, due, active)
    if decision.outcome in ("contacted", "gone", "early"):
        if decision.outcome == "gone":
            context.redis_client().zrem(_k(account, "pending"), str(lead_id))
        return {"outcome": decision.outcome}
    crm = context.crm_for(account)
    manager = person(account, lead.responsible_id)
    cal = context.calendar(account)
    values = {"manager": (manager or {}).get("name", ""), "lead_link": crm.lead_url(lead_id),
              "lead_name": lead.name or state.get("name") or f"Сделка {lead_id}",
              "source": state.get("source") or "—", "count": "", "list": "",
              "deadline": datetime.fromtimestamp(float(state.get("deadline") or deadline), timezone.utc)
              .astimezone(cal.tz).strftime("%d.%m.%Y %H:%M")}
    base = f"{fc.RULE}:{lead_id}"
    t = s.texts
    if decision.outcome == "alert":
        alert(account, messenger_for(account), manager, t.alert_subject.format(**values),
              t.alert_text.format(**values), action_key=f"{base}:alert", lead_id=lead_id,
              note=t.note_text.format(**values))
        violations.record(context.redis_client(), account, violations.Violation(
            rule=fc.RULE, key=base, at=deadline, manager_id=lead.responsible_id, lead_id=lead_id,
            link=values["lead_link"], details=t.violation_text.format(**values),
            extra={"source": values["source"]}))
        metrics.incr(context.redis_client(), account, "rule_actions_total", rule=fc.RULE, action="alert")
        at = fc.escalation_at(due, s, cal)
        if at is not None:
            _schedule(account, lead_id, fc.ESCALATE, at)
        return {"outcome": "alert", "lateness": (now - due).total_seconds()}
    head = head_of(account, values["manager"]) if manager else None
    alert(account, messenger_for(account), head, t.escalation_subject.format(**values),
          t.escalation_text.format(**values), action_key=f"{base}:escalate", lead_id=lead_id)
    return {"outcome": "escalate"}


# ---------------------------------------------------------------- statistics

def first_contact_stats(account: str, start: datetime, end: datetime, *, working: bool = False,
                        r=None) -> dict[int | None, dict]:
    """Per manager (CRM user id): {"count", "median", "p90"} of the seconds from lead creation
    to first contact, for first contacts made in [start, end). `working=True` counts only
    working time on the account's calendar."""
    r = r or context.redis_client()
    ids = r.zrangebyscore(_k(account, "ttfc"), start.timestamp(), f"({end.timestamp()}")
    if not ids:
        return {}
    durations: dict[int | None, list[float]] = defaultdict(list)
    for raw in r.hmget(_k(account, "ttfc", "data"), ids):
        if raw:
            d = json.loads(raw)
            durations[d["manager"]].append(d["working_seconds" if working else "seconds"])
    return fc.stats(durations)


# ---------------------------------------------------------------- the shift-start list

def untouched(account: str, now: datetime | None = None) -> dict[int | None, list[fc.QueueItem]]:
    """Each responsible user's untouched leads (no contact yet), in priority order."""
    now = now or _now()
    s = dsettings(account)
    r = context.redis_client()
    pending = _k(account, "pending")
    r.zremrangebyscore(pending, "-inf", (now - timedelta(days=s.queue_days)).timestamp())
    ids = [int(i) for i in r.zrange(pending, 0, -1)]
    if not ids:
        return {}
    crm = context.crm_for(account)
    leads = crm.get_leads(ids)
    by_manager: dict[int | None, list[fc.QueueItem]] = defaultdict(list)
    for lead_id in ids:
        lead = leads.get(lead_id)
        if lead is None or lead.closed:
            r.zrem(pending, str(lead_id))
            continue
        st = _lead_state(account, lead_id)
        if not st.get("arrived") or st.get("contacted_at"):
            r.zrem(pending, str(lead_id))
            continue
        item = fc.QueueItem(lead_id=lead_id, name=lead.name or st.get("name") or "",
                            arrived=datetime.fromtimestamp(float(st["arrived"]), timezone.utc),
                            source=st.get("source") or "—", priority=int(st.get("priority") or 100),
                            is_new=lead.stage == st.get("status_id"),
                            responsible_id=lead.responsible_id, link=crm.lead_url(lead_id))
        by_manager[item.responsible_id].append(item)
    return {m: fc.order_queue(items, s) for m, items in by_manager.items()}


def shift_text(account: str, manager: str, items: list[fc.QueueItem]) -> tuple[str, str]:
    s = dsettings(account)
    tz = context.calendar(account).tz
    lines = "\n".join(fc.queue_line(n, i, tz) for n, i in enumerate(items, 1))
    values = {"manager": manager, "count": len(items), "list": lines, "lead_link": "", "lead_name": "",
              "source": "", "deadline": ""}
    text = (s.texts.shift_start_text if items else s.texts.shift_start_empty).format(**values)
    return s.texts.shift_start_subject.format(**values), text


def shift_start_job(account: str, now: datetime | None = None) -> dict:
    """Message each manager whose shift has just opened with their untouched leads."""
    now = now or _now()
    s = dsettings(account)
    if not dist.group_active(s) or not s.shift_start_message:
        return {"skipped": "disabled"}
    r = context.redis_client()
    cal = context.calendar(account)
    absent = shifts.absences(r, account)
    opened = []
    for m in s.managers:
        start = shifts.schedule_for(m, cal).shift_start(now)
        if start is None or shifts.is_absent(absent, m.name, now):
            continue
        mark = _k(account, "shift", norm(m.name))
        if r.getset(mark, start.timestamp()) == str(start.timestamp()).encode() \
                or (now - start).total_seconds() > SHIFT_MESSAGE_WINDOW:
            continue
        opened.append(m)
    if not opened:
        return {"messaged": []}
    sent = []
    try:
        users = context.crm_for(account).users()
        queue = untouched(account, now)
        for m in opened:
            uid = dist.user_id(users, m.name)
            if uid is None:
                continue
            subject, text = shift_text(account, m.name, queue.get(uid, []))
            start = shifts.schedule_for(m, cal).shift_start(now)
            messenger_for(account).alert_person({"name": m.name, "id": str(uid)}, subject, text,
                                                action_key=f"SHIFT_START:{uid}:{int(start.timestamp())}")
            sent.append(m.name)
    except Exception:
        # The job's retry (jobs/scheduler.py) sends what was not sent: unmark those shifts.
        r.delete(*(_k(account, "shift", norm(m.name)) for m in opened if m.name not in sent))
        raise
    return {"messaged": sent}


def register_periodic(settings) -> None:
    PERIODIC[:] = [e for e in PERIODIC if e[0] is not shift_start_job]
    from reglament import rule_settings

    for account in settings.accounts:
        s = rule_settings.load(account.rules).distribution
        if registry.supported(account) and dist.group_active(s) and s.shift_start_message:
            PERIODIC.append((shift_start_job, SHIFT_INTERVAL, {"account": account.id}))
