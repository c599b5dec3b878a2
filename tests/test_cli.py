"""The configuration commands and the inspection/recovery commands."""

import yaml
from click.testing import CliRunner

from reglament import keys
from shell.cli import main
from tests.conftest import SECRET
from tests.fixtures import load

ENV = {"AMOCRM_TOKEN": "tok-123456789", "REGLAMENT_WEBHOOK_SECRET": "a-webhook-secret-0123456789"}


def first_account(path, env):
    """The configuration file's first account, loaded with `env` set."""
    from unittest import mock

    from reglament.config import load as load_config

    with mock.patch.dict("os.environ", env):
        return load_config(path).accounts[0]


def test_init_writes_a_file_that_check_accepts(tmp_path):
    runner = CliRunner()
    path = tmp_path / "reglament.yaml"
    assert runner.invoke(main, ["init", str(path)]).exit_code == 0
    text = path.read_text()
    assert "Дозвониться" in text and "Не дозвонились 7 раз" in text and "${AMOCRM_TOKEN}" in text
    result = runner.invoke(main, ["check", "--no-crm", "--config", str(path)], env=ENV)
    assert result.exit_code == 0, result.output
    assert "OK: 1 account(s): main" in result.output
    from reglament.rule_settings import load as load_rules

    load_rules(first_account(path, ENV).rules)  # the rules block is valid as written
    assert runner.invoke(main, ["init", str(path)]).exit_code != 0  # never overwrites silently


def test_init_writes_departments_telegram_and_email_ready_to_uncomment(tmp_path):
    path = tmp_path / "reglament.yaml"
    assert CliRunner().invoke(main, ["init", str(path)]).exit_code == 0
    lines, on = [], False
    for line in path.read_text().splitlines():
        if line in ("    # departments:", "    # telegram:", "    # email:"):
            on = True
        elif not line.startswith("    #   "):
            on = False
        lines.append(line.replace("    # ", "    ", 1) if on else line)
    assert sum(1 for line in lines if line in ("    departments:", "    telegram:", "    email:")) == 3
    path.write_text("\n".join(lines) + "\n")
    env = {**ENV, "DASHBOARD_TOKEN": "dash-token-0123456789", "TELEGRAM_BOT_TOKEN": "1:bot", "SMTP_PASSWORD": "pw"}
    result = CliRunner().invoke(main, ["check", "--no-crm", "--config", str(path)], env=env)
    assert result.exit_code == 0, result.output
    account = first_account(path, env)
    assert account.departments[0].head == "Галина Орлова" and account.telegram.chats["9100001"] == 987654321
    assert account.email.addresses == {"Галина Орлова": "head@example.ru"}


def test_check_lists_every_problem_with_its_place(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"accounts": [{
        "id": "Main!", "webhook_secret": "short", "timezone": "Mars/Base",
        "amocrm": {"base_url": "amocrm.ru", "long_lived_token": "${NOT_SET_ANYWHERE}"},
        "working_hours": {"mon": "9-18"}, "colour": "red"}]}))
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 1
    out = result.output
    assert "7 problem(s)" in out
    for needle in ["accounts[0] (Main!).id: String should match", "accounts[0] (Main!).webhook_secret:",
                   "unknown time zone 'Mars/Base'", "accounts[0] (Main!).colour: unknown setting",
                   "long_lived_token: environment variable NOT_SET_ANYWHERE is not set",
                   "'9-18' is not a span", "base_url: must be an http(s) URL"]:
        assert needle in out, needle


def test_service_commands_refuse_an_invalid_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("accounts: []\n")
    for command in (["web"], ["worker"], ["scheduler"], ["run"]):
        result = CliRunner().invoke(main, command + ["--config", str(path)])
        assert result.exit_code == 2, command
        assert "accounts" in result.output


def _config(tmp_path, redis_url):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"redis_url": redis_url, "accounts": [{
        "id": "acme", "webhook_secret": SECRET,
        "amocrm": {"base_url": "https://acme.amocrm.ru", "long_lived_token": "t0ken-xyz-123"}}]}))
    return str(path)


