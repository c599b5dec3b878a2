"""The executor on its own: action keys applied once, the per-lead lock, the task-id memory.

A fake CRM stands in for amoCRM: a dict of leads, their open tasks, and a log of applies.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from jobs import sweep
from jobs.executor import Executor, LeadBusy
from reglament.rule_settings import RuleSettings
from reglament import keys
from reglament.calendar import WorkCalendar
from reglament.crm import (LEAD_STATUS_CHANGED, TASK_DELETED, AddNote, CreateTask, Lead, LeadSnapshot, RuleEvent,
                           SnapshotPage, Task)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
CAL = WorkCalendar("Europe/Moscow", {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})


class FakeCRM:
    def __init__(self):
        self.leads: dict[int, Lead] = {}
        self.tasks: dict[int, list[Task]] = {}
        self.applied: list[list] = []
        self.fail_next = False
        self.next_id = 1000
        self.slow = 0.0

    def add(self, lead_id: int, status: str = "Принимает решение") -> None:
        self.leads[lead_id] = Lead(id=lead_id, stage="1", status=status, pipeline="1", responsible_id=7)
        self.tasks[lead_id] = []

    def get_lead_snapshot(self, lead_id):
        lead = self.leads.get(lead_id)
        if lead is None:
            return None
        time.sleep(self.slow)
        tasks = tuple(self.tasks[lead_id])
        return LeadSnapshot(lead=lead, open_tasks=tasks, last_task_id=max((t.id for t in tasks), default=None))

    def list_active_leads_with_open_tasks(self, cursor=None):
        ids = sorted(self.leads)
        start = int(cursor or 0)
        chunk = ids[start:start + 2]
        more = start + 2 < len(ids)
        return SnapshotPage(tuple(self.get_lead_snapshot(i) for i in chunk), str(start + 2) if more else None)

    def apply(self, actions):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("CRM down")
        self.applied.append(list(actions))
        created = {}
        for a in actions:
            if isinstance(a, CreateTask):
                self.next_id += 1
                self.tasks[a.lead_id].append(Task(id=self.next_id, lead_id=a.lead_id, text=a.text, due=a.due))
                created[a.action_key] = self.next_id
        return created


@pytest.fixture
def crm():
    fake = FakeCRM()
    fake.add(1)
    return fake


@pytest.fixture
def executor(crm, r):
    return Executor("acme", crm, r, RuleSettings(), CAL, clock=lambda: NOW, lock_wait=0.3)


def moved(lead_id=1):
    return RuleEvent(kind=LEAD_STATUS_CHANGED, lead_id=lead_id, at=NOW)


def test_handle_reads_decides_and_applies(executor, crm, r):
    done = executor.handle(moved())
    assert [type(a) for a in done] == [CreateTask, AddNote]
    assert crm.tasks[1][0].text == "Продать"
    assert all(r.exists(keys.key("acme", "applied", a.action_key)) for a in done)
    assert int(r.zscore(keys.key("acme", "rules", "last_task"), "1")) == crm.tasks[1][0].id
    assert executor.handle(moved()) == []  # the lead has its task now


def test_an_applied_key_is_never_applied_again(executor, crm):
    first = executor.handle(moved())
    crm.tasks[1].clear()  # the CRM "loses" the task but we remember its key and its id...
    crm.next_id = 0       # ...and pretend its id was never seen: same gap, same key
    executor.r.delete(keys.key("acme", "rules", "last_task"))
    assert executor.handle(moved()) == []
    assert len(crm.applied) == 1 and first


def test_a_failed_apply_remembers_nothing_and_the_retry_applies(executor, crm, r):
    crm.fail_next = True
    with pytest.raises(RuntimeError):
        executor.handle(moved())
    assert not r.keys(keys.key("acme", "applied", "*"))
    assert len(executor.handle(moved())) == 2
    assert len(crm.tasks[1]) == 1


def test_a_busy_lead_makes_the_job_fail_for_a_retry(executor):
    lock = executor.lock(1)
    assert lock.acquire(blocking=False)
    try:
        with pytest.raises(LeadBusy):
            executor.handle(moved())
    finally:
        lock.release()


def test_concurrent_jobs_of_one_lead_make_one_task(executor, crm, r):
    crm.slow = 0.05  # a slow read widens the window two jobs could both see "no task"
    executors = [Executor("acme", crm, r, RuleSettings(), CAL, clock=lambda: NOW) for _ in range(5)]
    threads = [threading.Thread(target=e.handle, args=(moved(),)) for e in executors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(crm.tasks[1]) == 1


def test_a_deleted_task_opens_a_new_gap(executor, crm):
    executor.handle(moved())
    task = crm.tasks[1].pop()  # deleted in the CRM: the API no longer lists it
    deleted = RuleEvent(kind=TASK_DELETED, lead_id=1, at=NOW + timedelta(minutes=5),
                        task=Task(id=task.id, lead_id=1, text=task.text, due=task.due))
    assert [type(a) for a in executor.handle(deleted)] == [CreateTask, AddNote]
    crm.tasks[1].pop()
    # The sweep reads open tasks only; the memory of the last task id still moves its key on.
    assert list(sweep.plan(executor, crm, NOW + timedelta(hours=1)))


def test_complete_raises_last_task_id_from_memory(executor):
    executor.note_tasks({1: 500})
    executor.note_tasks({1: 400})  # marks never go down
    snap = LeadSnapshot(lead=Lead(id=1, stage="1", status="Клиент", pipeline="1"), last_task_id=None)
    (done,) = executor.complete([snap])
    assert done.last_task_id == 500
    (seen,) = executor.complete([replace(snap, last_task_id=900)])
    assert seen.last_task_id == 900 and executor.complete([snap])[0].last_task_id == 900


def test_unapplied_drops_repeated_and_remembered_keys(executor, r):
    a = AddNote(lead_id=1, text="x", action_key="NEXT_TASK:1:a")
    b = AddNote(lead_id=1, text="y", action_key="NEXT_TASK:1:b")
    r.set(keys.key("acme", "applied", "NEXT_TASK:1:b"), "1")
    assert executor.unapplied([a, a, b]) == [a]


def test_the_sweep_skips_locked_and_touched_leads(executor, crm):
    for lead_id in (2, 3, 4):
        crm.add(lead_id)
    plans = list(sweep.plan(executor, crm))
    assert [p.snapshot.lead.id for p in plans] == [1, 2, 3, 4]
    lock = executor.lock(2)
    lock.acquire(blocking=False)
    executor.touch(3)
    try:
        fixed, skipped = executor.apply_planned(plans)
    finally:
        lock.release()
    assert sorted(p.snapshot.lead.id for p in fixed) == [1, 4]
    assert sorted(p.snapshot.lead.id for p in skipped) == [2, 3]
    assert len(crm.applied) == 1  # one apply for the whole chunk
    assert [p.snapshot.lead.id for p in sweep.plan(executor, crm)] == [2, 3]  # the next sweep looks again


def test_a_terminal_lead_is_left_alone(executor, crm):
    crm.add(9, status="Отказ")
    assert executor.handle(moved(9)) == []
    assert crm.applied == []


def test_each_applied_action_is_logged_and_counted(executor, r, caplog):
    with caplog.at_level("INFO", logger="reglament.rules"):
        done = executor.handle(moved())
    lines = [rec for rec in caplog.records if rec.name == "reglament.rules"]
    assert [(rec.account, rec.rule, rec.lead_id) for rec in lines] == [("acme", "NEXT_TASK", 1)] * len(done)
    counted = r.hgetall(keys.metrics("acme"))
    assert int(counted[b"rule_actions_total\taction=CreateTask\trule=NEXT_TASK"]) == 1
