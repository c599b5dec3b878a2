"""The comparison behind Bitrix24's id-only events (connectors/bitrix24/changes.py), as a pure function."""

from __future__ import annotations

from connectors.bitrix24.changes import DealState, TaskState, compare

TODO = TaskState(due=1_800_000_000, responsible_id=2, text="Продать")


def deal(stage="UC_CAME", responsible=2, **tasks) -> DealState:
    return DealState(stage=stage, pipeline="0", responsible_id=responsible,
                     tasks={int(k[1:]): v for k, v in tasks.items()})


def kinds(changes) -> list[str]:
    return [c.kind for c in changes]


def test_a_state_compared_with_itself_changes_nothing():
    state = deal(a1005=TODO)
    assert compare(state, state) == []
    assert compare(state, DealState.from_json(state.to_json())) == []


def test_a_deal_first_seen_is_added_only_after_its_add_event():
    assert kinds(compare(None, deal(), added=True)) == ["lead.added"]
    assert compare(None, deal(a1005=TODO)) == []        # a baseline: what changed before is unknown


def test_a_stage_move_and_a_new_responsible():
    changes = compare(deal(), deal(stage="UC_DECIDING", responsible=3))
    assert kinds(changes) == ["lead.status_changed", "lead.responsible_changed"]
    assert changes[0].fields["stage"] == "UC_DECIDING"
    assert changes[1].fields["previous_responsible_id"] == 2 and changes[1].fields["responsible_id"] == 3


def test_a_new_to_do_a_moved_deadline_and_a_new_responsible():
    moved = TaskState(due=TODO.due + 86400, responsible_id=3, text=TODO.text)
    assert kinds(compare(deal(), deal(a1005=TODO))) == ["task.added"]
    changes = compare(deal(a1005=TODO), deal(a1005=moved))
    assert kinds(changes) == ["task.updated", "task.responsible_changed"]
    assert changes[0].fields == {"task_id": 1005, "text": "Продать", "due": TODO.due + 86400, "responsible_id": 3,
                                 "completed": False, "previous_due": TODO.due}   # the deadline it had


def test_a_to_do_gone_from_the_open_ones_is_completed_or_deleted():
    done = compare(deal(a1005=TODO, a1006=TODO), deal(), completed=frozenset({1005}))
    assert [(c.kind, c.fields["task_id"], c.fields["completed"]) for c in done] == [
        ("task.updated", 1005, True), ("task.deleted", 1006, False)]
    assert done[0].fields["due"] == TODO.due