def test_rejected_lists_refused_bodies(client, redis_url, tmp_path):
    client.post(f"/hooks/amocrm/{SECRET}", data=b"garbage", content_type="application/x-www-form-urlencoded")
    result = CliRunner().invoke(main, ["rejected", "--config", _config(tmp_path, redis_url), "--body"])
    assert result.exit_code == 0
    assert "400 malformed" in result.output and "garbage" in result.output


def test_replay_by_id_and_by_time_enqueues_the_events_again(client, r, redis_url, tmp_path):
    from tests.jobs_helpers import queued_events

    resp = client.post(f"/hooks/amocrm/{SECRET}", data=load.amocrm("multi_section"),
                       content_type="application/x-www-form-urlencoded")
    delivery = resp.json["delivery"]
    cfg = _config(tmp_path, redis_url)
    result = CliRunner().invoke(main, ["replay", "--config", cfg, "--id", delivery])
    assert "Re-enqueued 4 event(s) from 1 delivery" in result.output
    result = CliRunner().invoke(main, ["replay", "--config", cfg, "--since", "2000-01-01"])
    assert "Re-enqueued 4 event(s) from 1 delivery" in result.output
    events = queued_events(r)
    assert len(events) == 8 and {e["kind"] for e in events} == {"lead.status_changed", "lead.updated", "task.added"}
    assert r.xlen(keys.inbox("acme")) == 1  # replay reads the inbox, it does not add to it


def test_check_looks_up_rule_names_in_the_crm(tmp_path, redis_url):
    from sandbox.amocrm import SandboxServer

    with SandboxServer(token="tok-check-123456", rate_limit=0) as amo:
        doc = {"redis_url": redis_url, "accounts": [{
            "id": "acme", "webhook_secret": SECRET,
            "amocrm": {"base_url": amo.url, "long_lived_token": amo.token}}]}
        path = tmp_path / "ok.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        result = CliRunner().invoke(main, ["check", "--config", str(path)])
        assert result.exit_code == 0, result.output

        doc["accounts"][0]["rules"] = {"terminal_statuses": ["Отказ", "Отказался"]}
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        result = CliRunner().invoke(main, ["check", "--config", str(path)])
        assert result.exit_code == 1
        assert "Отказался" in result.output and "Недозвон" in result.output  # the unknown name and the valid ones


def test_check_validates_the_rules_block_with_its_place(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"accounts": [{
        "id": "acme", "webhook_secret": SECRET, "amocrm": {"base_url": "https://a.amocrm.ru", "long_lived_token": "x" * 10},
        "rules": {"redial": {"max_failures": "seven"}, "colour": 1}}]}))
    result = CliRunner().invoke(main, ["check", "--no-crm", "--config", str(path)])
    assert result.exit_code == 1
    assert "accounts[0] (acme).rules.redial.max_failures" in result.output
    assert "accounts[0] (acme).rules.colour: unknown setting" in result.output


