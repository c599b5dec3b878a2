"""What changed on one deal between two readings: Bitrix24's events say only "deal 7405
was updated", so the connector keeps the last state it saw per deal (stage, responsible,
open activities with their deadlines and responsibles) and compares.

`compare` is a pure function: the same two states always give the same changes, and a
state compared with itself gives none, which is why a repeated event changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskState:
    due: int | None                  # unix time
    responsible_id: int | None = None
    text: str = ""

    def to_list(self) -> list:
        return [self.due, self.responsible_id, self.text]


@dataclass(frozen=True)
class DealState:
    stage: str
    pipeline: str = ""
    responsible_id: int | None = None
    closed: str | None = None
    tasks: dict[int, TaskState] = field(default_factory=dict)   # open activities by id
    values: dict[str, str] = field(default_factory=dict)        # custom values by field name, as the wire has them
    # When the reading began, by the portal's clock (its answer's time.start): an event sent
    # before that is already in this state. Not part of what changed.
    read_at: float | None = field(default=None, compare=False)

    def to_json(self) -> str:
        return json.dumps({"stage": self.stage, "pipeline": self.pipeline, "responsible_id": self.responsible_id,
                           "closed": self.closed, "tasks": {str(i): t.to_list() for i, t in self.tasks.items()},
                           "values": self.values, "read_at": self.read_at}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> "DealState":
        d = json.loads(text)
        return cls(stage=d["stage"], pipeline=d.get("pipeline") or "", responsible_id=d.get("responsible_id"),
                   closed=d.get("closed"), tasks={int(i): TaskState(*t) for i, t in (d.get("tasks") or {}).items()},
                   values=d.get("values") or {}, read_at=d.get("read_at"))


@dataclass(frozen=True)
class Change:
    kind: str                        # a reglament.events kind
    fields: dict[str, Any]


def compare(before: DealState | None, after: DealState, *, completed: frozenset[int] = frozenset(),
            added: bool = False) -> list[Change]:
    """The neutral changes from `before` to `after` (None: the deal was never seen).

    `completed`: the activities that were open before and are now completed (the rest of
    those gone from `after` were deleted). `added`: the reading follows the deal's add event;
    a deal first seen otherwise only becomes the baseline (what changed before is unknown)."""
    lead = {"pipeline": after.pipeline, "stage": after.stage, "closed": after.closed,
            "responsible_id": after.responsible_id}
    if before is None:
        return [Change("lead.added", lead)] if added else []
    found: list[Change] = []
    if before.stage != after.stage or before.pipeline != after.pipeline:
        found.append(Change("lead.status_changed", dict(lead)))
    if before.responsible_id != after.responsible_id:
        found.append(Change("lead.responsible_changed", {**lead, "previous_responsible_id": before.responsible_id}))
    if before.values != after.values:
        found.append(Change("lead.updated", dict(lead)))
    for task_id, now in after.tasks.items():
        was = before.tasks.get(task_id)
        task = {"task_id": task_id, "text": now.text, "due": now.due, "responsible_id": now.responsible_id,
                "completed": False}
        if was is None:
            found.append(Change("task.added", task))
        else:
            if was.due != now.due:
                found.append(Change("task.updated", {**task, "previous_due": was.due}))
            if was.responsible_id != now.responsible_id:
                found.append(Change("task.responsible_changed",
                                    {**task, "previous_responsible_id": was.responsible_id}))
    for task_id, was in before.tasks.items():
        if task_id in after.tasks:
            continue
        task = {"task_id": task_id, "text": was.text, "due": was.due, "responsible_id": was.responsible_id}
        if task_id in completed:
            found.append(Change("task.updated", {**task, "completed": True}))
        else:
            found.append(Change("task.deleted", {**task, "completed": False}))
    return found
