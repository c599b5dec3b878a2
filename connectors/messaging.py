"""The one interface rules use to reach clients and staff, and the settings it needs.

    messenger = Messenger.for_account(account, MessagingSettings.from_account(account), r)
    messenger.message_client("+7 901 111-22-33", "Здравствуйте! ...", action_key="missed_call:8f2c")
    messenger.alert_person({"name": "Ольга", "telegram_chat_id": 123}, "Пропущенный звонок", "...",
                           action_key="missed_call_alert:8f2c")

message_client: WhatsApp through Wazzup when it is configured and a channel is active;
SMS when Wazzup is not configured, has no active channel or refuses the message; else
the outbox. alert_person: Telegram when the bot is configured and the person has a chat;
else e-mail; else the outbox.

A result with `delivered == False` (channel "outbox") means no channel carried the
message: that is the hook for the caller's own fallback (e.g. an amoCRM task or note).

Each message goes out at most once per (action key, recipient): one action key may
message several people. Errors raised: InvalidPhone; for clients, a channel's refusal when
no other channel is left, GaveUp when a provider is unreachable (retrying later is safe)
and OutcomeUnknown when an SMS may have been sent (it is not resent automatically).
Alerts never raise for a failed channel: they fall through to the next one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import redis

from connectors.email import EmailError, Mailer
from connectors.http import GaveUp
from connectors.outbox import Deliveries, OutcomeUnknown, Outbox, SendResult, check_action_key
from connectors.sms import SmsSender, make_sms_sender, normalize_phone
from connectors.telegram import TelegramBot, TelegramError, format_alert
from connectors.wazzup import Template, WazzupClient, WazzupError
from connectors.wazzup.client import crm_message_id
from connectors.wazzup.ours import is_our_message
from reglament.messaging_settings import MessagingSettings

if TYPE_CHECKING:
    from reglament.config import Account

log = logging.getLogger(__name__)

__all__ = ["Messenger", "OutcomeUnknown", "Person", "SendResult", "Template"]


# ---------------------------------------------------------------- recipients

@dataclass(frozen=True)
class Person:
    """A manager or head to alert. `id` is e.g. the amoCRM user id (looked up in the chats/addresses maps)."""

    name: str
    telegram_chat_id: int | str | None = None
    email: str | None = None
    id: str | None = None

    @classmethod
    def of(cls, value: Person | dict[str, Any]) -> Person:
        if isinstance(value, Person):
            return value
        return cls(name=str(value.get("name") or value.get("id") or "?"), telegram_chat_id=value.get("telegram_chat_id"),
                   email=value.get("email"), id=None if value.get("id") is None else str(value["id"]))

    @property
    def key(self) -> str:
        return f"user:{self.id}" if self.id else f"name:{self.name}"

    def look_up(self, table: dict[str, Any]) -> Any:
        return (table.get(self.id) if self.id else None) or table.get(self.name)


# ---------------------------------------------------------------- the interface

class Messenger:
    """Every outgoing channel of one account; build with `for_account`."""

    def __init__(self, account_id: str, r: redis.Redis, *, wazzup: WazzupClient | None = None,
                 sms: SmsSender | None = None, telegram: TelegramBot | None = None, mailer: Mailer | None = None,
                 telegram_chats: dict[str, Any] | None = None, email_addresses: dict[str, str] | None = None):
        self.account_id = account_id
        self.r = r
        self.wazzup = wazzup
        self.sms = sms
        self.telegram = telegram
        self.mailer = mailer
        self.telegram_chats = telegram_chats or {}
        self.email_addresses = email_addresses or {}
        self.outbox = Outbox(r, account_id)
        self._clients = Deliveries(r, account_id, "client")
        self._alerts = Deliveries(r, account_id, "alert")

    @classmethod
    def for_account(cls, account: Account, messaging: MessagingSettings | None, r: redis.Redis, *,
                    smtp_factory=None, **http_options) -> Messenger:
        """`http_options` (session, timeout, max_attempts, backoff_base, backoff_max, sleep) go to
        every HTTP client; `smtp_factory` to the mailer (tests)."""
        if messaging is None:
            messaging = MessagingSettings.from_account(account)
        wazzup = getattr(account, "wazzup", None)
        mail_options = {"smtp_factory": smtp_factory} if smtp_factory else {}
        return cls(
            account.id, r,
            wazzup=WazzupClient(account.id, wazzup, r, **http_options) if wazzup else None,
            sms=make_sms_sender(account.id, messaging.sms, r, **http_options) if messaging.sms else None,
            telegram=(TelegramBot(account.id, messaging.telegram.bot_token, r, **http_options)
                      if messaging.telegram else None),
            mailer=Mailer(account.id, messaging.email, r, **mail_options) if messaging.email else None,
            telegram_chats=messaging.telegram.chats if messaging.telegram else None,
            email_addresses=messaging.email.addresses if messaging.email else None,
        )

    def __repr__(self) -> str:
        channels = [n for n in ("wazzup", "sms", "telegram", "mailer") if getattr(self, n)]
        return f"Messenger(account={self.account_id!r}, channels={channels})"

    # ---------------------------------------------------------------- clients

    def message_client(self, phone: str, text: str, action_key: str,
                       template: Template | dict | None = None) -> SendResult:
        """Message a client: WhatsApp, else SMS, else the outbox. `text` is required even with a
        WABA `template`: it is what SMS and the outbox carry."""
        check_action_key(action_key)
        if not text:
            raise ValueError("text must not be empty")
        number = normalize_phone(phone)
        key = f"{action_key}@{number}"
        done = _already(self._clients, key)
        if done:
            return done
        passed: list[str] = []  # why channels earlier in the order did not carry it
        refusal: WazzupError | None = None
        result = None
        if self.wazzup:
            try:
                result = self._whatsapp(number, text, key, _template(template), passed)
            except WazzupError as exc:
                refusal = exc
                passed.append(str(exc))
                log.warning("%s; %s", exc, "sending an SMS instead" if self.sms else "no SMS provider to fall back to",
                            extra={"account": self.account_id})
        if result is None and self.sms:
            result = self.sms.send(number, text, key)
        if result is None:
            if refusal is not None:
                raise refusal
            reason = "; ".join(passed) or "no WhatsApp (Wazzup) or SMS provider configured"
            return self.outbox.put("client", f"+{number}", text, action_key=key, reason=reason)
        if passed:
            result = replace(result, reason="; ".join(passed))
        self._clients.sent(key, result.message_id, channel=result.channel, provider=result.provider)
        return result

    def _whatsapp(self, number: str, text: str, key: str, template: Template | None,
                  passed: list[str]) -> SendResult | None:
        try:
            channel = self.wazzup.usable_channel()
        except GaveUp as exc:
            if is_our_message(self.r, self.account_id, crm_message_id=crm_message_id(self.account_id, key)):
                raise  # an earlier attempt may have sent it on WhatsApp: no SMS on top; retry later
            passed.append(f"Wazzup unreachable ({exc.last})")
            log.warning("wazzup: cannot list channels (%s)", exc.last, extra={"account": self.account_id})
            return None
        if channel is None:
            passed.append("no active WhatsApp channel in Wazzup")
            log.warning("wazzup: no active WhatsApp channel", extra={"account": self.account_id})
            return None
        if template is not None:
            return self.wazzup.send_template(number, template, key, channel=channel)
        return self.wazzup.send_text(number, text, key, channel=channel)

    def is_our_message(self, message_id: str | None = None, crm_message_id: str | None = None) -> bool:
        """True if Reglament itself sent this WhatsApp message (tells our echo from a manager's answer)."""
        return is_our_message(self.r, self.account_id, message_id, crm_message_id)

    # ---------------------------------------------------------------- staff

    def alert_person(self, person: Person | dict[str, Any], subject: str, text: str, html: str | None = None, *,
                     action_key: str) -> SendResult:
        """Alert a manager or head: Telegram, else e-mail, else the outbox (result.delivered False).
        `html` is the e-mail body (Telegram gets the subject and text, escaped)."""
        check_action_key(action_key)
        person = Person.of(person)
        key = f"{action_key}@{person.key}"
        done = _already(self._alerts, key)
        if done:
            return done
        passed: list[str] = []
        result = None
        chat_id = person.telegram_chat_id or person.look_up(self.telegram_chats)
        if self.telegram and chat_id:
            try:
                result = self.telegram.send_message(chat_id, format_alert(subject, text), key)
            except (TelegramError, GaveUp, OutcomeUnknown) as exc:
                passed.append(f"Telegram: {exc}")
                log.warning("alert to %s: %s", person.name, exc, extra={"account": self.account_id})
        elif self.telegram:
            passed.append("no Telegram chat for this person")
        address = person.email or person.look_up(self.email_addresses)
        if result is None and self.mailer and address:
            try:
                result = self.mailer.send(address, subject, text, key, html_body=html)
            except (EmailError, OutcomeUnknown, ValueError) as exc:
                passed.append(f"e-mail: {exc}")
                log.warning("alert to %s: %s", person.name, exc, extra={"account": self.account_id})
        elif result is None and self.mailer:
            passed.append("no e-mail address for this person")
        if result is None:
            reason = "; ".join(passed) or "no Telegram bot or e-mail configured"
            return self.outbox.put("alert", person.name, text, subject=subject, action_key=key, reason=reason)
        if passed:
            result = replace(result, reason="; ".join(passed))
        self._alerts.sent(key, result.message_id, channel=result.channel, provider=result.provider)
        return result


def _already(deliveries: Deliveries, key: str) -> SendResult | None:
    record = deliveries.get(key)
    if record and record.get("state") == "sent" and record.get("channel"):
        return SendResult(record["channel"], record.get("id"), duplicate=True, provider=record.get("provider"))
    return None


def _template(value: Template | dict | None) -> Template | None:
    if value is None or isinstance(value, Template):
        return value
    return Template(str(value.get("template_id") or value.get("id")), tuple(value.get("values") or ()),
                    bool(value.get("as_text")))
