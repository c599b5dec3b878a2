"""Fixtures for messaging tests: instant retries, a mocked HTTP layer, settings, an SMTP sink."""

from __future__ import annotations

import pytest
import responses

from reglament.messaging_settings import EmailSettings, MessagingSettings, SmsSettings, TelegramSettings
from tests.messaging.smtp_sink import SmtpSink

ACCOUNT = "acme"
WAZZUP_KEY = "wz-0123456789abcdef0123456789abcdef"
SMSRU_API_ID = "SMSRU-API-ID-1234-5678-9ABC"
SMSC_PASSWORD = "smsc-pass-w0rd-secret"
BOT_TOKEN = "123456789:AAE-telegram-bot-SECRET-token"
SMTP_PASSWORD = "smtp-pass-w0rd-secret"
CHANNEL_ID = "e0629e11-0f67-4567-92a9-2237e91ec1b9"
ALL_SECRETS = (WAZZUP_KEY, SMSRU_API_ID, SMSC_PASSWORD, BOT_TOKEN, SMTP_PASSWORD)


@pytest.fixture
def sleeps() -> list[float]:
    """Waits the retry logic asked for; recorded instead of slept."""
    return []


@pytest.fixture
def fast(sleeps) -> dict:
    """HTTP client options for instant retries."""
    return dict(backoff_base=0.001, backoff_max=0.002, max_attempts=3, sleep=sleeps.append)


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def smtp_sink():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


def smsru_settings(**kw) -> SmsSettings:
    return SmsSettings(provider="smsru", api_id=SMSRU_API_ID, **kw)


def smsc_settings(**kw) -> SmsSettings:
    return SmsSettings(provider="smsc", login="acme-login", password=SMSC_PASSWORD, **kw)


def email_settings(sink: SmtpSink | None = None, **kw) -> EmailSettings:
    doc = {"host": "127.0.0.1", "port": sink.port if sink else 2525, "security": "plain",
           "from": "Reglament <robot@acme.example>", "timeout": 5}
    doc.update(kw)
    return EmailSettings.model_validate(doc)


def messaging_settings(*, sms=None, telegram=False, email=None, chats=None) -> MessagingSettings:
    return MessagingSettings(sms=sms, email=email,
                             telegram=TelegramSettings(bot_token=BOT_TOKEN, chats=chats or {}) if telegram else None)
