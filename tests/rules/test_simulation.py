"""Sixty days of one lead under every pair of rules that can act on it at once.

A small world applies the pure rules' actions as the executor does (each key once, our own
tasks remembered), a manager and a client act on the working calendar, and after every step
the lead has exactly one open task while it is active (seed 003: «у каждого клиента всегда
одна текущая задача») and none of Reglament's once it is closed. Each scenario ends where
the regulations say.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import pytest

from jobs.rules import decide_all, incubator, missed_call, overdue, unpaid_invoice
from jobs.rules.redial import running
from reglament.crm import (CALL_FAILED, CALL_TALKED, LEAD_STATUS_CHANGED, REDIAL_ATTEMPT, SWEEP, TASK_UPDATED,
                           AddNote, Call, CallDirection, CallStatus, CompleteTask, CreateTask, Lead, LeadSnapshot,
                           RecheckAt, RuleEvent, SetLeadField, SetLeadStatus, SetTaskDue, Task)
from reglament.rule_settings import RuleSettings
from tests.rules.rule_factory import CAL, LEAD_ID, MANAGER, m

SETTINGS = RuleSettings()
START = m(2026, 3, 2, 9, 0)  # a Monday
STEP = timedelta(minutes=30)
DAYS = 60


@dataclass
class World:
    """One lead in a CRM, and the executor's memory of keys applied and tasks made."""
    lead: Lead
    tasks: dict[int, Task] = field(default_factory=dict)
    own: set[int] = field(default_factory=set)
    applied: set[str] = field(default_factory=set)
    rechecks: list[datetime] = field(default_factory=list)
    invoice: dict = field(default_factory=dict)   # custom values the discipline rules read
    next_id: int = 1000
    log: list[str] = field(default_factory=list)

    def open_tasks(self) -> tuple[Task, ...]:
        return tuple(sorted((t for t in self.tasks.values() if not t.is_completed), key=lambda t: t.id))

    def snapshot(self) -> LeadSnapshot:
        open_tasks = self.open_tasks()
        return LeadSnapshot(lead=self.lead, open_tasks=open_tasks, last_task_id=max(self.tasks, default=None),
                            own_task_ids=frozenset(t.id for t in open_tasks if t.id in self.own))

    def active(self) -> bool:
        return not self.lead.closed and self.lead.status not in SETTINGS.terminal_statuses

    def apply(self, actions, now: datetime) -> list[RuleEvent]:
        """Apply each key once; the events the changes would send back (a status moved by us)."""
        echoes = []
        for a in actions:
            if a.action_key in self.applied:
                continue
            self.applied.add(a.action_key)
            if isinstance(a, CreateTask):
                self.next_id += 1
                self.tasks[self.next_id] = Task(id=self.next_id, lead_id=LEAD_ID, text=a.text, task_type=a.task_type,
                                                due=a.due, responsible_id=a.responsible_id, created_at=now)
                self.own.add(self.next_id)
                self.log.append(f"{now:%d.%m %H:%M} + «{a.text}» due {a.due:%d.%m %H:%M} [{a.rule}]")
            elif isinstance(a, CompleteTask):
                self.tasks[a.task_id] = replace(self.tasks[a.task_id], is_completed=True, result=a.result)
                self.log.append(f"{now:%d.%m %H:%M} ✓ «{self.tasks[a.task_id].text}»: {a.result} [{a.rule}]")
            elif isinstance(a, SetTaskDue):
                self.tasks[a.task_id] = replace(self.tasks[a.task_id], due=a.due)
            elif isinstance(a, SetLeadField):
                self.lead = replace(self.lead, fields={**self.lead.fields, a.field: a.value})
            elif isinstance(a, SetLeadStatus):
                self.lead = replace(self.lead, status=a.status)
                self.log.append(f"{now:%d.%m %H:%M} → {a.status} [{a.rule}]")
                echoes.append(RuleEvent(kind=LEAD_STATUS_CHANGED, lead_id=LEAD_ID, at=now))
            elif isinstance(a, RecheckAt):
                self.rechecks.append(a.at)
            elif not isinstance(a, AddNote):
                raise TypeError(a)
        return echoes

    def run_rules(self, event: RuleEvent, now: datetime) -> None:
        """The task rules for one event, then for the events our own changes send back."""
        queue = [event]
        while queue:
            ev = queue.pop(0)
            queue += self.apply(decide_all(ev, self.snapshot(), SETTINGS, CAL, now), now)

    def discipline_sweep(self, now: datetime) -> None:
        s, snap = SETTINGS.discipline, self.snapshot()
        if not self.active():
            return
        for t in snap.open_tasks:  # OVERDUE reminds and escalates; it never opens a task
            assert not overdue.decide(t, s, CAL, now, CAL.tz).actions
        out = incubator.decide(snap, None, SETTINGS.terminal_statuses, s, now, "", running(self.lead, SETTINGS))
        out += unpaid_invoice.decide(LEAD_ID, MANAGER, self.invoice.get("status"), self.invoice.get("due"), None, s,
                                     CAL, now, now.astimezone(CAL.tz).date(), "", snap.open_tasks, snap.own_task_ids)
        for echo in self.apply(out.actions, now):
            self.run_rules(echo, now)

    # --- people
    def complete(self, task: Task, result: str, now: datetime) -> None:
        self.tasks[task.id] = replace(task, is_completed=True, result=result)
        self.log.append(f"{now:%d.%m %H:%M} ✓ «{task.text}»: {result} [manager]")
        self.run_rules(RuleEvent(kind=TASK_UPDATED, lead_id=LEAD_ID, at=now, task=self.tasks[task.id]), now)

    def move(self, status: str, now: datetime, **fields) -> None:
        self.lead = replace(self.lead, status=status, fields={**self.lead.fields, **fields})
        self.log.append(f"{now:%d.%m %H:%M} → {status} [manager]")
        self.run_rules(RuleEvent(kind=LEAD_STATUS_CHANGED, lead_id=LEAD_ID, at=now), now)

    def call(self, status: CallStatus, now: datetime, duration: int = 0) -> None:
        c = Call(id=f"c{now:%m%d%H%M}", direction=CallDirection.OUT, status=status, at=now, duration=duration)
        self.log.append(f"{now:%d.%m %H:%M} ☎ {status.value} [manager]")
        self.run_rules(RuleEvent(kind=CALL_TALKED if status is CallStatus.TALKED else CALL_FAILED, lead_id=LEAD_ID,
                                 at=now, call=c), now)

    def missed_call(self, now: datetime) -> None:
        snap = self.snapshot()
        facts = missed_call.MissedFacts(call_id=f"in{now:%m%d%H%M}", phone="79990001122", at=now, lead_id=LEAD_ID,
                                        responsible_id=MANAGER, open_tasks=snap.open_tasks,
                                        own_task_ids=snap.own_task_ids)
        self.log.append(f"{now:%d.%m %H:%M} ☎ missed incoming [client]")
        self.apply(missed_call.decide(facts, SETTINGS.calls.missed_call, CAL, now).actions, now)


