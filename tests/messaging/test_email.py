"""E-mail over SMTP: both parts, once per action key, STARTTLS/SSL per config, failures."""

from __future__ import annotations

import smtplib

import pytest

from connectors.email import EmailError, Mailer, connect
from connectors.outbox import OutcomeUnknown
from tests.messaging.conftest import ACCOUNT, SMTP_PASSWORD, email_settings


def test_message_has_a_plain_text_and_an_html_part(r, smtp_sink):
    mailer = Mailer(ACCOUNT, email_settings(smtp_sink), r)
    result = mailer.send("head@acme.example", "Пропущенный звонок", "Клиент +79011112233 не дождался ответа.\n\n"
                         "Лид #123 <важный>", "alert:1")
    assert (result.channel, result.provider) == ("email", "smtp")
    [(mail_from, rcpts, _)] = smtp_sink.received
    assert mail_from == "<robot@acme.example>" and rcpts == ["<head@acme.example>"]
    [message] = smtp_sink.messages()
    assert message["Subject"] == "Пропущенный звонок" and message["To"] == "head@acme.example"
    assert message["Message-ID"] == result.message_id == mailer.message_id("alert:1")
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "не дождался ответа" in plain and "<важный>" in plain
    assert "<p>Клиент +79011112233 не дождался ответа.</p>" in html and "&lt;важный&gt;" in html


def test_given_html_is_used_and_sent_once(r, smtp_sink):
    mailer = Mailer(ACCOUNT, email_settings(smtp_sink), r)
    mailer.send("head@acme.example", "S", "plain", "alert:1", html_body="<h1>Отчёт</h1>")
    again = mailer.send("head@acme.example", "S", "plain", "alert:1", html_body="<h1>Отчёт</h1>")
    assert again.duplicate and len(smtp_sink.received) == 1
    assert smtp_sink.messages()[0].get_body(("html",)).get_content().strip() == "<h1>Отчёт</h1>"


class FakeSMTP:
    """Records what connect() asks of smtplib."""

    calls: list = []

    def __init__(self, host, port, timeout=None, context=None):
        FakeSMTP.calls.append(("open", type(self).__name__, host, port, context is not None))

    def ehlo(self):
        FakeSMTP.calls.append(("ehlo",))

    def starttls(self, context=None):
        FakeSMTP.calls.append(("starttls", context is not None))

    def login(self, user, password):
        FakeSMTP.calls.append(("login", user))

    def close(self):
        pass


class FakeSMTP_SSL(FakeSMTP):
    pass


@pytest.mark.parametrize("security, expected", [
    ("starttls", [("open", "FakeSMTP", "smtp.acme.example", 587, False), ("ehlo",), ("starttls", True), ("ehlo",),
                  ("login", "robot")]),
    ("ssl", [("open", "FakeSMTP_SSL", "smtp.acme.example", 465, True), ("ehlo",), ("login", "robot")]),
])
def test_security_per_configuration(monkeypatch, security, expected):
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    monkeypatch.setattr(smtplib, "SMTP_SSL", FakeSMTP_SSL)
    FakeSMTP.calls = []
    connect(email_settings(host="smtp.acme.example", port=None, security=security, user="robot",
                           password=SMTP_PASSWORD))
    assert FakeSMTP.calls == expected


def test_refused_login_sends_nothing_and_hides_the_password(r):
    def refuse(settings):
        raise smtplib.SMTPAuthenticationError(535, f"bad credentials {SMTP_PASSWORD}".encode())

    mailer = Mailer(ACCOUNT, email_settings(password=SMTP_PASSWORD, user="robot"), r, smtp_factory=refuse)
    with pytest.raises(EmailError, match="refused the login") as e:
        mailer.send("head@acme.example", "S", "t", "alert:1")
    assert SMTP_PASSWORD not in str(e.value)
    assert mailer.deliveries.get("alert:1") is None


def test_unreachable_server_sends_nothing(r):
    mailer = Mailer(ACCOUNT, email_settings(port=1, timeout=1), r)
    with pytest.raises(EmailError, match="cannot reach the SMTP server"):
        mailer.send("head@acme.example", "S", "t", "alert:1")


def test_connection_lost_during_transfer_is_an_unknown_outcome(r):
    class Dropping:
        def send_message(self, message):
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

        def quit(self):
            raise smtplib.SMTPServerDisconnected("gone")

        def close(self):
            pass

    mailer = Mailer(ACCOUNT, email_settings(), r, smtp_factory=lambda s: Dropping())
    with pytest.raises(OutcomeUnknown, match="may have been sent"):
        mailer.send("head@acme.example", "S", "t", "alert:1")
    assert mailer.deliveries.get("alert:1")["state"] == "unknown"


def test_not_an_address_is_refused_before_sending(r):
    with pytest.raises(ValueError):
        Mailer(ACCOUNT, email_settings(), r).send("Ольга", "S", "t", "alert:1")
