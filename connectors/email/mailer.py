"""E-mail over SMTP: alerts to managers and heads, as HTML with a plain-text part.

Security per configuration: "starttls" (port 587 by default), "ssl" (implicit TLS, 465)
or "plain" (25; a local relay). The Message-ID is derived from the action key, so even a
resent alert is recognised as the same message by most mail clients.

Outcome: a failure while connecting, logging in, or an SMTP refusal sent nothing; a
connection lost during the transfer may have delivered the message (OutcomeUnknown).
Like Telegram alerts, such an e-mail IS sent again by a later attempt.
"""

from __future__ import annotations

import hashlib
import html
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING

import redis

from connectors.http import ConnectorError
from connectors.outbox import Deliveries, OutcomeUnknown, SendResult, send_once
from connectors.redact import redact
from reglament import metrics

if TYPE_CHECKING:
    from reglament.messaging_settings import EmailSettings

log = logging.getLogger(__name__)

SYSTEM = "smtp"
CHANNEL = "email"
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "plain": 25}


class EmailError(ConnectorError):
    """The SMTP server could not be reached or refused the message; nothing was sent."""


def connect(settings: EmailSettings) -> smtplib.SMTP:
    """An SMTP connection, secured and logged in as configured."""
    port = settings.port or DEFAULT_PORTS[settings.security]
    context = ssl.create_default_context()
    if settings.security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, port, timeout=settings.timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, port, timeout=settings.timeout)
    try:
        smtp.ehlo()
        if settings.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.user:
            smtp.login(settings.user, settings.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def text_to_html(text: str) -> str:
    paragraphs = [p for p in text.strip().split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


class Mailer:
    """One SMTP account. `smtp_factory(settings)` returns a connected, logged-in SMTP (tests pass their own)."""

    def __init__(self, account_id: str, settings: EmailSettings, r: redis.Redis, *,
                 smtp_factory: Callable[[EmailSettings], smtplib.SMTP] = connect):
        self.account_id = account_id
        self.settings = settings
        self.r = r
        self.smtp_factory = smtp_factory
        self.deliveries = Deliveries(r, account_id, CHANNEL)

    def __repr__(self) -> str:
        return f"Mailer(account={self.account_id!r}, host={self.settings.host!r})"

    def send(self, to: str, subject: str, text: str, action_key: str, *, html_body: str | None = None) -> SendResult:
        """Send once per action key; `html_body` defaults to the text as simple HTML."""
        if "@" not in parseaddr(to)[1]:
            raise ValueError("not an e-mail address")
        message = self.build(to, subject, text, html_body, action_key)
        return send_once(self.deliveries, action_key, lambda: self._deliver(message),
                         channel=CHANNEL, provider=SYSTEM, resend_unknown=True)

    def build(self, to: str, subject: str, text: str, html_body: str | None, action_key: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = self.message_id(action_key)
        message.set_content(text)
        message.add_alternative(html_body if html_body is not None else text_to_html(text), subtype="html")
        return message

    def message_id(self, action_key: str) -> str:
        domain = parseaddr(self.settings.sender)[1].rpartition("@")[2] or "reglament.local"
        return f"<rg.{hashlib.sha256(f'{self.account_id}{chr(10)}{action_key}'.encode()).hexdigest()[:32]}@{domain}>"

    def _deliver(self, message: EmailMessage) -> str:
        try:
            smtp = self.smtp_factory(self.settings)
        except smtplib.SMTPAuthenticationError as exc:
            raise self._failed(f"the SMTP server refused the login (code {exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise self._failed(f"cannot reach the SMTP server {self.settings.host}: {self._words(exc)}") from None
        try:
            smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError,
                smtplib.SMTPNotSupportedError) as exc:
            raise self._failed(f"the SMTP server refused the message: {self._words(exc)}") from None
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            self._count("error")
            raise OutcomeUnknown(f"e-mail: the connection failed during the transfer ({self._words(exc)}); "
                                 "the message may have been sent") from None
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()  # the message is accepted (or not) already; a failing QUIT changes nothing
        self._count("ok")
        return message["Message-ID"]

    def _failed(self, what: str) -> EmailError:
        self._count("error")
        return EmailError(redact(f"e-mail not sent: {what}", [self.settings.password]))

    def _words(self, exc: BaseException) -> str:
        return redact(f"{type(exc).__name__}: {exc}"[:300], [self.settings.password])

    def _count(self, status: str) -> None:
        metrics.incr(self.r, self.account_id, "api_calls_total", system=SYSTEM, status=status)
