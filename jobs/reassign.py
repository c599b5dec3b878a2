"""An absent manager's leads handed to the managers on shift (`reglament absent <manager>
--reassign`; seed 000: the head redistributes the leads of a manager who is away).

Every active lead of the manager goes, with the manager's open tasks on it, to the next
manager on shift by DISTRIBUTION's own turn: the group's managers on shift and not absent,
by smooth weighted round robin (reglament.shifts.take_turn, sharing the weights new leads
use), else the fallback user. Each lead gets a short note saying why.

It reads and writes only through the account's CRM interface, in pages and batches. Each
lead's pick is recorded and its actions have keys of their own (per manager and absence),
so running it again, or after a crash, changes nothing twice and gives no lead a second
turn; a lead it has handed over is no longer the manager's and is not looked at again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from jobs import context
from jobs.rules import distribution as dist
from reglament import keys, shifts
from reglament.crm import AddNote, Lead, SetResponsible, SetTaskResponsible, action_key
from reglament.names import norm

log = logging.getLogger("reglament.reassign")

RULE = "REASSIGN"
CHUNK = 50  # leads handed over together: one batch of lead updates, of task updates, of notes


class NobodyOnShift(Exception):
    """No manager of the group is on shift now and there is no fallback user."""


@dataclass(frozen=True)
class Handed:
    lead_id: int
    name: str
    to: int
    tasks: int


@dataclass
class Reassignment:
    manager: str
    handed: list[Handed] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)   # leads another job held: run again later
    kept: list[int] = field(default_factory=list)   # handed over in this absence already, and given back by a person

    @property
    def tasks(self) -> int:
        return sum(h.tasks for h in self.handed)


def note_text(manager: str, to: str, tasks: int) -> str:
    moved = f" вместе с задачами ({tasks})" if tasks else ""
    return f"Reglament: менеджер {manager} отсутствует — сделка{moved} передана менеджеру {to}."


def reassign(account: str, manager: str, now: datetime | None = None) -> Reassignment:
    """Hand `manager`'s active leads and their open tasks to the managers on shift now."""
    now = now or datetime.now(timezone.utc)
    s = context.rules(account).distribution
    crm = context.crm_for(account)
    r = context.redis_client()
    users = crm.users()
    uid = dist.user_id(users, manager)
    if uid is None:
        raise ValueError(f"«{manager}» is not a user of the CRM")
    absences = shifts.absences(r, account)
    duty = [m for m in dist.on_duty(s.managers, context.calendar(account), absences, now) if norm(m.name) != norm(manager)]
    eligible = dist.eligible_ids(duty, users)
    fallback = dist.user_id(users, s.fallback_user)
    if not eligible and fallback in (None, uid):
        raise NobodyOnShift("nobody of the group is on shift and there is no fallback user")
    # One absence, one handing over: its keys and picks carry the absence's start.
    absence = absences.get(norm(manager))
    tag = f"{uid}-{int(absence.start.timestamp()) if absence and absence.end > now else now.date().isoformat()}"

    leads = [lead for lead in crm.active_leads() if lead.responsible_id == uid]
    done = Reassignment(manager)
    if not leads:
        return done
    wanted = {lead.id for lead in leads}
    tasks = defaultdict(list)
    for task in crm.all_open_tasks():
        if task.lead_id in wanted and task.responsible_id == uid:
            tasks[task.lead_id].append(task)
    for i in range(0, len(leads), CHUNK):
        _hand_over(account, leads[i:i + CHUNK], tasks, uid, tag, eligible, fallback if fallback != uid else None,
                   users, done)
    log.info("%s: %d leads and %d tasks handed over", manager, len(done.handed), done.tasks,
             extra={"account": account, "rule": RULE})
    return done


def _hand_over(account: str, leads: list[Lead], tasks, uid: int, tag: str, eligible, fallback, users,
               done: Reassignment) -> None:
    r = context.redis_client()
    ex = context.executor_for(account)
    notes = context.rules(account).notes
    locks, actions, handed = [], [], []
    try:
        for lead in leads:
            lock = ex.lock(lead.id)
            if not lock.acquire(blocking=True, blocking_timeout=ex.lock_wait):
                done.busy.append(lead.id)
                continue
            locks.append(lock)
            pick = shifts.take_turn(r, account, lead.id, eligible, fallback,
                                    key=keys.key(account, "dist", "reassign", tag, lead.id))
            shifts.record_pick(r, account, lead.id, pick)  # the change is ours, not a person's choice
            own = tasks.get(lead.id, [])
            actions.append(SetResponsible(lead_id=lead.id, user_id=pick,
                                          action_key=action_key(RULE, lead.id, tag, "lead")))
            actions += [SetTaskResponsible(task_id=t.id, lead_id=lead.id, user_id=pick,
                                           action_key=action_key(RULE, lead.id, tag, "task", t.id)) for t in own]
            if notes:
                actions.append(AddNote(lead_id=lead.id, action_key=action_key(RULE, lead.id, tag, "note"),
                                       text=note_text(users.get(uid, str(uid)), users.get(pick, str(pick)), len(own))))
            handed.append(Handed(lead.id, lead.name, pick, len(own)))
        todo = ex.unapplied(actions)
        ex.apply(todo)
        fresh = {a.lead_id for a in todo if isinstance(a, SetResponsible)}
        done.handed += [h for h in handed if h.lead_id in fresh]
        done.kept += [h.lead_id for h in handed if h.lead_id not in fresh]  # a person's choice wins
    finally:
        for lock in locks:
            try:
                lock.release()
            except Exception:  # noqa: BLE001 — expired: the keys cover a second run
                pass
