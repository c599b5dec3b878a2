"""The one interface rules use: channel order, fallbacks, at most once, settings."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from connectors.http import GaveUp
from connectors.messaging import Messenger, Person, Template
from reglament.messaging_settings import EmailSettings, MessagingSettings, SmsSettings
from connectors.outbox import Outbox
from connectors.wazzup import WazzupError
from tests.conftest import make_settings
from tests.messaging.conftest import (ACCOUNT, ALL_SECRETS, BOT_TOKEN, CHANNEL_ID, WAZZUP_KEY, email_settings,
                                      messaging_settings, smsru_settings)

WAZZUP = "https://api.wazzup24.com/v3"
SMSRU = "https://sms.ru/sms/send"
TELEGRAM = f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"
ACTIVE = [{"channelId": CHANNEL_ID, "transport": "whatsapp", "plainId": "79865784457", "state": "active"}]
SMS_OK = {"status": "OK", "status_code": 100,
          "sms": {"79011112233": {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"}}}
TG_OK = {"ok": True, "result": {"message_id": 7, "chat": {"id": 42}, "date": 1763630000}}


def account(wazzup: bool = True):
    base = make_settings().accounts[0].model_dump(exclude_none=True)
    if wazzup:
        base["wazzup"] = {"api_key": WAZZUP_KEY}
    return make_settings(accounts=[base]).accounts[0]


@pytest.fixture
def make_messenger(r, fast):
    def make(*, wazzup=True, sms=True, telegram=False, email=None, chats=None, **kw) -> Messenger:
        settings = messaging_settings(sms=smsru_settings() if sms else None, telegram=telegram, email=email,
                                      chats=chats)
        return Messenger.for_account(account(wazzup), settings, r, **{**fast, **kw})
    return make


def urls(mocked) -> list[str]:
    return [c.request.url.split("?")[0] for c in mocked.calls]


# ---------------------------------------------------------------- clients

def test_whatsapp_first(make_messenger, mocked):
    mocked.get(f"{WAZZUP}/channels", json=ACTIVE)
    mocked.post(f"{WAZZUP}/message", status=201, json={"messageId": "m-1"})
    messenger = make_messenger()
    result = messenger.message_client("+7 901 111-22-33", "Здравствуйте!", "missed_call:1")
    assert (result.channel, result.message_id, result.delivered) == ("whatsapp", "m-1", True)
    assert SMSRU not in urls(mocked)
    assert messenger.is_our_message(message_id="m-1")


def test_sms_when_no_whatsapp_channel_is_active(make_messenger, mocked):
    mocked.get(f"{WAZZUP}/channels", json=[{**ACTIVE[0], "state": "phoneUnavailable"}])
    mocked.post(SMSRU, json=SMS_OK)
    result = make_messenger().message_client("79011112233", "Здравствуйте!", "missed_call:1")
    assert (result.channel, result.provider) == ("sms", "smsru")
    assert result.reason == "no active WhatsApp channel in Wazzup"
    assert f"{WAZZUP}/message" not in urls(mocked)


def test_sms_when_wazzup_refuses(make_messenger, mocked):
    mocked.get(f"{WAZZUP}/channels", json=ACTIVE)
    mocked.post(f"{WAZZUP}/message", status=400, json={"error": "CHAT_NO_ACCOUNT", "description": "No WhatsApp"})
    mocked.post(SMSRU, json=SMS_OK)
    result = make_messenger().message_client("79011112233", "Здравствуйте!", "missed_call:1")
    assert result.channel == "sms" and "CHAT_NO_ACCOUNT" in result.reason


def test_refusal_is_raised_when_there_is_no_sms(make_messenger, mocked):
    mocked.get(f"{WAZZUP}/channels", json=ACTIVE)
    mocked.post(f"{WAZZUP}/message", status=400, json={"error": "CHANNEL_BLOCKED"})
    with pytest.raises(WazzupError, match="CHANNEL_BLOCKED"):
        make_messenger(sms=False).message_client("79011112233", "hi", "missed_call:1")


def test_no_sms_on_top_of_a_whatsapp_send_that_may_have_gone(make_messenger, mocked):
    mocked.get(f"{WAZZUP}/channels", json=ACTIVE)
    for _ in range(3):
        mocked.post(f"{WAZZUP}/message", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(GaveUp):
        make_messenger().message_client("79011112233", "hi", "missed_call:1")
    assert SMSRU not in urls(mocked)  # retrying later is safe: the same crmMessageId goes again


def test_sms_when_wazzup_is_unreachable_for_a_new_message(make_messenger, mocked):
    for _ in range(3):
        mocked.get(f"{WAZZUP}/channels", status=503)
    mocked.post(SMSRU, json=SMS_OK)
    result = make_messenger().message_client("79011112233", "hi", "missed_call:1")
    assert result.channel == "sms" and "Wazzup unreachable" in result.reason


def test_a_message_sent_by_sms_is_not_sent_again_by_whatsapp(make_messenger, mocked):
    mocked.get(f"{WAZZUP}/channels", json=[])
    mocked.post(SMSRU, json=SMS_OK)
    messenger = make_messenger()
    messenger.message_client("79011112233", "hi", "missed_call:1")
    calls = len(mocked.calls)
    again = messenger.message_client("8 901 111 22 33", "hi", "missed_call:1")
    assert (again.channel, again.duplicate, again.message_id) == ("sms", True, "000000-10000000")
    assert len(mocked.calls) == calls


def test_template_goes_to_whatsapp_and_text_to_sms(make_messenger, mocked):
    mocked.get(f"{WAZZUP}/channels", json=ACTIVE)
    mocked.post(f"{WAZZUP}/message", status=201, json={"messageId": "m-1"})
    make_messenger().message_client("79011112233", "Текст для SMS", "missed_call:1",
                                    template={"template_id": "tpl-1", "values": ["Иван"]})
    body = json.loads(mocked.calls[-1].request.body)
    assert body["templateId"] == "tpl-1" and body["templateValues"] == ["Иван"] and "text" not in body


def test_wazzup_alone_without_channel_goes_to_the_outbox(make_messenger, mocked, r):
    mocked.get(f"{WAZZUP}/channels", json=[])
    result = make_messenger(sms=False).message_client("79011112233", "hi", "missed_call:1")
    assert result.channel == "outbox" and result.reason == "no active WhatsApp channel in Wazzup"
    assert Outbox(r, ACCOUNT).entries()[0].recipient == "+79011112233"


# ---------------------------------------------------------------- staff

def test_alert_by_telegram_with_the_chat_from_settings(make_messenger, mocked):
    mocked.post(TELEGRAM, json=TG_OK)
    messenger = make_messenger(wazzup=False, sms=False, telegram=True, chats={"555": 42})
    result = messenger.alert_person({"name": "Ольга", "id": 555}, "Пропущенный звонок", "Клиент <ждёт>",
                                    action_key="alert:1")
    assert (result.channel, result.message_id) == ("telegram", "7")
    body = json.loads(mocked.calls[0].request.body)
    assert body["chat_id"] == 42 and body["text"] == "<b>Пропущенный звонок</b>\nКлиент &lt;ждёт&gt;"
    assert messenger.alert_person(Person("Ольга", id="555"), "x", "y", action_key="alert:1").duplicate
    assert len(mocked.calls) == 1


def test_alert_falls_back_to_email(make_messenger, mocked, smtp_sink):
    mocked.post(TELEGRAM, status=403, json={"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"})
    messenger = make_messenger(wazzup=False, sms=False, telegram=True, email=email_settings(smtp_sink))
    result = messenger.alert_person({"name": "Ольга", "telegram_chat_id": 42, "email": "olga@acme.example"},
                                    "Нарушение", "Лид без задачи", html="<p>Лид без задачи</p>", action_key="alert:1")
    assert result.channel == "email" and "bot was blocked" in result.reason
    assert smtp_sink.messages()[0].get_body(("html",)).get_content().strip() == "<p>Лид без задачи</p>"


def test_alert_to_a_person_without_channel_is_not_delivered(make_messenger, mocked, r, smtp_sink):
    messenger = make_messenger(wazzup=False, sms=False, telegram=True, email=email_settings(smtp_sink))
    result = messenger.alert_person({"name": "Ольга"}, "Нарушение", "Лид без задачи", action_key="alert:1")
    assert not result.delivered  # the hook: the caller falls back to an amoCRM task
    assert result.reason == "no Telegram chat for this person; no e-mail address for this person"
    assert not mocked.calls and not smtp_sink.received
    assert Outbox(r, ACCOUNT).entries()[0].recipient == "Ольга"


def test_one_action_key_may_alert_several_people(make_messenger, mocked):
    mocked.post(TELEGRAM, json=TG_OK)
    messenger = make_messenger(wazzup=False, sms=False, telegram=True)
    for chat in (1, 2):
        assert not messenger.alert_person({"name": f"p{chat}", "telegram_chat_id": chat}, "s", "t",
                                          action_key="alert:1").duplicate
    assert len(mocked.calls) == 2


# ---------------------------------------------------------------- settings and secrets

def test_settings_validation():
    with pytest.raises(ValidationError, match="provider smsru needs api_id"):
        SmsSettings(provider="smsru")
    with pytest.raises(ValidationError, match="provider smsc needs login and password"):
        SmsSettings(provider="smsc", login="x")
    with pytest.raises(ValidationError):
        MessagingSettings.model_validate({"sms": {"provider": "smsru", "api_id": "x", "colour": "red"}})
    mail = EmailSettings.model_validate({"host": "smtp.example", "from": "robot@example.ru", "password": "pw-123456"})
    assert mail.sender == "robot@example.ru" and mail.security == "starttls"
    settings = MessagingSettings.model_validate({
        "sms": {"provider": "smsc", "login": "l", "password": "smsc-pw"},
        "telegram": {"bot_token": "tok-123456", "chats": {"Ольга": 42, 555: 43}},
        "email": {"host": "smtp.example", "from": "robot@example.ru", "password": "pw-123456"}})
    assert sorted(settings.secrets()) == ["pw-123456", "smsc-pw", "tok-123456"]
    assert settings.telegram.chats == {"Ольга": 42, "555": 43}


def test_from_account_reads_the_sections_once_they_exist():
    class WithSections:
        sms = smsru_settings()
        telegram = None

    settings = MessagingSettings.from_account(WithSections())
    assert settings.sms.provider == "smsru" and settings.telegram is None and settings.email is None


def test_importing_messaging_does_not_import_the_config_module():
    # reglament.config may import the settings models from connectors.messaging without a cycle.
    code = "import sys, connectors.messaging; print('reglament.config' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True).stdout.strip()
    assert out == "False"


def test_no_secret_reaches_logs_or_errors(make_messenger, mocked, caplog):
    caplog.set_level(logging.DEBUG)
    mocked.get(f"{WAZZUP}/channels", status=401)
    mocked.post(SMSRU, json={"status": "ERROR", "status_code": 200, "status_text": "bad api_id"})
    mocked.post(TELEGRAM, status=401, json={"ok": False, "error_code": 401, "description": "Unauthorized"})
    messenger = make_messenger(telegram=True, email=email_settings(port=1, timeout=1, user="robot",
                                                                   password=ALL_SECRETS[-1]))
    errors = []
    try:
        messenger.message_client("79011112233", "hi", "missed_call:1")
    except Exception as exc:  # noqa: BLE001 - any error will do: we look at its words
        errors.append(str(exc))
    result = messenger.alert_person({"name": "Ольга", "telegram_chat_id": 42, "email": "o@acme.example"},
                                    "s", "t", action_key="alert:1")
    errors.append(result.reason)
    assert len(errors) == 2 and not result.delivered
    for secret in ALL_SECRETS:
        assert secret not in caplog.text
        assert all(secret not in e for e in errors)
    assert "check telegram.bot_token" in result.reason


def test_template_type_is_exported():
    assert Template("t").body() == {"templateId": "t", "templateValues": []}


def test_a_shared_session_does_not_carry_the_wazzup_key_elsewhere(make_messenger, mocked):
    mocked.get(f"{WAZZUP}/channels", json=ACTIVE)
    mocked.post(TELEGRAM, json=TG_OK)
    messenger = make_messenger(telegram=True, session=requests.Session())
    messenger.wazzup.usable_channel()
    messenger.alert_person({"name": "Ольга", "telegram_chat_id": 42}, "s", "t", action_key="alert:1")
    wazzup_call, telegram_call = mocked.calls
    assert wazzup_call.request.headers["Authorization"] == f"Bearer {WAZZUP_KEY}"
    assert "Authorization" not in telegram_call.request.headers
