"""Telegram Bot API sendMessage: HTML escaping, 429 retry_after, errors without the token."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from connectors.outbox import OutcomeUnknown
from connectors.telegram import TelegramBot, TelegramError, escape, format_alert
from tests.messaging.conftest import ACCOUNT, BOT_TOKEN

URL = f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"
OK = {"ok": True, "result": {"message_id": 123, "chat": {"id": 42}, "date": 1763630000, "text": "x"}}


@pytest.fixture
def bot(r, fast) -> TelegramBot:
    return TelegramBot(ACCOUNT, BOT_TOKEN, r, **fast)


def test_sends_html_with_user_text_escaped(bot, mocked):
    mocked.post(URL, json=OK)
    result = bot.send_message(42, format_alert("Лид <VIP> & Co", "Клиент написал: <script>alert(1)</script>"), "a1")
    body = json.loads(mocked.calls[0].request.body)
    assert body == {"chat_id": 42, "parse_mode": "HTML",
                    "text": "<b>Лид &lt;VIP&gt; &amp; Co</b>\nКлиент написал: &lt;script&gt;alert(1)&lt;/script&gt;"}
    assert (result.channel, result.provider, result.message_id) == ("telegram", "telegram", "123")
    assert escape('"quoted"') == '"quoted"'  # quotes need no escaping in text


def test_long_alerts_are_cut_to_the_limit():
    text = format_alert("S", "я" * 5000)
    assert len(text) <= 4096 + len("<b></b>") and text.endswith("…")


def test_429_waits_what_the_body_says(bot, mocked, sleeps):
    mocked.post(URL, status=429, json={"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 15",
                                       "parameters": {"retry_after": 15}})
    mocked.post(URL, json=OK)
    assert bot.send_message(42, "hi", "a1").message_id == "123"
    assert len(mocked.calls) == 2
    assert sleeps == [pytest.approx(15, abs=0.01)]


def test_once_per_action_key(bot, mocked):
    mocked.post(URL, json=OK)
    bot.send_message(42, "hi", "a1")
    again = bot.send_message(42, "hi", "a1")
    assert again.duplicate and again.message_id == "123" and len(mocked.calls) == 1


def test_an_alert_of_unknown_outcome_is_sent_again_later(bot, mocked):
    mocked.post(URL, body=requests.ReadTimeout("read timed out"))
    mocked.post(URL, json=OK)
    with pytest.raises(OutcomeUnknown):
        bot.send_message(42, "hi", "a1")
    assert bot.send_message(42, "hi", "a1").message_id == "123"  # a duplicate alert beats a missing one


@pytest.mark.parametrize("status, description, hint", [
    (403, "Forbidden: bot was blocked by the user", "start a chat with the bot"),
    (400, "Bad Request: chat not found", None),
    (401, "Unauthorized", "check telegram.bot_token"),
])
def test_errors_in_plain_words_without_the_token(bot, mocked, caplog, status, description, hint):
    caplog.set_level(logging.DEBUG)
    mocked.post(URL, status=status, json={"ok": False, "error_code": status, "description": description})
    with pytest.raises(TelegramError) as e:
        bot.send_message(42, "hi", "a1")
    assert description in str(e.value) and f"HTTP {status}" in str(e.value)
    if hint:
        assert hint in str(e.value)
    assert BOT_TOKEN not in str(e.value) and BOT_TOKEN not in caplog.text
    assert bot.deliveries.get("a1") is None  # refused: a later attempt may send


def test_group_migration_names_the_new_chat(bot, mocked):
    mocked.post(URL, status=400, json={"ok": False, "error_code": 400,
                                       "description": "Bad Request: group chat was upgraded to a supergroup chat",
                                       "parameters": {"migrate_to_chat_id": -1001234567890}})
    with pytest.raises(TelegramError, match="use chat id -1001234567890"):
        bot.send_message(-42, "hi", "a1")


def test_retry_logs_never_show_the_token(bot, mocked, caplog):
    caplog.set_level(logging.DEBUG)
    mocked.post(URL, status=429, json={"ok": False, "error_code": 429, "parameters": {"retry_after": 1}})
    mocked.post(URL, status=502)
    with pytest.raises(OutcomeUnknown) as e:  # the 502 may have reached Telegram
        bot.send_message(42, "hi", "a1")
    assert BOT_TOKEN not in str(e.value) and BOT_TOKEN not in caplog.text and "bot***/sendMessage" in caplog.text
