"""New leads: DISTRIBUTION, FIRST_CONTACT_SLA, the shift-start list (GitHub issue "New leads:
even distribution among managers on shift, first contact in time, shift-start priorities").

Events
- lead.added in the configured pipeline and status → the lead is remembered (arrival time,
  the responsible it came with, its source); it gets the next manager on shift by smooth
  weighted round robin (reglament.shifts.take_turn, one Lua script that also records the
  pick for the lead), or the fallback user; and its first-contact timer starts
  (jobs/timers.py, id fc-<account>-<lead>-<stage>).
- lead.responsible_changed to someone other than our pick → a person chose: never reassigned.
- note.added by a person (a common note, a call note, an SMS), chat.message_out (Wazzup),
  call.* from telephony → the lead's first contact: its time is recorded, the timer cancelled.
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

from jobs import context, timers
from jobs.router import on
from jobs.support import alert, messenger_for
from jobs.support import moment as _moment
from jobs.support import phone_digits as _digits
from jobs.rules import distribution as dist
from jobs.rules import first_contact as fc
from reglament.distribution_settings import DistributionSettings
from jobs.scheduler import PERIODIC
from reglament import keys, metrics, shifts, violations
from reglament.events import Event

log = logging.getLogger("reglament.distribution")

KEEP = 45 * 86400
WON, LOST = 142, 143
SHIFT_INTERVAL = 60            # seconds between looks for opened shifts
SHIFT_MESSAGE_WINDOW = 3600    # a shift opened longer ago than this gets no message any more


# ---------------------------------------------------------------- helpers

def _now() -> datetime:
    return datetime.now(timezone.utc)


def _k(account: str, *parts: object) -> str:
    return keys.key(account, "dist", *parts)






def dsettings(account: str) -> DistributionSettings:
    return context.rules(account).distribution






def _amocrm(account: str) -> bool:
    return context.account(account).crm == "amocrm"


def target(account: str) -> tuple[int, int] | None:
    """(pipeline id, status id) where new leads arrive."""
    s = dsettings(account)
    crm = context.crm_for(account)
    names = crm.names()
    pipeline_name = s.pipeline or context.rules(account).pipeline
    if pipeline_name:
        pipeline = dist.user_id(names.pipelines, pipeline_name)  # any id → name map works
    else:
        pipeline = next(iter(names.pipelines), None)
    if pipeline is None:
        return None
    statuses = names.statuses.get(pipeline, {})
    if s.status:
        status = dist.user_id(statuses, s.status)
    else:
        status = next((i for i, n in statuses.items()
                       if i not in (WON, LOST) and shifts.norm(n) != "неразобранное"), None)
    return (pipeline, status) if status is not None else None


def integration_user(account: str) -> int | None:
    """The CRM user the API token acts as (its notes are Reglament's, not a person's)."""
    r = context.redis_client()
    got = r.get(_k(account, "me"))
    if got is not None:
        return int(got) or None
    me = int((context.crm_for(account).client.account() or {}).get("current_user_id") or 0)
    r.set(_k(account, "me"), me, ex=86400)
    return me or None


def _lead_state(account: str, lead_id: int) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in context.redis_client().hgetall(_k(account, "lead", lead_id)).items()}


def _person(account: str, user_id: int | None) -> dict | None:
    if not user_id:
        return None
    return {"name": context.crm_for(account).user_name(user_id) or str(user_id), "id": str(user_id)}


def _head(account: str, manager_name: str) -> dict | None:
    for dept in context.account(account).departments:
        if any(shifts.norm(m) == shifts.norm(manager_name) for m in dept.managers):
            head_id = dist.user_id(context.crm_for(account).names().users, dept.head)
            return {"name": dept.head, "id": str(head_id) if head_id else None}
    return None


# ---------------------------------------------------------------- lead.added

@on("lead.added", name="distribution")
def lead_added(event: Event, now: datetime | None = None) -> dict:
    if event.source != "amocrm" or not _amocrm(event.account):
        return {"skipped": "not amoCRM"}
    account, f = event.account, event.fields
    s = dsettings(account)
    if not dist.group_active(s) and not s.first_contact_enabled:
        return {"skipped": "disabled"}
    tgt = target(account)
    if tgt is None or (f.get("pipeline_id"), f.get("status_id")) != tgt:
        return {"skipped": "not a new lead of the configured pipeline and status"}
    now = now or _now()
    lead_id = int(event.entity_id)
    arrived = _moment(f.get("created_at")) or now
    original = f.get("responsible_user_id")
    crm = context.crm_for(account)
    candidates = [fc.field_value(f.get("custom_fields"), s.source_field),
                  fc.field_value(f.get("custom_fields"), s.utm_field),
                  crm.names().pipelines.get(tgt[0])]
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
    users = crm.names().users
    ex = context.executor_for(account)
    lock = ex.lock(lead_id)
    if not lock.acquire(blocking=True, blocking_timeout=ex.lock_wait):
        from jobs.executor import LeadBusy
        raise LeadBusy(f"lead {lead_id} of {account} stayed locked")
    try:
        raw = crm.client.get_lead(lead_id, with_contacts=False)
        if not raw or raw.get("is_deleted"):
            return "the lead is gone"
        current = raw.get("responsible_user_id")
        manual = bool(r.exists(_k(account, "manual", lead_id)))
        pick = shifts.recorded_pick(r, account, lead_id)
        if pick is None and not manual and (original is None or current == original):
            # The turn is taken only for a lead we will assign: a lead a person took keeps its turn free.
            duty = dist.on_duty(s.managers, context.calendar(account), shifts.absences(r, account), now)
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
    if event.source != "amocrm":
        return {"skipped": "not amoCRM"}
    account, lead_id = event.account, int(event.entity_id)
    new = event.fields.get("responsible_user_id")
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


@on("note.added", name="first_contact")
def note_added(event: Event) -> dict:
    f = event.fields
    if event.source != "amocrm" or f.get("parent_type") != "lead" or not f.get("parent_id"):
        return {"skipped": "not a lead note"}
    account, lead_id = event.account, int(f["parent_id"])
    if not context.redis_client().exists(_k(account, "lead", lead_id)):
        return {"skipped": "not a watched lead"}
    s = dsettings(account)
    me = integration_user(account) if f.get("note_type") not in ("call_in", "call_out") else None
    if not fc.note_is_contact(f, s, me):
        return {"skipped": "not a contact"}
    at = _moment(f.get("created_at")) or _now()
    author = f.get("created_by") if f.get("created_by") and f.get("created_by") != me else None
    return {"contact": record_contact(account, lead_id, at, author, f"note:{f.get('note_type')}")}


def _pending_leads_of_phone(account: str, phone: str | None) -> list[int]:
    r = context.redis_client()
    if not phone or not r.zcard(_k(account, "pending")):
        return []
    found = []
    for contact in context.crm_for(account).client.find_contacts_by_phone(phone, with_leads=True):
        for lead in (contact.get("_embedded") or {}).get("leads") or []:
            if r.zscore(_k(account, "pending"), str(lead["id"])) is not None:
                found.append(int(lead["id"]))
    return found


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


@on("call.outgoing_answered", "call.outgoing_failed", "call.incoming_answered", name="first_contact")
def call_event(event: Event) -> dict:
    f = event.fields
    at = _moment(f.get("started_at")) or _now()
    return {"contacts": [lid for lid in _pending_leads_of_phone(event.account, _digits(f.get("client_phone")))
                         if record_contact(event.account, lid, at, None, event.kind)]}


def _contact_in_crm(account: str, lead_id: int, arrived: datetime) -> datetime | None:
    """The earliest contact note of the lead since it arrived (a webhook may have been lost)."""
    s = dsettings(account)
    me = integration_user(account)
    found = []
    for n in context.crm_for(account).client.notes("leads", entity_ids=[lead_id], note_types=s.contact_note_types):
        params = n.get("params") or {}
        fields = {"parent_type": "lead", "note_type": n.get("note_type"), "created_by": n.get("created_by"),
                  "call": {"duration": params.get("duration"), "call_status": params.get("call_status")}}
        at = _moment(n.get("created_at"))
        if at and at >= arrived - timedelta(seconds=1) and fc.note_is_contact(fields, s, me):
            found.append((at, n.get("created_by")))
    if not found:
        return None
    at, by = min(found, key=lambda x: x[0])
    record_contact(account, lead_id, at, by if by and by != me else None, "note (found by the timer)")
    return at


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
    raw = None
    if not contacted:
        raw = context.crm_for(account).client.get_lead(lead_id, with_contacts=False)
        active = bool(raw) and not raw.get("is_deleted") and raw.get("status_id") not in (WON, LOST)
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
    manager = _person(account, raw.get("responsible_user_id"))
    cal = context.calendar(account)
    values = {"manager": (manager or {}).get("name", ""), "lead_link": crm.lead_url(lead_id),
              "lead_name": raw.get("name") or state.get("name") or f"Сделка {lead_id}",
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
            rule=fc.RULE, key=base, at=deadline, manager_id=raw.get("responsible_user_id"), lead_id=lead_id,
            link=values["lead_link"], details=t.violation_text.format(**values),
            extra={"source": values["source"]}))
        metrics.incr(context.redis_client(), account, "rule_actions_total", rule=fc.RULE, action="alert")
        at = fc.escalation_at(due, s, cal)
        if at is not None:
            _schedule(account, lead_id, fc.ESCALATE, at)
        return {"outcome": "alert", "lateness": (now - due).total_seconds()}
    head = _head(account, values["manager"]) if manager else None
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
    raws = {}
    for i in range(0, len(ids), 250):
        for raw in crm.client.leads(ids=ids[i:i + 250]):
            raws[int(raw["id"])] = raw
    by_manager: dict[int | None, list[fc.QueueItem]] = defaultdict(list)
    for lead_id in ids:
        raw = raws.get(lead_id)
        if raw is None or raw.get("is_deleted") or raw.get("status_id") in (WON, LOST):
            r.zrem(pending, str(lead_id))
            continue
        st = _lead_state(account, lead_id)
        if not st.get("arrived") or st.get("contacted_at"):
            r.zrem(pending, str(lead_id))
            continue
        item = fc.QueueItem(lead_id=lead_id, name=raw.get("name") or st.get("name") or "",
                            arrived=datetime.fromtimestamp(float(st["arrived"]), timezone.utc),
                            source=st.get("source") or "—", priority=int(st.get("priority") or 100),
                            is_new=str(raw.get("status_id")) == st.get("status_id"),
                            responsible_user_id=raw.get("responsible_user_id"), link=crm.lead_url(lead_id))
        by_manager[item.responsible_user_id].append(item)
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
        mark = _k(account, "shift", shifts.norm(m.name))
        if r.getset(mark, start.timestamp()) == str(start.timestamp()).encode() \
                or (now - start).total_seconds() > SHIFT_MESSAGE_WINDOW:
            continue
        opened.append(m)
    if not opened:
        return {"messaged": []}
    users = context.crm_for(account).names().users
    queue = untouched(account, now)
    sent = []
    for m in opened:
        uid = dist.user_id(users, m.name)
        if uid is None:
            continue
        subject, text = shift_text(account, m.name, queue.get(uid, []))
        start = shifts.schedule_for(m, cal).shift_start(now)
        messenger_for(account).alert_person({"name": m.name, "id": str(uid)}, subject, text,
                                            action_key=f"SHIFT_START:{uid}:{int(start.timestamp())}")
        sent.append(m.name)
    return {"messaged": sent}


def register_periodic(settings) -> None:
    PERIODIC[:] = [e for e in PERIODIC if e[0] is not shift_start_job]
    from reglament import rule_settings

    for account in settings.accounts:
        s = rule_settings.load(account.rules).distribution
        if account.crm == "amocrm" and dist.group_active(s) and s.shift_start_message:
            PERIODIC.append((shift_start_job, SHIFT_INTERVAL, {"account": account.id}))
