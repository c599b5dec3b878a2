"""Every name every rule uses is resolved against the CRM: the list comes from the settings
(core), the connector only resolves it; `reglament check` prints what the account lacks."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from connectors.amocrm.crm import AmoCRM
from reglament import names, rule_settings
from reglament.config import Department
from shell.cli import main
from tests.engine.conftest import TOKEN, engine_settings


def connector(amo, r, rules: dict | None = None, **account) -> AmoCRM:
    acc = engine_settings(amo.server.url, rules, **account).accounts[0]
    return AmoCRM.for_account(acc, r, rule_settings.load(acc.rules))


def test_the_settings_list_the_names_of_every_rule_family():
    s = rule_settings.load({"distribution": {"managers": [{"name": "Анна Смирнова"}], "fallback_user": "Галина",
                                             "status": "Новая заявка"}})
    used = s.used_names([Department(name="Продажи", head="Галина Орлова", managers=["Борис Иванов"])])
    got = {(u.where, u.kind, u.name) for u in used}
    for expected in [("rules.discipline.incubator.status", names.STATUS, "Инкубатор"),
                     ("rules.discipline.incubator.meeting_task_types", names.TASK_TYPE, "Встреча"),
                     ("rules.discipline.incubator.meeting_field", names.DATE_FIELD, "Дата пробного"),
                     ("rules.discipline.comment_codes.callback_status", names.STATUS, "Просил перезвонить"),
                     ("rules.discipline.comment_codes.refusal_statuses", names.STATUS, "Отказ"),
                     ("rules.discipline.unpaid_invoice.status_field", names.LEAD_FIELD, "Статус счёта"),
                     ("rules.discipline.unpaid_invoice.due_field", names.DATE_FIELD, "Срок оплаты"),
                     ("rules.distribution.managers[0].name", names.USER, "Анна Смирнова"),
                     ("rules.distribution.fallback_user", names.USER, "Галина"),
                     ("rules.distribution.source_field", names.LEAD_FIELD, "Источник"),
                     ("rules.calls.missed_call.task_type", names.TASK_TYPE, "Звонок"),
                     ("rules.redial.loss_reason", names.LOSS_REASON, "Не дозвонились 7 раз"),
                     ("rules.fields.callback_at", names.DATE_FIELD, "Дата перезвона"),
                     ("rules.fields.redial_attempt", names.LEAD_FIELD, "Попытка дозвона"),
                     ("departments[0] (Продажи).head", names.USER, "Галина Орлова"),
                     ("departments[0] (Продажи).managers", names.USER, "Борис Иванов")]:
        assert expected in got, expected
    assert next(u for u in used if u.where == "rules.distribution.status").pipeline is None  # the watched one
    # A disabled rule's names are not needed.
    off = rule_settings.load({"discipline": {"incubator": {"enabled": False}, "unpaid_invoice": {"enabled": False}}})
    assert not [u for u in off.used_names() if ".incubator." in u.where or ".unpaid_invoice." in u.where]
    # No distribution group: its managers are not listed.
    assert not [u for u in rule_settings.load({}).used_names() if u.kind == names.USER]


def test_unknown_names_of_every_kind_are_listed_with_the_valid_ones(amo, r):
    problems = connector(amo, r, {
        "discipline": {"incubator": {"status": "Инкубатр", "meeting_task_types": ["Встреча", "Визит"]},
                       "comment_codes": {"callback_status": "Перезвонить", "callback_field": None},
                       "unpaid_invoice": {"due_field": "Статус счёта"}},
        "distribution": {"managers": [{"name": "Анна Смирнова"}, {"name": "Дмитрий Сидоров"}],
                         "fallback_user": "Галина", "status": "Новые", "utm_field": None},
    }, departments=[{"name": "Продажи", "head": "Ирина Ким", "managers": ["Борис Иванов"]}]).resolve_problems()
    text = "\n".join(problems)
    assert all(not p.optional for p in problems)
    statuses = "statuses: «Новая заявка», «Недозвон», «Просил перезвонить»"
    assert f"rules.discipline.incubator.status: status «Инкубатр» is not in any pipeline; {statuses}" in text
    assert "rules.discipline.comment_codes.callback_status: status «Перезвонить» is not in any pipeline" in text
    assert "rules.discipline.incubator.meeting_task_types: task type «Визит» not found; " \
           "task types: «Звонок», «Встреча», «Важный звонок»" in text
    assert "rules.discipline.unpaid_invoice.due_field: lead field «Статус счёта» is of type text, " \
           "a date or date-time field is needed" in text
    users = "users: «Анна Смирнова», «Борис Иванов», «Вера Петрова», «Галина Орлова»"
    assert f"rules.distribution.managers[1].name: user «Дмитрий Сидоров» not found; {users}" in text
    assert "rules.distribution.fallback_user: user «Галина» not found" in text
    assert "rules.distribution.status: status «Новые» is not in any pipeline" in text
    assert f"departments[0] (Продажи).head: user «Ирина Ким» not found; {users}" in text
    assert len(problems) == 8  # and nothing the account has
    # A status of the distribution's own pipeline is looked for there; an unknown pipeline is said once.
    found = connector(amo, r, {"distribution": {"pipeline": "Входящие", "status": "Новые"}}).resolve_problems()
    assert [p for p in found if not p.optional] == [
        "rules.distribution.pipeline: pipeline «Входящие» not found; the account has: «Продажи»"]


def test_an_active_status_with_no_next_step_is_warned_about(amo, r):
    """With default_task off, a status missing from the table would leave its leads without a task."""
    assert not [p for p in connector(amo, r).resolve_problems() if "no next step" in p]  # the defaults cover all
    rules = {"default_task": None, "statuses": {"Клиент": {"task": "Продление", "due": {"kind": "days", "days": 3}}}}
    found = [p for p in connector(amo, r, rules).resolve_problems() if "no next step" in p]
    assert all(p.optional for p in found)
    stuck = {p.split("«")[1].split("»")[0] for p in found}
    assert {"Новая заявка", "Недозвон", "Просил перезвонить", "Инкубатор"} <= stuck
    assert not stuck & {"Клиент", "Отказ", "Расторгнут договор", "Завершил"}  # the table's and the terminal ones


def test_check_lists_an_unknown_incubator_status_and_an_unknown_manager(amo, redis_url, tmp_path):
    path = tmp_path / "reglament.yaml"
    doc = {"redis_url": redis_url, "accounts": [{
        "id": "demo", "amocrm": {"base_url": amo.server.url, "long_lived_token": TOKEN},
        "webhook_secret": "names-webhook-secret-0123",
        "rules": {"discipline": {"incubator": {"status": "Инкубатр"}},
                  "distribution": {"managers": [{"name": "Анна Смирнова"}, {"name": "Дмитрий Сидоров"}]}}}]}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "2 problem(s) in the CRM names" in out
    assert "accounts (demo).rules.discipline.incubator.status: status «Инкубатр» is not in any pipeline" in out
    assert "«Инкубатор»" in out  # the valid ones
    assert "accounts (demo).rules.distribution.managers[1].name: user «Дмитрий Сидоров» not found" in out
    # The optional names the demo lacks are notices: the file is otherwise fine.
    assert "2 optional name(s) the CRM lacks" in out and "callback_field" in out

    doc["accounts"][0]["rules"] = {}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK: 1 account(s): demo" in result.output


# --------------------------------------------------------------------------- while the service runs

def errors(caplog) -> list[str]:
    return [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR" and rec.name == "reglament.names"]


def test_an_unknown_name_stops_only_its_rule_on_its_lead_and_is_said_once(amo, r, caplog):
    from datetime import datetime, timedelta, timezone

    from jobs import context
    from reglament.crm import AddNote, CreateTask, SetLeadStatus

    context.set_settings(engine_settings(amo.server.url), r)
    ex = context.executor_for("demo")
    broken, fine = amo.create_lead("Новая заявка"), amo.create_lead("Новая заявка")
    due = datetime.now(timezone.utc) + timedelta(hours=1)
    actions = [SetLeadStatus(lead_id=broken, status="Инкубатр", action_key=f"INCUBATOR:{broken}:move"),
               AddNote(lead_id=broken, text="moved", action_key=f"INCUBATOR:{broken}:note"),
               CreateTask(lead_id=fine, text="Позвонить", task_type="Звонок", due=due, responsible_id=None,
                          action_key=f"NEXT_TASK:{fine}:t")]
    for _ in range(3):  # a webhook, its retry, a sweep: the name is said once, nothing raises
        ex.apply(ex.unapplied(actions))
    assert [t["text"] for t in amo.open_tasks(fine)] == ["Позвонить"]
    assert amo.lead(broken)["status_id"] == 61000001
    assert [a.action_key for a in ex.unapplied(actions)] == [f"INCUBATOR:{broken}:move", f"INCUBATOR:{broken}:note"]
    said = errors(caplog)
    assert len(said) == 1 and said[0].startswith("INCUBATOR cannot use a name: status «Инкубатр» not found")
    from reglament import keys
    assert r.hget(keys.metrics("demo"), "unknown_names_total\trule=INCUBATOR") == b"3"


def test_a_pipeline_or_a_gone_lead_is_not_one_rules_name_and_goes_on_to_the_job(amo, r, caplog):
    from datetime import datetime, timezone

    import pytest

    from jobs import context, deferral
    from reglament.crm import CreateLead, SetLeadStatus, UnknownName

    context.set_settings(engine_settings(amo.server.url, {"pipeline": "Входящие"}), r)
    ex = context.executor_for("demo")
    with pytest.raises(UnknownName) as pipeline:   # every rule needs it: jobs/deferral.py stops the account
        ex.apply([CreateLead(name="Звонок", phone=None, responsible_id=None, action_key="MISSED_CALL:0:lead")])
    assert pipeline.value.kind == names.PIPELINE and deferral._settings_wrong(pipeline.value, "demo")
    context.set_settings(engine_settings(amo.server.url), r)
    ex = context.executor_for("demo")
    with pytest.raises(UnknownName) as gone:       # a lead deleted meanwhile: an error like any other
        ex.apply([SetLeadStatus(lead_id=999, status="Отказ", action_key="REDIAL:999:final")])
    assert gone.value.kind == names.LEAD and not deferral._settings_wrong(gone.value, "demo")
    # The demo lacks two optional names: a notice, which stops nothing.
    wrong = UnknownName("status «Инкубатр» not found", kind=names.STATUS, name="Инкубатр")
    assert not deferral._settings_wrong(wrong, "demo")
    assert errors(caplog) == []


def test_the_worker_logs_the_names_problems_at_start(amo, r, caplog):
    from jobs import context
    from jobs import names as runtime_names

    settings = engine_settings(amo.server.url, {"discipline": {"incubator": {"status": "Инкубатр"}}})
    context.set_settings(settings, r)
    mark = amo.mark()
    assert runtime_names.log_problems(settings) == 1
    logged = [(rec.levelname, rec.getMessage()) for rec in caplog.records if rec.name == "reglament.names"]
    assert ("ERROR", "unknown name: rules.discipline.incubator.status: status «Инкубатр» is not in any pipeline; "
                     "statuses: «Новая заявка», «Недозвон», «Просил перезвонить», «Записался на пробное», "
                     "«Не пришел на пробное», «Пришел на пробное», «Принимает решение», «Клиент», «Инкубатор», "
                     "«Отказ», «Расторгнут договор», «Завершил», «Успешно реализовано», "
                     "«Закрыто и не реализовано»") in logged
    assert sum(1 for level, _ in logged if level == "WARNING") == 2  # the demo's two optional names
    assert len(amo.requests_since(mark)) == 5  # one read of the account's names, not a storm


def test_distribution_skips_a_manager_the_crm_lacks_and_says_so_once(amo, r, caplog):
    from datetime import datetime, timezone

    from jobs import context
    from jobs.handlers import distribution
    from tests.engine.conftest import ALL_DAY, ANNA

    context.set_settings(engine_settings(amo.server.url, {"distribution": {"managers": [
        {"name": "Дмитрий Сидоров", "shifts": ALL_DAY}, {"name": "Анна Смирнова", "shifts": ALL_DAY}]}}), r)
    leads = [amo.create_lead("Новая заявка", responsible=9100004) for _ in range(2)]
    for lead_id in leads:
        distribution.assign("demo", lead_id, 9100004, datetime.now(timezone.utc))
    assert [amo.lead(i)["responsible_user_id"] for i in leads] == [ANNA, ANNA]
    assert [m.split(":")[0] for m in errors(caplog)] == ["DISTRIBUTION cannot use a name"]
    assert "user «Дмитрий Сидоров» not found" in errors(caplog)[0]
