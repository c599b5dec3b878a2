"""The settings of an account's outgoing channels besides Wazzup: SMS, Telegram, e-mail.

Part of the configuration schema (core), so that reglament.config reads them without
importing any connector; connectors/messaging.py and the channels use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from reglament.config import Account

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _string_keys(value: Any) -> Any:
    # YAML reads `555: 42` with an int key; amoCRM user ids are written that way.
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


class SmsSettings(_Model):
    provider: Literal["smsru", "smsc"]
    api_id: str | None = Field(None, description="SMS.ru: the api_id key")
    login: str | None = Field(None, description="SMSC.ru: account login")
    password: str | None = Field(None, description="SMSC.ru: account password")
    sender: str | None = Field(None, description="sender name approved with the gateway (else its default)")

    @model_validator(mode="after")
    def _credentials(self) -> SmsSettings:
        if self.provider == "smsru" and not self.api_id:
            raise ValueError("provider smsru needs api_id")
        if self.provider == "smsc" and not (self.login and self.password):
            raise ValueError("provider smsc needs login and password")
        return self

    def secrets(self) -> list[str]:
        return [s for s in (self.api_id, self.password) if s]


class TelegramSettings(_Model):
    bot_token: str
    chats: dict[str, int | str] = Field(
        default_factory=dict, description="chat id per person: key is the amoCRM user id or the person's name")

    _chats = field_validator("chats", mode="before")(_string_keys)

    def secrets(self) -> list[str]:
        return [self.bot_token]


class EmailSettings(_Model):
    host: str
    port: int | None = Field(None, description="default: 587 starttls, 465 ssl, 25 plain")
    user: str | None = None
    password: str | None = None
    sender: str = Field(alias="from", description='the From address, e.g. "Reglament <robot@example.ru>"')
    security: Literal["starttls", "ssl", "plain"] = "starttls"
    timeout: float = Field(30.0, gt=0)
    addresses: dict[str, str] = Field(
        default_factory=dict, description="e-mail per person: key is the amoCRM user id or the person's name")

    _addresses = field_validator("addresses", mode="before")(_string_keys)

    def secrets(self) -> list[str]:
        return [self.password] if self.password else []


class MessagingSettings(_Model):
    """An account's outgoing channels besides Wazzup (which is account.wazzup)."""

    sms: SmsSettings | None = None
    telegram: TelegramSettings | None = None
    email: EmailSettings | None = None

    @classmethod
    def from_account(cls, account: Account) -> MessagingSettings:
        return cls(sms=getattr(account, "sms", None), telegram=getattr(account, "telegram", None),
                   email=getattr(account, "email", None))

    def secrets(self) -> list[str]:
        return [s for part in (self.sms, self.telegram, self.email) if part for s in part.secrets()]
