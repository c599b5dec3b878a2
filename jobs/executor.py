"""Applying the task rules: decide and apply under the lead's lock, each action key once.

- A per-lead Redis lock serialises everything that decides for one lead — a webhook job,
  its retries, the sweep — so two of them never both see "no open task" and both make one.
  Inside the lock the snapshot is read fresh, the rules decide, the actions are applied.
- Applied action keys are remembered (APPLIED_TTL): a retried job, or a sweep that sees
  the situation a webhook job already handled, changes nothing twice.
- The newest task id each lead is known to have had is remembered too. amoCRM forgets
  deleted tasks and we read only open ones, yet NEXT_TASK's keys must move on after every
  task (its "gap"); our own tasks and every task event raise the mark.
- Leads named by a webhook event are stamped when the event arrives: the sweep, working
  from a page read a moment earlier, leaves such a lead to that event's job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone

import redis
from redis.exceptions import LockError

from jobs import names
from reglament.names import RULE_KINDS
from jobs.rules import decide_all
from reglament.rule_settings import RuleSettings
from reglament import keys, metrics
from reglament.lease import Lease
from reglament.calendar import WorkCalendar
from jobs import timers
from reglament.crm import (CRM, Action, AddNote, CreateTask, LeadSnapshot, RecheckAt, RuleEvent, SetLeadField,
                           SetLeadStatus, UnknownName)

log = logging.getLogger("reglament.rules")

APPLIED_TTL = 45 * 86400  # longer than any gap between a decision and its retry
OWN_KEEP = 400 * 86400    # how long a task we made is remembered as ours
LOCK_WAIT = 30            # seconds a webhook job waits for a busy lead before it is retried
TOUCHED_KEEP = 86400      # stamps older than this cannot matter to a running sweep


class LeadBusy(Exception):
    """The lead's lock stayed taken; the job fails and RQ retries it."""


@dataclass(frozen=True)
class Planned:
    """What the rules would do to one lead, decided from a snapshot read at `read_at` (Redis time)."""
    snapshot: LeadSnapshot
    actions: tuple[Action, ...]
    read_at: float


