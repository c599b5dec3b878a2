"""Writing tasks: POST/PATCH /api/v4/tasks, completing with a result, moving deadlines."""

from __future__ import annotations

import copy
from typing import Any

from .core import AccountCore, _is_int, _known
from .model import CONTACTS, LEADS, Task
from .problems import FIELD_MISSING, INVALID_TYPE, NOT_BLANK, NOT_SUPPORTED_CHOICE, Problems


class TaskWrites(AccountCore):
    def _check_task(self, item: dict, rid: str, problems: Problems, current: Task | None) -> dict:
        plan: dict[str, Any] = {}
        if "text" in item or current is None:
            text = item.get("text")
            if text is None:
                problems.add(rid, "text", FIELD_MISSING)
            elif not isinstance(text, str):
                problems.add(rid, "text", INVALID_TYPE, type="string")
            elif not text.strip():
                problems.add(rid, "text", NOT_BLANK)
            else:
                plan["text"] = text
        if "complete_till" in item or current is None:
            if item.get("complete_till") is None:
                problems.add(rid, "complete_till", FIELD_MISSING)
            else:
                value = self._check_int(item, "complete_till", rid, problems)
                if value is not None:
                    plan["complete_till"] = value
        self._take_ints_and_responsible(item, ("duration", "created_at", "updated_at"), rid, problems, plan)
        if "task_type_id" in item:
            value = item["task_type_id"]
            if not _is_int(value) or value not in self.task_types:
                problems.add(rid, "task_type_id", NOT_SUPPORTED_CHOICE)
            else:
                plan["task_type_id"] = value
        if "entity_id" in item or "entity_type" in item:
            etype, eid = item.get("entity_type"), item.get("entity_id")
            if etype is None and eid is not None:
                problems.add(rid, "entity_type", FIELD_MISSING)
            elif etype is not None and etype not in (LEADS, CONTACTS):
                problems.add(rid, "entity_type", NOT_SUPPORTED_CHOICE)
            elif etype is not None and not _known(self.leads if etype == LEADS else self.contacts, eid):
                problems.add(rid, "entity_id", NOT_SUPPORTED_CHOICE)
            else:
                plan["entity_type"], plan["entity_id"] = etype, eid
        if "is_completed" in item:
            if not isinstance(item["is_completed"], bool):
                problems.add(rid, "is_completed", INVALID_TYPE, type="bool")
            else:
                plan["is_completed"] = item["is_completed"]
        if "result" in item and item["result"] is not None:
            result = item["result"]
            if not isinstance(result, dict) or not isinstance(result.get("text", ""), str):
                problems.add(rid, "result.text", INVALID_TYPE, type="string")
            else:
                plan["result_text"] = result.get("text") or None
        return plan

    def add_tasks(self, items: Any, actor: int) -> list[tuple[Task, str]]:
        with self.changes(), self.lock:
            checked = self._check_items(items)
            problems = Problems()
            plans = [(rid, self._check_task(item, rid, problems, None)) for rid, item in checked]
            problems.raise_if_any()
            created = []
            for rid, plan in plans:
                now = self.now()
                task = self._insert_task(
                    text=plan["text"], complete_till=plan["complete_till"],
                    responsible_user_id=plan.get("responsible_user_id", actor),
                    task_type_id=plan.get("task_type_id", 1), created_by=actor, updated_by=actor,
                    created_at=plan.get("created_at", now), updated_at=plan.get("updated_at", now),
                    entity_id=plan.get("entity_id"), entity_type=plan.get("entity_type"),
                    duration=plan.get("duration", 0), is_completed=plan.get("is_completed", False),
                    result_text=plan.get("result_text"),
                )
                self._event("task_added", "task", task.id, actor)
                self._emit("add_task", "task", "add", task)
                created.append((task, rid))
            return created

    def update_tasks(self, items: Any, actor: int) -> list[tuple[Task, str]]:
        return self._update_each(self.tasks, items, self._check_task,
                                 lambda task, plan: self._apply_task(task, plan, actor))

    def _apply_task(self, task: Task, plan: dict, actor: int) -> Task:
        before = copy.deepcopy(task)
        for key in ("text", "complete_till", "responsible_user_id", "task_type_id", "duration", "is_completed",
                    "result_text", "entity_type", "entity_id", "created_at"):
            if key in plan:
                setattr(task, key, plan[key])
        if task == before:
            return task
        self._index_task(task, old=(before.entity_type, before.entity_id))
        task.updated_at = plan.get("updated_at", self.now())
        task.updated_by = actor
        if task.text != before.text:
            self._event("task_text_changed", "task", task.id, actor, before=[{"task_text": {"text": before.text}}],
                        after=[{"task_text": {"text": task.text}}])
        if task.complete_till != before.complete_till:
            self._event("task_deadline_changed", "task", task.id, actor,
                        before=[{"task_deadline": {"timestamp": before.complete_till}}],
                        after=[{"task_deadline": {"timestamp": task.complete_till}}])
        if task.task_type_id != before.task_type_id:
            self._event("task_type_changed", "task", task.id, actor, before=[{"task_type": {"id": before.task_type_id}}],
                        after=[{"task_type": {"id": task.task_type_id}}])
        if task.responsible_user_id != before.responsible_user_id:
            self._event("entity_responsible_changed", "task", task.id, actor,
                        before=[{"responsible_user": {"id": before.responsible_user_id}}],
                        after=[{"responsible_user": {"id": task.responsible_user_id}}])
        if task.is_completed and not before.is_completed:
            self._event("task_completed", "task", task.id, actor, before=[{"task_completed": False}],
                        after=[{"task_completed": True}])
        if task.result_text and task.result_text != before.result_text:
            self._event("task_result_added", "task", task.id, actor, after=[{"task_result": {"text": task.result_text}}])
        self._emit("update_task", "task", "update", task)
        return task
