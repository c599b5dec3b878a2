"""The regulation's main rule (seed 003): «у каждого клиента всегда одна текущая задача».

When a rule needs a different next step than the one the lead has (MISSED_CALL's
«Перезвонить», UNPAID_INVOICE's call), the new step becomes the lead's one task: the open
tasks Reglament made are completed with a result saying why. A task a person made is never
touched: then the new step is not created, and the rule tells the manager instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from reglament.crm import Action, CompleteTask, CreateTask, Task


def replace_own(new: CreateTask, open_tasks: Iterable[Task], own_task_ids: frozenset[int],
                why: str) -> list[Action] | None:
    """The actions that make `new` the lead's one open task, or None when a person's open
    task stands in the way."""
    open_tasks = [t for t in open_tasks if not t.is_completed]
    if any(t.id not in own_task_ids for t in open_tasks):
        return None
    return [*(CompleteTask(task_id=t.id, lead_id=new.lead_id, result=why, action_key=f"{new.action_key}:close:{t.id}")
              for t in open_tasks), new]