# --- the manager's habits: what they do when the lead's task is due ------------------------

def never_reached(w: World, task: Task, now: datetime) -> None:
    w.call(CallStatus.NOT_REACHED, now)
    w.complete(task, "не дозвонился", now)


def reached_on(day: int):
    def act(w: World, task: Task, now: datetime) -> None:
        if (now - START).days < day:
            return never_reached(w, task, now)
        w.call(CallStatus.TALKED, now, 120)
        w.complete(task, "Записали на пробное", now)
        if w.lead.status in ("Недозвон", "Новая заявка", "Инкубатор"):
            w.move("Записался на пробное", now, trial_at=now + timedelta(days=3))
    return act


def thinks_forever(w: World, task: Task, now: datetime) -> None:
    w.call(CallStatus.TALKED, now, 60)
    w.complete(task, "Думает", now)


def does_nothing(w: World, task: Task, now: datetime) -> None:
    pass


@dataclass(frozen=True)
class Scenario:
    rules: str                     # the pair of rules that meet
    status: str                    # where the lead starts
    manager: object                # what the manager does when a task is due
    ends: str                      # the status the regulations end it in
    missed_calls: tuple[int, ...] = ()  # days on which the client calls and is missed
    invoice_due: int | None = None      # day an unpaid invoice falls due


