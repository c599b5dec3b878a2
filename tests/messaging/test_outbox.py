"""The outbox: used when nothing is configured, logged in one line, listed by `reglament outbox`."""

from __future__ import annotations

import logging

import yaml
from click.testing import CliRunner

from connectors.messaging import Messenger
from reglament.messaging_settings import MessagingSettings
from connectors.outbox import Outbox
from shell.cli import main
from tests.conftest import SECRET, TOKEN, make_settings
from tests.messaging.conftest import ACCOUNT


def bare_messenger(r) -> Messenger:
    return Messenger.for_account(make_settings().account(ACCOUNT), MessagingSettings(), r)


def test_nothing_configured_means_the_outbox(r, caplog):
    caplog.set_level(logging.INFO)
    messenger = bare_messenger(r)
    result = messenger.message_client("8 901 111-22-33", "Здравствуйте!\nПерезвоним.", "missed_call:1")
    assert result.channel == "outbox" and not result.delivered
    assert result.reason == "no WhatsApp (Wazzup) or SMS provider configured"
    alert = messenger.alert_person({"name": "Ольга"}, "Пропущенный звонок", "Клиент ждёт", action_key="alert:1")
    assert alert.channel == "outbox" and not alert.delivered
    entries = Outbox(r, ACCOUNT).entries()
    assert [(e.kind, e.recipient, e.subject, e.text) for e in entries] == [
        ("alert", "Ольга", "Пропущенный звонок", "Клиент ждёт"),
        ("client", "+79011112233", "", "Здравствуйте!\nПерезвоним.")]
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "connectors.outbox"]
    assert lines[0] == ("outbox: client message to +79011112233 not sent (no WhatsApp (Wazzup) or SMS provider "
                        "configured): Здравствуйте! ⏎ Перезвоним.")
    assert all("\n" not in line for line in lines)


def test_the_same_action_is_stored_once(r):
    messenger = bare_messenger(r)
    messenger.message_client("79011112233", "hi", "missed_call:1")
    again = messenger.message_client("79011112233", "hi", "missed_call:1")
    assert again.duplicate and len(Outbox(r, ACCOUNT).entries()) == 1
    messenger.message_client("79011112244", "hi", "missed_call:1")  # another recipient is another message
    assert len(Outbox(r, ACCOUNT).entries()) == 2


def test_the_outbox_is_capped(r):
    outbox = Outbox(r, ACCOUNT, keep=5)
    for i in range(200):
        outbox.put("client", "+7901", f"m{i}", action_key=f"k{i}", reason="test")
    assert len(outbox.entries(500)) < 200
    assert outbox.entries(1)[0].text == "m199"


def test_reglament_outbox_lists_newest_first(r, redis_url, tmp_path):
    messenger = bare_messenger(r)
    messenger.message_client("79011112233", "Первое сообщение", "missed_call:1")
    messenger.alert_person({"name": "Ольга"}, "Нарушение", "Лид без задачи", action_key="alert:1")
    path = tmp_path / "reglament.yaml"
    path.write_text(yaml.safe_dump({"redis_url": redis_url, "accounts": [{
        "id": ACCOUNT, "webhook_secret": SECRET,
        "amocrm": {"base_url": "https://acme.amocrm.ru", "long_lived_token": TOKEN}}]}, allow_unicode=True))
    result = CliRunner().invoke(main, ["outbox", "--config", str(path), "--limit", "5"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert "alert" in lines[0] and "Ольга" in lines[0] and "Нарушение: Лид без задачи" in lines[0]
    assert "client" in lines[1] and "+79011112233" in lines[1] and "Первое сообщение" in lines[1]
    assert lines[0][:4].isdigit()  # starts with the time
    one = CliRunner().invoke(main, ["outbox", "--config", str(path), "--account", ACCOUNT, "--limit", "1"])
    assert one.output.count("\n") == 1 and "Ольга" in one.output
