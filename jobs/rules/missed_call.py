"""MISSED_CALL as pure functions: what to do about a missed incoming call, and about a later
conversation with the same client.

Nothing here reads or writes; jobs/handlers/calls.py gathers the facts and applies the plan.
Action keys come from the call id, so the same missed call delivered again plans the same keys
(the executor applies each key once, the messenger sends each key once).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from reglament.calls_settings import MissedCall
from reglament.calendar import WorkCalendar
from jobs.rules.one_task import replace_own
from reglament.crm import Action, CompleteTask, CreateLead, CreateTask, Task, action_key

RULE = "MISSED_CALL"


def call_ref(call_id: str) -> str:
    """A short stable part of a key for a call id of any length or alphabet."""
    return hashlib.sha1(str(call_id).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MissedFacts:
    call_id: str
    phone: str | None                     # digits
    at: datetime                          # when the call was missed (aware)
    lead_id: int | None                   # the client's open lead, None when there is none
    responsible_id: int | None = None  # the lead's (or, with no lead, the contact's) responsible user
    contact_id: int | None = None         # with no open lead: the contact that has the number, if any
    open_tasks: tuple[Task, ...] = ()     # the lead's open tasks
    own_task_ids: frozenset[int] = frozenset()  # which of them Reglament made
    client_messaged_recently: bool = False  # a missed-call message went to this client within the window


@dataclass(frozen=True)
class ClientMessage:
    phone: str
    action_key: str
    send_at: datetime                     # now, or the shift's opening at night


@dataclass(frozen=True)
class MissedPlan:
    actions: tuple[Action, ...] = ()
    message: ClientMessage | None = None
    alert_key: str | None = None          # alert the responsible manager under this key...
    alert_at: datetime | None = None      # ...now, or at the shift's opening at night
    needs_lead: bool = False              # CreateLead first, then plan again with the new lead
    why: str = ""


def is_callback_task(task: Task, settings: MissedCall) -> bool:
    from reglament.names import norm

    return not task.is_completed and norm(task.text).startswith(norm(settings.task_text))


def decide(facts: MissedFacts, settings: MissedCall, calendar: WorkCalendar, now: datetime) -> MissedPlan:
    if not settings.enabled:
        return MissedPlan(why="disabled")
    ref = call_ref(facts.call_id)
    if facts.lead_id is None:
        if settings.create_lead_for_unknown and facts.phone:
            return MissedPlan(actions=(CreateLead(
                name=settings.new_lead_name.replace("{phone}", f"+{facts.phone}"), phone=f"+{facts.phone}",
                contact_id=facts.contact_id, responsible_id=facts.responsible_id,
                action_key=f"{RULE}:new:{ref}:lead"),), needs_lead=True,
                why="a returning client: a new lead first" if facts.contact_id else "unknown number: a new lead first")
        return MissedPlan(why="no lead for this number")
    actions: list[Action] = []
    due = calendar.next_opening(now)
    why = ""
    if not any(is_callback_task(t, settings) for t in facts.open_tasks):
        # The callback becomes the lead's one current task; a manager's own task stays, and
        # the alert (or its note) tells them to call back.
        callback = CreateTask(lead_id=facts.lead_id, text=settings.task_text, task_type=settings.task_type,
                              due=due, responsible_id=facts.responsible_id,
                              action_key=action_key(RULE, facts.lead_id, ref, "task"))
        replaced = replace_own(callback, facts.open_tasks, facts.own_task_ids, settings.replaced_result)
        actions += replaced or []
        why = "" if replaced is not None else "the manager's own task stays the lead's one task"
    message = None
    if settings.message_client and facts.phone and not facts.client_messaged_recently:
        message = ClientMessage(phone=facts.phone, action_key=f"{RULE}:{ref}:client",
                                send_at=due)
    # At night the manager's alert waits for the shift too: the callback is due then, and
    # nobody should be woken for it.
    alert = action_key(RULE, facts.lead_id, ref, "alert") if settings.alert_manager else None
    return MissedPlan(actions=tuple(actions), message=message, alert_key=alert, alert_at=due if alert else None,
                      why=why)


def close_callbacks(lead_id: int, open_tasks: tuple[Task, ...], call_id: str, settings: MissedCall) -> list[Action]:
    """A conversation with the client (talked, either direction) closes the open callback tasks."""
    if not settings.enabled:
        return []
    return [CompleteTask(task_id=t.id, lead_id=lead_id, result=settings.close_result,
                         action_key=action_key(RULE, lead_id, "close", t.id))
            for t in open_tasks if is_callback_task(t, settings)]


def client_name_part(name: str | None) -> str:
    """«, Иван» for the greeting, or nothing."""
    name = (name or "").strip()
    return f", {name}" if name else ""


__all__ = ["RULE", "MissedFacts", "MissedPlan", "ClientMessage", "decide", "close_callbacks", "call_ref",
           "is_callback_task", "client_name_part"]