SCENARIOS = [
    pytest.param(Scenario("REDIAL × INCUBATOR", "Недозвон", never_reached, "Отказ"), id="redial-incubator"),
    pytest.param(Scenario("REDIAL × NEXT_TASK", "Недозвон", reached_on(9), "Записался на пробное"),
                 id="redial-reached"),
    pytest.param(Scenario("REDIAL × MISSED_CALL", "Недозвон", never_reached, "Отказ", missed_calls=(2, 12)),
                 id="redial-missed-call"),
    pytest.param(Scenario("NEXT_TASK × INCUBATOR", "Новая заявка", thinks_forever, "Инкубатор"),
                 id="next-task-incubator"),
    pytest.param(Scenario("OVERDUE × INCUBATOR", "Новая заявка", does_nothing, "Инкубатор"), id="overdue-incubator"),
    pytest.param(Scenario("NEXT_TASK × UNPAID_INVOICE", "Принимает решение", thinks_forever, "Принимает решение",
                          invoice_due=4), id="next-task-unpaid-invoice"),
    pytest.param(Scenario("MISSED_CALL × UNPAID_INVOICE", "Принимает решение", thinks_forever, "Принимает решение",
                          missed_calls=(6, 7, 20), invoice_due=5), id="missed-call-unpaid-invoice"),
    pytest.param(Scenario("MISSED_CALL × INCUBATOR", "Новая заявка", does_nothing, "Инкубатор",
                          missed_calls=(3, 33, 40)), id="missed-call-incubator"),
]


@pytest.mark.parametrize("sc", SCENARIOS)
def test_sixty_days_one_current_task(sc: Scenario):
    w = World(lead=Lead(id=LEAD_ID, name="Иван", stage=sc.status, status=sc.status, pipeline="1",
                        responsible_id=MANAGER, created_at=START))
    if sc.invoice_due is not None:
        w.invoice = {"status": "Выставлен", "due": (START + timedelta(days=sc.invoice_due)).date()}
    w.run_rules(RuleEvent(kind=LEAD_STATUS_CHANGED, lead_id=LEAD_ID, at=START), START)
    missed = {START.date() + timedelta(days=d) for d in sc.missed_calls}
    now = START
    while now < START + timedelta(days=DAYS):
        now += STEP
        for at in [r for r in w.rechecks if r <= now]:
            w.rechecks.remove(at)
            w.run_rules(RuleEvent(kind=SWEEP, lead_id=LEAD_ID, at=now), now)
        if CAL.is_working(now):
            local = now.astimezone(CAL.tz)
            if local.date() in missed and local.hour == 11 and local.minute == 0 and w.active():
                w.missed_call(now)
            due = [t for t in w.open_tasks() if t.due <= now]
            if due and w.active():
                sc.manager(w, due[0], now)
            if local.hour == 10 and local.minute == 0:
                w.discipline_sweep(now)
        w.run_rules(RuleEvent(kind=SWEEP, lead_id=LEAD_ID, at=now), now)  # the task sweep
        open_now = w.open_tasks()
        history = "\n".join(w.log[-12:])
        if w.active():
            assert len(open_now) == 1, f"{sc.rules}, {now:%d.%m %H:%M}: {len(open_now)} open tasks\n{history}"
        else:
            assert not [t for t in open_now if t.id in w.own], f"{sc.rules}: our task left on a closed lead\n{history}"
    assert w.lead.status == sc.ends, "\n".join(w.log[-20:])
    if sc.ends == "Отказ":
        assert w.lead.fields[REDIAL_ATTEMPT] == "Н7"


def test_the_invoice_reminder_and_the_callback_took_turns_as_the_one_task():
    """The scenario above is not vacuous: both rules did make their task."""
    w = World(lead=Lead(id=LEAD_ID, name="Иван", stage="s", status="Принимает решение", pipeline="1",
                        responsible_id=MANAGER, created_at=START))
    w.invoice = {"status": "Выставлен", "due": date(2026, 3, 3)}
    w.run_rules(RuleEvent(kind=LEAD_STATUS_CHANGED, lead_id=LEAD_ID, at=START), START)
    w.discipline_sweep(m(2026, 3, 4, 10, 0))
    assert [t.text for t in w.open_tasks()] == [SETTINGS.discipline.unpaid_invoice.task]
    w.missed_call(m(2026, 3, 4, 11, 0))
    assert [t.text for t in w.open_tasks()] == ["Перезвонить"]
