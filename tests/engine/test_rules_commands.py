"""`reglament audit` and `reglament sweep` against the sandbox."""

from __future__ import annotations

import csv
import json

import yaml
from click.testing import CliRunner

from shell.cli import main
from tests.engine.conftest import ALL_DAY, TOKEN


def write_config(tmp_path, amo, redis_url) -> str:
    path = tmp_path / "reglament.yaml"
    path.write_text(yaml.safe_dump({
        "redis_url": redis_url,
        "accounts": [{"id": "demo", "amocrm": {"base_url": amo.server.url, "long_lived_token": TOKEN,
                                               "rate_limit": 1000},
                      "webhook_secret": "cli-webhook-secret-0123456", "working_hours": ALL_DAY,
                      "holidays_country": None}],
    }, allow_unicode=True), encoding="utf-8")
    return str(path)


def test_audit_lists_then_applies_and_sweep_finds_nothing_left(amo, r, redis_url, tmp_path):
    amo.account.generate_leads(50, without_task_share=0.2, seed_value=5)
    cfg = write_config(tmp_path, amo, redis_url)
    runner = CliRunner()
    listed = runner.invoke(main, ["audit", "--config", cfg, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.stdout)
    assert "Наталья Лебедева" in {f["name"] for f in found}
    assert all(f["url"].endswith(f"/leads/detail/{f['lead_id']}") for f in found)

    table = runner.invoke(main, ["audit", "--config", cfg])
    assert table.exit_code == 0 and "Что сделает Reglament" in table.stdout
    assert f"с нарушениями: {len(found)}." in table.stdout

    out = tmp_path / "audit.csv"
    applied = runner.invoke(main, ["audit", "--config", cfg, "--format", "csv", "--output", str(out), "--apply"])
    assert applied.exit_code == 0, applied.output
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert {int(row["Сделка"]) for row in rows} == {f["lead_id"] for f in found}
    assert f"исправлено: {len(found)}" in applied.stdout

    swept = runner.invoke(main, ["sweep", "--config", cfg])
    assert swept.exit_code == 0 and "исправлено: 0" in swept.stdout
    assert json.loads(runner.invoke(main, ["audit", "--config", cfg, "--format", "json"]).stdout) == []


def test_sweep_runs_the_task_and_the_discipline_sweeps_once_and_says_what_they_did(amo, r, redis_url, tmp_path):
    import time

    from reglament import keys, violations
    from tests.engine.conftest import ANNA

    late = amo.create_lead("Принимает решение")
    amo.api("POST", "/api/v4/tasks", json=[{"text": "Продать", "complete_till": int(time.time()) - 3 * 3600,
                                            "entity_type": "leads", "entity_id": late, "responsible_user_id": ANNA}])
    bare = amo.create_lead("Пришел на пробное")
    cfg = write_config(tmp_path, amo, redis_url)
    runner = CliRunner()
    swept = runner.invoke(main, ["sweep", "--config", cfg])
    assert swept.exit_code == 0, swept.output
    lines = swept.stdout.splitlines()
    assert lines[0].startswith("Задачи (NEXT_TASK, STATUS_TASKS, REDIAL): Проверено активных сделок: ")
    assert "; исправлено: " in lines[0] and "исправлено: 0;" not in lines[0]
    assert lines[1].startswith("Дисциплина (OVERDUE, INCUBATOR, UNPAID_INVOICE): Открытых задач: ")
    assert "новых нарушений: 0" not in lines[1]
    assert [t["text"] for t in amo.open_tasks(bare)] == ["Продать"]
    assert late in [v.lead_id for v in violations.between(r, "demo", 0, time.time() + 60) if v.rule == "OVERDUE"]

    again = runner.invoke(main, ["sweep", "--config", cfg])
    assert "исправлено: 0;" in again.stdout and "новых нарушений: 0;" in again.stdout

    r.set(keys.key("demo", "lock", "discipline_sweep"), "held by the scheduler's run")
    busy = runner.invoke(main, ["sweep", "--config", cfg])
    assert busy.exit_code == 0, busy.output
    assert busy.stdout.splitlines()[1] == ("Дисциплина (OVERDUE, INCUBATOR, UNPAID_INVOICE): проверка уже идёт "
                                           "(её запустил планировщик) — пропущена.")


def test_sweep_with_an_unknown_pipeline_says_so_instead_of_failing(amo, r, redis_url, tmp_path, caplog):
    cfg = tmp_path / "reglament.yaml"
    doc = yaml.safe_load(open(write_config(tmp_path, amo, redis_url), encoding="utf-8"))
    doc["accounts"][0]["rules"] = {"pipeline": "Входящие"}
    cfg.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    for _ in range(2):
        out = CliRunner().invoke(main, ["sweep", "--config", str(cfg)])
        assert out.exit_code == 0, out.output
        assert out.stdout.splitlines()[0] == ("Задачи (NEXT_TASK, STATUS_TASKS, REDIAL): не выполнена: в настройках имя, "
                                              "которого нет в CRM (см. журнал и reglament check).")
    said = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert len([m for m in said if m.startswith("SWEEP cannot use a name: pipeline «Входящие» not found")]) == 1
