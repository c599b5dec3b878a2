"""`reglament absent <manager> --reassign`: an absent manager's active leads and their open
tasks go round-robin to the managers on shift, with a note, against the sandbox and real Redis."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from click.testing import CliRunner

from jobs import reassign
from reglament import shifts
from shell.cli import main
from tests.distribution.test_e2e import GALINA, VERA, create_leads, setup
from tests.engine.conftest import ACCOUNT, ANNA, BORIS, STATUS

TERMINAL = {STATUS[s] for s in ("Отказ", "Расторгнут договор", "Завершил", "won", "lost")}


def config_file(settings, r, tmp_path) -> str:
    doc = settings.model_dump(mode="json", exclude_none=True)
    doc["redis_url"] = f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}/0"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return str(path)


def add_task(amo, lead_id: int, user: int, text: str = "Перезвонить") -> int:
    return amo.api("POST", "/api/v4/tasks", json=[{
        "text": text, "complete_till": int(time.time()) + 3600, "entity_type": "leads", "entity_id": lead_id,
        "responsible_user_id": user}])["_embedded"]["tasks"][0]["id"]


def notes(amo, lead_id: int) -> list[str]:
    found = amo.api("GET", f"/api/v4/leads/{lead_id}/notes") or {}
    return [n["params"]["text"] for n in (found.get("_embedded") or {}).get("notes", []) if n["note_type"] == "common"]


def test_absent_reassign_hands_the_leads_and_their_tasks_to_the_managers_on_shift(amo, r, tmp_path):
    settings = setup(amo, r)
    shifts.set_absent(r, ACCOUNT, "Галина Орлова", datetime.now(timezone.utc) + timedelta(days=1))
    veras = create_leads(amo, 6, responsible=VERA, status="Принимает решение")
    (closed,) = create_leads(amo, 1, responsible=VERA, status="Отказ")
    (annas,) = create_leads(amo, 1, responsible=ANNA)
    task = add_task(amo, veras[0], VERA)
    second = add_task(amo, veras[0], VERA, "Отправить договор")
    someone_elses = add_task(amo, veras[1], BORIS)
    cfg = config_file(settings, r, tmp_path)
    seeded = [lead["id"] for lead in amo.api("GET", "/api/v4/leads", params={"limit": 250})["_embedded"]["leads"]
              if lead["responsible_user_id"] == VERA and lead["status_id"] not in TERMINAL and lead["id"] not in veras]
    seeded_tasks = [t for i in seeded for t in amo.open_tasks(i) if t["responsible_user_id"] == VERA]
    mark = amo.mark()

    out = CliRunner().invoke(main, ["absent", "Вера Петрова", "--until", "2099-01-01", "--reassign", "--config", cfg])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "Вера Петрова: отсутствует до 01.01.2099 00:00 — новые заявки его пропускают."
    n = 6 + len(seeded)
    assert lines[1] == f"Передано сделок: {n}, задач: {2 + len(seeded_tasks)}."
    owners = {i: amo.lead(i)["responsible_user_id"] for i in veras + seeded}
    assert Counter(owners.values()) == {ANNA: n // 2 + n % 2, BORIS: n // 2}   # round robin among those on shift
    assert f"  Сделка {veras[0]} «Заявка 0» → " in out.stdout and "(задач: 2)" in out.stdout
    assert f"Анна Смирнова — {n // 2 + n % 2}" in lines[-1] and f"Борис Иванов — {n // 2}" in lines[-1]
    # The manager's tasks follow the lead; another person's task and other leads stay as they were.
    assert [amo.api("GET", f"/api/v4/tasks/{t}")["responsible_user_id"] for t in (task, second)] == [owners[veras[0]]] * 2
    assert amo.api("GET", f"/api/v4/tasks/{someone_elses}")["responsible_user_id"] == BORIS
    assert amo.lead(closed)["responsible_user_id"] == VERA and amo.lead(annas)["responsible_user_id"] == ANNA
    to = {ANNA: "Анна Смирнова", BORIS: "Борис Иванов"}
    assert notes(amo, veras[0]) == [f"Reglament: менеджер Вера Петрова отсутствует — сделка вместе с задачами (2) "
                                    f"передана менеджеру {to[owners[veras[0]]]}."]
    assert notes(amo, veras[1]) == [f"Reglament: менеджер Вера Петрова отсутствует — сделка передана менеджеру "
                                    f"{to[owners[veras[1]]]}."]
    # Batched: one request for the leads, one for the tasks, one for the notes.
    writes = Counter((c["method"], c["path"]) for c in amo.requests_since(mark) if c["method"] != "GET")
    assert writes == {("PATCH", "/api/v4/leads"): 1, ("PATCH", "/api/v4/tasks"): 1, ("POST", "/api/v4/leads/notes"): 1}
    # Our change is not a person's choice: DISTRIBUTION's memory of the lead is the new manager.
    assert shifts.recorded_pick(r, ACCOUNT, veras[0]) == owners[veras[0]]

    again = CliRunner().invoke(main, ["absent", "Вера Петрова", "--reassign", "--config", cfg])
    assert again.exit_code == 0, again.output
    assert again.stdout == "У менеджера Вера Петрова нет активных сделок — передавать нечего.\n"


def test_a_lead_given_back_by_a_person_stays_and_a_rerun_changes_nothing_twice(amo, r):
    setup(amo, r)
    shifts.set_absent(r, ACCOUNT, "Вера Петрова", datetime.now(timezone.utc) + timedelta(days=3))
    shifts.set_absent(r, ACCOUNT, "Галина Орлова", datetime.now(timezone.utc) + timedelta(days=3))
    leads = create_leads(amo, 3, responsible=VERA, status="Пришел на пробное")
    first = reassign.reassign(ACCOUNT, "Вера Петрова")
    assert set(leads) <= {h.lead_id for h in first.handed}
    # A head gives one lead back to Вера during the same absence: a person's choice wins.
    amo.api("PATCH", "/api/v4/leads", json=[{"id": leads[0], "responsible_user_id": VERA}])
    mark = amo.mark()
    second = reassign.reassign(ACCOUNT, "Вера Петрова")
    assert second.handed == [] and second.kept == [leads[0]]
    assert amo.lead(leads[0])["responsible_user_id"] == VERA
    assert not [c for c in amo.requests_since(mark) if c["method"] != "GET"]


def test_nobody_on_shift_and_no_fallback_user_says_so(amo, r, tmp_path):
    settings = setup(amo, r, fallback_user=None)
    for name in ("Анна Смирнова", "Борис Иванов", "Галина Орлова"):
        shifts.set_absent(r, ACCOUNT, name, datetime.now(timezone.utc) + timedelta(days=1))
    (lead,) = create_leads(amo, 1, responsible=VERA)
    out = CliRunner().invoke(main, ["absent", "Вера Петрова", "--reassign", "--config", config_file(settings, r, tmp_path)])
    assert out.exit_code == 1
    assert out.stdout.startswith("Некому передать сделки: никого из группы нет на смене")
    assert amo.lead(lead)["responsible_user_id"] == VERA
    with pytest.raises(reassign.NobodyOnShift):
        reassign.reassign(ACCOUNT, "Вера Петрова")
    # With the fallback user on hand, the leads go to them.
    setup(amo, r, fallback_user="Галина Орлова")
    assert {h.to for h in reassign.reassign(ACCOUNT, "Вера Петрова").handed} == {GALINA}


def test_reassign_refuses_a_future_absence_and_clear(amo, r, tmp_path):
    cfg = config_file(setup(amo, r), r, tmp_path)
    for args in (["--from", "2099-01-01", "--until", "2099-01-05", "--reassign"], ["--clear", "--reassign"],
                 ["--from", "2099-01-01", "--reassign"]):
        out = CliRunner().invoke(main, ["absent", "Вера Петрова", *args, "--config", cfg])
        assert out.exit_code == 2, (args, out.output)
    assert shifts.absences(r, ACCOUNT) == {}