def test_absent_from_until_list_and_clear(r, redis_url, tmp_path):
    import re
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from reglament import shifts

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"redis_url": redis_url, "accounts": [{
        "id": "acme", "webhook_secret": SECRET, "timezone": "Europe/Moscow",
        "amocrm": {"base_url": "https://acme.amocrm.ru", "long_lived_token": "t0ken-xyz-123"},
        "rules": {"distribution": {"managers": [{"name": "Анна Смирнова"}, {"name": "Вера Петрова"}]}}}]},
        allow_unicode=True))

    def absent(*args):
        return CliRunner().invoke(main, ["absent", *args, "--config", str(path)])

    assert absent("--list").output == "Отсутствий нет.\n"
    out = absent("вера петрова", "--from", "10.03.2099", "--until", "2099-03-17 09:00")
    assert out.exit_code == 0, out.output
    assert out.output == "Вера Петрова: отсутствует с 10.03.2099 00:00 до 17.03.2099 09:00 — " \
                         "в это время новые заявки его пропускают.\n"
    msk = ZoneInfo("Europe/Moscow")
    assert shifts.absences(r, "acme")["вера петрова"] == \
        shifts.Absence(datetime(2099, 3, 10, tzinfo=msk), datetime(2099, 3, 17, 9, tzinfo=msk))
    # Without --from it starts now, as before.
    out = absent("Анна Смирнова", "--until", "2099-01-01")
    assert out.output == "Анна Смирнова: отсутствует до 01.01.2099 00:00 — новые заявки его пропускают.\n"
    assert shifts.is_absent(shifts.absences(r, "acme"), "Анна Смирнова", datetime.now(timezone.utc))
    # Setting again replaces the absence.
    assert absent("Вера Петрова", "--from", "2099-04-01", "--until", "2099-04-08").exit_code == 0

    # Each absence in local time, earliest first; an ended one is marked; --list changes nothing.
    shifts.set_absent(r, "acme", "Бывший Менеджер", datetime.now(timezone.utc) - timedelta(days=1),
                      datetime(2020, 1, 1, 9, tzinfo=msk))
    stored = r.hgetall(keys.key("acme", "dist", "absent"))
    out = absent("--list")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("бывший менеджер: отсутствует с 01.01.2020 09:00 до ") and \
        lines[0].endswith(" (закончилось).")
    assert re.fullmatch(r"Анна Смирнова: отсутствует с \d\d\.\d\d\.\d{4} \d\d:\d\d до 01\.01\.2099 00:00\.", lines[1])
    assert lines[2:] == ["Вера Петрова: отсутствует с 01.04.2099 00:00 до 08.04.2099 00:00."]
    assert r.hgetall(keys.key("acme", "dist", "absent")) == stored

    # Usage errors, nothing stored.
    for args, message in [
        (("Вера Петрова", "--from", "2099-03-10", "--until", "2099-03-10"), "--until must be after --from"),
        (("Вера Петрова", "--from", "2099-03-10", "--until", "2099-03-09 23:00"), "--until must be after --from"),
        (("Вера Петрова", "--until", "2020-01-01"), "--until is in the past"),
        (("Вера Петрова", "--from", "2099-03-10"), "give --until"),
        (("--until", "2099-01-01"), "give a manager"),
        (("Вера Петрова", "--list"), "--list takes no manager"),
        (("Никто", "--until", "2099-01-01"), "is not in rules.distribution.managers"),
        (("Вера Петрова", "--until", "next week"), "Invalid value for '--until'"),
    ]:
        out = absent(*args)
        assert out.exit_code == 2 and message in out.output, (args, out.output)
    assert r.hgetall(keys.key("acme", "dist", "absent")) == stored

    assert absent("Вера Петрова", "--clear").output == "Вера Петрова: отсутствие снято.\n"
    assert absent("Вера Петрова", "--clear").output == "Вера Петрова: отсутствие не было задано.\n"
    assert "Вера" not in absent("--list").output
    # A value stored before absences had a start: a bare end time.
    r.hset(keys.key("acme", "dist", "absent"), "анна смирнова", datetime(2099, 1, 1, tzinfo=msk).timestamp())
    assert "Анна Смирнова: отсутствует до 01.01.2099 00:00.\n" in absent("--list").output


def test_init_for_bitrix24_writes_an_account_on_bitrix24_that_check_accepts(tmp_path):
    path = tmp_path / "reglament.yaml"
    assert CliRunner().invoke(main, ["init", "--crm", "bitrix24", str(path)]).exit_code == 0
    text = path.read_text()
    assert "amocrm" not in text.split("    rules:")[0] and "${B24_WEBHOOK}" in text
    env = {"B24_WEBHOOK": "https://example.bitrix24.ru/rest/1/abcdef0123456789/",
           "B24_APPLICATION_TOKEN": "app-token-0123456789", "REGLAMENT_WEBHOOK_SECRET": ENV["REGLAMENT_WEBHOOK_SECRET"]}
    result = CliRunner().invoke(main, ["check", "--no-crm", "--config", str(path)], env=env)
    assert result.exit_code == 0, result.output
    account = first_account(path, env)
    assert account.crm == "bitrix24" and account.bitrix24.next_step == "todo" and account.bitrix24.catchup_seconds == 60
