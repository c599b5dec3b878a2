"""`reglament absent <manager> --reassign`: an absent manager's active leads and their open
tasks go round-robin to the managers on shift, with a note; through the neutral driver (once
per CRM) and real Redis."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from click.testing import CliRunner

from jobs import reassign
from reglament import shifts
from shell.cli import main
from tests.distribution.test_e2e import create_leads, people, setup
from tests.driver import LOST, WON
from tests.engine.conftest import ACCOUNT

TERMINAL = {"Отказ", "Расторгнут договор", "Завершил", WON, LOST}


def config_file(settings, r, tmp_path) -> str:
    doc = settings.model_dump(mode="json", exclude_none=True)
    doc["redis_url"] = f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}/0"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return str(path)


def soon() -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=1)


def test_absent_reassign_hands_the_leads_and_their_tasks_to_the_managers_on_shift(crm, r, tmp_path):
    anna, boris, vera, _ = people(crm)
    settings = setup(crm, r)
    shifts.set_absent(r, ACCOUNT, "Галина Орлова", datetime.now(timezone.utc) + timedelta(days=1))
    veras = [lead.id for lead in create_leads(crm, 6, responsible="Вера Петрова", status="Принимает решение")]
    (closed,) = create_leads(crm, 1, responsible="Вера Петрова", status="Отказ")
    (annas,) = create_leads(crm, 1, responsible="Анна Смирнова")
    task = crm.create_task(veras[0], "Перезвонить", soon(), responsible=vera).id
    second = crm.create_task(veras[0], "Отправить договор", soon(), responsible=vera).id
    someone_elses = crm.create_task(veras[1], "Перезвонить", soon(), responsible=boris).id
    # The demo account's own leads of Вера go too.
    seeded = [lead.id for lead in crm.leads()
              if lead.responsible == vera and lead.stage not in TERMINAL and lead.id not in veras]
    seeded_tasks = [t for i in seeded for t in crm.open_tasks(i) if t.responsible == vera]
    cfg = config_file(settings, r, tmp_path)
    mark = crm.mark()

    out = CliRunner().invoke(main, ["absent", "Вера Петрова", "--until", "2099-01-01", "--reassign", "--config", cfg])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "Вера Петрова: отсутствует до 01.01.2099 00:00 — новые заявки его пропускают."
    n = 6 + len(seeded)
    assert lines[1] == f"Передано сделок: {n}, задач: {2 + len(seeded_tasks)}."
    owners = {i: crm.lead(i).responsible for i in veras + seeded}
    assert Counter(owners.values()) == {anna: n - n // 2, boris: n // 2}   # round robin among those on shift
    assert f"  Сделка {veras[0]} «Заявка 0» → " in out.stdout and "(задач: 2)" in out.stdout
    assert f"Анна Смирнова — {n - n // 2}" in lines[-1] and f"Борис Иванов — {n // 2}" in lines[-1]
    # The manager's tasks follow the lead; another person's task and other leads stay as they were.
    assert [crm.task(t).responsible for t in (task, second)] == [owners[veras[0]]] * 2
    assert crm.task(someone_elses).responsible == boris
    assert crm.lead(closed.id).responsible == vera and crm.lead(annas.id).responsible == anna
    assert crm.comments(veras[0]) == ["Reglament: менеджер Вера Петрова отсутствует — сделка вместе с задачами (2) "
                                      f"передана менеджеру {crm.user_name(owners[veras[0]])}."]
    assert crm.comments(veras[1]) == ["Reglament: менеджер Вера Петрова отсутствует — сделка передана менеджеру "
                                      f"{crm.user_name(owners[veras[1]])}."]
    # Batched: one request for the leads, one for the tasks, one for the notes; Bitrix24 sends
    # all three in one batch (named by its first command).
    writes = Counter(c for c in crm.calls_since(mark) if c.op != "read")
    assert sorted((c.op, c.entity, k) for c, k in writes.items()) == (
        [("update", "lead", 1)] if crm.name == "bitrix24" else
        [("create", "comment", 1), ("update", "lead", 1), ("update", "task", 1)])
    # Our change is not a person's choice: DISTRIBUTION's memory of the lead is the new manager.
    assert shifts.recorded_pick(r, ACCOUNT, veras[0]) == owners[veras[0]]

    again = CliRunner().invoke(main, ["absent", "Вера Петрова", "--reassign", "--config", cfg])
    assert again.exit_code == 0, again.output
    assert again.stdout == "У менеджера Вера Петрова нет активных сделок — передавать нечего.\n"


def test_a_lead_given_back_by_a_person_stays_and_a_rerun_changes_nothing_twice(crm, r):
    _, _, vera, _ = people(crm)
    setup(crm, r)
    shifts.set_absent(r, ACCOUNT, "Вера Петрова", datetime.now(timezone.utc) + timedelta(days=3))
    shifts.set_absent(r, ACCOUNT, "Галина Орлова", datetime.now(timezone.utc) + timedelta(days=3))
    leads = [lead.id for lead in create_leads(crm, 3, responsible="Вера Петрова", status="Пришел на пробное")]
    first = reassign.reassign(ACCOUNT, "Вера Петрова")
    assert set(leads) <= {h.lead_id for h in first.handed}
    # A head gives one lead back to Вера during the same absence: a person's choice wins.
    crm.set_responsible(leads[0], vera, by=crm.user("Галина Орлова"))
    mark = crm.mark()
    second = reassign.reassign(ACCOUNT, "Вера Петрова")
    assert second.handed == [] and second.kept == [leads[0]]
    assert crm.lead(leads[0]).responsible == vera
    assert [c for c in crm.calls_since(mark) if c.op != "read"] == []


def test_nobody_on_shift_and_no_fallback_user_says_so(crm, r, tmp_path):
    _, _, vera, galina = people(crm)
    settings = setup(crm, r, fallback_user=None)
    for name in ("Анна Смирнова", "Борис Иванов", "Галина Орлова"):
        shifts.set_absent(r, ACCOUNT, name, datetime.now(timezone.utc) + timedelta(days=1))
    (lead,) = create_leads(crm, 1, responsible="Вера Петрова")
    out = CliRunner().invoke(main, ["absent", "Вера Петрова", "--reassign", "--config", config_file(settings, r, tmp_path)])
    assert out.exit_code == 1
    assert out.stdout.startswith("Некому передать сделки: никого из группы нет на смене")
    assert crm.lead(lead.id).responsible == vera
    with pytest.raises(reassign.NobodyOnShift):
        reassign.reassign(ACCOUNT, "Вера Петрова")
    # With the fallback user on hand, the leads go to them.
    setup(crm, r, fallback_user="Галина Орлова")
    assert {h.to for h in reassign.reassign(ACCOUNT, "Вера Петрова").handed} == {galina}


def test_reassign_refuses_a_future_absence_and_clear(crm, r, tmp_path):
    cfg = config_file(setup(crm, r), r, tmp_path)
    for args in (["--from", "2099-01-01", "--until", "2099-01-05", "--reassign"], ["--clear", "--reassign"],
                 ["--from", "2099-01-01", "--reassign"]):
        out = CliRunner().invoke(main, ["absent", "Вера Петрова", *args, "--config", cfg])
        assert out.exit_code == 2, (args, out.output)
    assert shifts.absences(r, ACCOUNT) == {}