class Executor:
    def __init__(self, account: str, crm: CRM, r: redis.Redis, settings: RuleSettings, calendar: WorkCalendar, *,
                 clock: Callable[[], datetime] | None = None, lock_wait: float = LOCK_WAIT):
        self.account = account
        self.crm = crm
        self.r = r
        self.settings = settings
        self.calendar = calendar
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.lock_wait = lock_wait

    def __repr__(self) -> str:
        return f"Executor(account={self.account!r}, crm={self.crm!r})"

    # ------------------------------------------------------------------ memory in Redis

    def _key(self, *parts: object) -> str:
        return keys.key(self.account, *parts)

    def lock(self, lead_id: int):
        # A lease: free within seconds when its worker is killed, held however long the job takes.
        return Lease(self.r, self._key("lock", "lead", lead_id))

    def redis_time(self) -> float:
        """One clock for every process (web, workers, scheduler may run on several hosts)."""
        seconds, micro = self.r.time()
        return seconds + micro / 1e6

    def touch(self, *lead_ids: int) -> None:
        """Stamp leads as changed now: a sweep plan read before this leaves them to their job."""
        if not lead_ids:
            return
        key = self._key("rules", "touched")
        now = self.redis_time()
        with self.r.pipeline(transaction=False) as p:
            p.zadd(key, {str(i): now for i in lead_ids})
            p.zremrangebyscore(key, "-inf", now - TOUCHED_KEEP)
            p.execute()

    def note_tasks(self, task_ids: dict[int, int]) -> None:
        """Raise each lead's mark to this task id (lead → task id); marks never go down."""
        if task_ids:
            self.r.zadd(self._key("rules", "last_task"), {str(lead): task for lead, task in task_ids.items()}, gt=True)

    def remember_own(self, task_ids: Iterable[int]) -> None:
        """Tasks Reglament made: ours to close or replace; a person's task is never touched."""
        ids = [str(i) for i in task_ids]
        if ids:
            now = self.redis_time()
            key = self._key("rules", "own_tasks")
            with self.r.pipeline(transaction=False) as p:
                p.zadd(key, {i: now for i in ids})
                p.zremrangebyscore(key, "-inf", now - OWN_KEEP)
                p.execute()

    def own(self, task_ids: Iterable[int]) -> frozenset[int]:
        """Which of these tasks Reglament made."""
        ids = list(dict.fromkeys(task_ids))
        scores = self.r.zmscore(self._key("rules", "own_tasks"), [str(i) for i in ids]) if ids else []
        return frozenset(i for i, s in zip(ids, scores) if s is not None)

    def _scores(self, name: str, lead_ids: Sequence[int]) -> list[float | None]:
        return self.r.zmscore(self._key("rules", name), [str(i) for i in lead_ids]) if lead_ids else []

    def complete(self, snapshots: Sequence[LeadSnapshot]) -> list[LeadSnapshot]:
        """Snapshots with last_task_id raised to what we remember, and our memory raised to
        theirs; which open tasks are ours."""
        marks = self._scores("last_task", [s.lead.id for s in snapshots])
        own = self.own(t.id for s in snapshots for t in s.open_tasks)
        done = []
        for s, mark in zip(snapshots, marks):
            last = max(s.last_task_id or 0, int(mark or 0)) or None
            ours = frozenset(t.id for t in s.open_tasks if t.id in own)
            done.append(s if (last, ours) == (s.last_task_id, s.own_task_ids)
                        else replace(s, last_task_id=last, own_task_ids=ours))
        self.note_tasks({s.lead.id: s.last_task_id for s in snapshots if s.last_task_id})
        return done

    def unapplied(self, actions: Iterable[Action]) -> list[Action]:
        """The actions whose keys were never applied (the first of repeated keys)."""
        unique: dict[str, Action] = {}
        for a in actions:
            unique.setdefault(a.action_key, a)
        if not unique:
            return []
        seen = self.r.mget([self._key("applied", k) for k in unique])
        return [a for a, s in zip(unique.values(), seen) if s is None]

    # ------------------------------------------------------------------ deciding and applying

    def decide(self, event: RuleEvent, snapshot: LeadSnapshot, now: datetime | None = None) -> list[Action]:
        return self.unapplied(decide_all(event, snapshot, self.settings, self.calendar, now or self.clock()))

    def handle(self, event: RuleEvent) -> list[Action]:
        """One event of one lead: under its lock, read it fresh, decide, apply. Returns what was applied."""
        self.touch(event.lead_id)
        if event.task is not None:
            self.note_tasks({event.lead_id: event.task.id})
        lock = self.lock(event.lead_id)
        if not lock.acquire(blocking=True, blocking_timeout=self.lock_wait):
            raise LeadBusy(f"lead {event.lead_id} of {self.account} stayed locked for {self.lock_wait:g}s")
        try:
            snapshot = self.crm.get_lead_snapshot(event.lead_id)
            if snapshot is None:
                return []
            (snapshot,) = self.complete([snapshot])
            actions = self.decide(event, snapshot)
            self.apply(actions)
            return actions
        finally:
            _release(lock)

    def apply(self, actions: Sequence[Action]) -> None:
        """Apply through the CRM, then remember the keys (a failure remembers nothing: the
        retry decides again, and the CRM's creates are idempotent by key)."""
        if not actions:
            return
        rechecks = [a for a in actions if isinstance(a, RecheckAt)]
        try:
            created = self.crm.apply([a for a in actions if not isinstance(a, RecheckAt)])
        except UnknownName as e:
            if e.kind not in RULE_KINDS:  # a pipeline, a lead that is gone: jobs/deferral.py decides
                raise
            self._apply_apart(actions, e)
            return
        for a in rechecks:
            timers.schedule(self.r, f"recheck-{self.account}-{a.lead_id}-{int(a.at.timestamp())}", a.at,
                            "jobs.rule_jobs.recheck", {"account": self.account, "lead_id": a.lead_id},
                            account=self.account, kind="recheck")
        made = [(a.lead_id, created[a.action_key]) for a in actions
                if isinstance(a, CreateTask) and a.action_key in created]
        self.note_tasks(dict(made))
        self.remember_own(task_id for _, task_id in made)
        # A sweep that read its page before this task existed must not make another one.
        self.touch(*dict(made))
        with self.r.pipeline(transaction=False) as p:
            for a in actions:
                p.set(self._key("applied", a.action_key), "1", ex=APPLIED_TTL)
            p.execute()
        for a in actions:
            log.info(describe(a), extra={"account": self.account, "rule": a.rule, "lead_id": a.lead_id})
            metrics.incr(self.r, self.account, "rule_actions_total", rule=a.rule, action=type(a).__name__)

    def _apply_apart(self, actions: Sequence[Action], error: UnknownName) -> None:
        """A name the CRM lacks stops only the rule that uses it, on one lead: each lead's
        actions of each rule are applied apart, and a group that meets the name is reported
        once (jobs/names.py) and left undone, its keys not remembered."""
        groups: dict[tuple, list[Action]] = {}
        for a in actions:
            groups.setdefault((getattr(a, "lead_id", None), a.rule), []).append(a)
        if len(groups) == 1:
            names.report(self.r, self.account, actions[0].rule, error)
            return
        for group in groups.values():
            self.apply(group)

    def apply_planned(self, planned: Sequence[Planned]) -> tuple[list[Planned], list[Planned]]:
        """Apply the sweep's plans together, each under its lead's lock: (applied, skipped).

        A lead is skipped when another job holds its lock, or when, since its snapshot was
        read, an event arrived for it or a task was made for it: that job decides for it
        (and the next sweep looks again).
        """
        locks, skipped = {}, []
        for p in planned:
            lock = self.lock(p.snapshot.lead.id)
            if lock.acquire(blocking=False):
                locks[p.snapshot.lead.id] = lock
            else:
                skipped.append(p)
        try:
            held = [p for p in planned if p.snapshot.lead.id in locks]
            ids = [p.snapshot.lead.id for p in held]
            todo = []
            for p, touched, mark in zip(held, self._scores("touched", ids), self._scores("last_task", ids)):
                if (touched or 0) > p.read_at or int(mark or 0) > (p.snapshot.last_task_id or 0):
                    skipped.append(p)
                    continue
                actions = self.unapplied(p.actions)
                if actions:
                    todo.append(replace(p, actions=tuple(actions)))
            self.apply([a for p in todo for a in p.actions])
            return todo, skipped
        finally:
            for lock in locks.values():
                _release(lock)


def _release(lock) -> None:
    try:
        lock.release()
    except LockError:  # it expired while we worked: someone may have decided meanwhile, keys cover it
        log.warning("a lead lock expired before it was released")


def describe(a: Action) -> str:
    """One log line for an applied action."""
    if isinstance(a, CreateTask):
        return (f"task created: «{a.text}» ({a.task_type or 'default type'}) due {a.due.isoformat()}, "
                f"responsible {a.responsible_id}{', important' if a.important else ''} [{a.action_key}]")
    if isinstance(a, SetLeadStatus):
        reason = f", loss reason «{a.loss_reason}»" if a.loss_reason else ""
        return f"status set: «{a.status}»{reason} [{a.action_key}]"
    if isinstance(a, SetLeadField):
        value = a.value.isoformat() if isinstance(a.value, (date, datetime)) else a.value
        return f"field set: {a.field} = {value!r} [{a.action_key}]"
    if isinstance(a, AddNote):
        return f"note added [{a.action_key}]"
    return f"{type(a).__name__} [{a.action_key}]"
