"""The configuration file: one YAML document describing one or more CRM accounts.

Secrets may be written as ${ENV_NAME} and are then read from the environment.
`load()` raises ConfigError carrying every problem with its place in the file.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reglament.messaging_settings import EmailSettings, MessagingSettings, SmsSettings, TelegramSettings

CONFIG_ENV = "REGLAMENT_CONFIG"
DEFAULT_FILE = "reglament.yaml"
DATA_DIR = ".reglament"
GENERATED = "sandbox-config.yaml"  # what `reglament run` writes in its data directory when given no file
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OAuth(Model):
    client_id: str
    client_secret: str
    redirect_uri: str
    # A fresh authorization code (valid 20 minutes) exchanged for the first token pair;
    # afterwards the rotating pair lives in Redis.
    authorization_code: str | None = None
    refresh_token: str | None = None


class AmoCRMSettings(Model):
    base_url: str = Field(description="https://<subdomain>.amocrm.ru or .kommo.com")
    long_lived_token: str | None = None
    oauth: OAuth | None = None
    rate_limit: float = Field(7.0, gt=0, description="requests per second, shared by all processes")
    account_id: int | None = Field(None, description="expected account[id] in webhooks")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as https://example.amocrm.ru")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _one_auth(self) -> "AmoCRMSettings":
        if bool(self.long_lived_token) == bool(self.oauth):
            raise ValueError("give exactly one of long_lived_token or oauth")
        return self


class Bitrix24OAuth(Model):
    client_id: str
    client_secret: str
    # Seeds an empty store once; afterwards the rotating pair lives in Redis. A new value
    # here repairs a pair Bitrix24 refused. Optional: without it, the refresh token the
    # portal posts with ONAPPINSTALL to our hook URL is the seed (reglament/bitrix24_install.py).
    refresh_token: str | None = None
    token_url: str = Field("https://oauth.bitrix24.tech/oauth/token/",
                           description="the authorization server's token endpoint")


class Bitrix24Settings(Model):
    webhook_url: str | None = Field(None, description="an incoming webhook: https://<portal>/rest/<user>/<code>/")
    oauth: Bitrix24OAuth | None = None
    portal: str | None = Field(None, description="the portal's address, e.g. example.bitrix24.ru (with oauth)")
    application_token: str | None = Field(None, description="auth[application_token] every incoming event carries "
                                          "(with oauth, optional: the installed application's is used)")
    member_id: str | None = Field(None, description="the portal's auth[member_id] in incoming events")
    rate_limit: float = Field(2.0, gt=0, description="requests per second, shared by all processes (Enterprise: 5)")
    burst: int = Field(50, ge=1, description="requests the portal lets through at once (Enterprise: 250)")
    entity: Literal["deals", "leads"] = "deals"
    next_step: Literal["todo", "task"] = Field("todo", description="a CRM to-do, or a task bound to the deal")
    loss_reason_field: str = Field("Причина отказа", description="the deal (lead) field that holds the loss reason: "
                                   "Bitrix24 has no list of loss reasons")
    catchup_seconds: int = Field(60, ge=0, description="how often the catch-up asks what events missed "
                                 "(Bitrix24 never retries an event); 0 turns it off")

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+/rest/\d+/[^/\s]+/?$", v):
            raise ValueError("must look like https://<portal>/rest/<user id>/<code>/")
        return v if v is None else v.rstrip("/") + "/"

    @field_validator("portal")
    @classmethod
    def _portal(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().rstrip("/")
        if not re.match(r"^(https?://)?[^/\s]+$", v):
            raise ValueError("must be the portal's address, such as example.bitrix24.ru")
        return v if v.startswith(("http://", "https://")) else "https://" + v

    @model_validator(mode="after")
    def _one_auth(self) -> "Bitrix24Settings":
        if bool(self.webhook_url) == bool(self.oauth):
            raise ValueError("give exactly one of webhook_url or oauth")
        if self.oauth and not self.portal:
            raise ValueError("oauth needs portal: the portal's address")
        return self

    @property
    def portal_url(self) -> str:
        """scheme://host of the portal."""
        if self.webhook_url:
            return re.match(r"^https?://[^/]+", self.webhook_url).group(0)
        return self.portal or ""

    def secrets(self) -> list[str]:
        found = [self.webhook_url or "", self.application_token or ""]
        if self.webhook_url:
            found.append(self.webhook_url.rstrip("/").rsplit("/", 1)[-1])  # the code alone
        if self.oauth:
            found += [self.oauth.client_secret, self.oauth.refresh_token or ""]
        return [s for s in found if s]


class Wazzup(Model):
    api_key: str
    channel_id: str | None = None


class Zadarma(Model):
    secret: str = Field(description="the API secret: webhooks are signed with it")


class Mango(Model):
    api_key: str = Field(description="vpbx_api_key of the VPBX")
    api_salt: str = Field(description="the signing salt of the VPBX API")


class Telephony(Model):
    zadarma: Zadarma | None = None
    mango: Mango | None = None


class Department(Model):
    name: str
    head: str = Field(description="the head of department's CRM user name")
    managers: list[str] = Field(default_factory=list, description="CRM user names of the managers")
    dashboard_token: str | None = Field(None, description="the head's login to the dashboard")


# Each CRM an account may be on, as users read its name.
CRM_NAMES = {"amocrm": "amoCRM", "bitrix24": "Bitrix24"}


class Account(Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$", description="short name used in keys, logs and metrics")
    name: str | None = None
    crm: Literal["amocrm", "bitrix24"] = "amocrm"
    amocrm: AmoCRMSettings | None = None
    bitrix24: Bitrix24Settings | None = None
    wazzup: Wazzup | None = None
    telephony: Telephony | None = None
    sms: SmsSettings | None = None
    telegram: TelegramSettings | None = None
    email: EmailSettings | None = None
    departments: list[Department] = Field(default_factory=list)
    webhook_secret: str = Field(min_length=16, description="the secret part of our webhook URLs")
    timezone: str = "Europe/Moscow"
    working_hours: dict[str, str | None] = Field(
        default_factory=lambda: {d: "09:00-18:00" for d in WEEKDAYS[:5]} | {"sat": None, "sun": None}
    )
    holidays_country: str | None = "RU"
    days_off: list[date] = Field(default_factory=list)
    language: str = "ru"
    rules: dict[str, Any] = Field(default_factory=dict)
    templates: dict[str, str] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as Europe/Moscow")
        return v

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, v: dict[str, str | None]) -> dict[str, str | None]:
        for day, span in v.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
            if span is not None and span != "00:00-24:00" and not HOURS.match(span):
                raise ValueError(f"{day}: {span!r} is not a span like 09:00-18:00")
        return v

    @model_validator(mode="after")
    def _crm_section(self) -> "Account":
        if getattr(self, self.crm, None) is None:
            raise ValueError(f"crm is {self.crm} but the {self.crm}: section is missing")
        return self


class Settings(Model):
    public_url: str = Field("http://localhost:8000", description="where the CRM reaches us; used for webhook URLs")
    redis_url: str | None = None
    # For the embedded redis-server: everysec loses nothing on a restart and at most the last
    # second on a crash of Redis itself; always loses nothing even then, at about a third of
    # the webhook throughput (README, Performance).
    redis_fsync: Literal["everysec", "always"] = "everysec"
    data_dir: str = DATA_DIR
    log_format: Literal["text", "json"] = "text"
    max_body_bytes: int = Field(1_048_576, gt=0)
    raw_retention_hours: float = Field(168, gt=0, description="how long raw deliveries are kept for replay")
    dedupe_ttl_seconds: int = Field(3 * 3600, gt=0, description="window in which a repeated delivery is a duplicate")
    rejected_keep: int = Field(1000, gt=0)
    rejected_ttl_hours: float = Field(168, gt=0)
    accounts: list[Account] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Settings":
        ids = [a.id for a in self.accounts]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"account ids must be unique: {', '.join(sorted(dup))}")
        secrets = [a.webhook_secret for a in self.accounts]
        if len(set(secrets)) != len(secrets):
            raise ValueError("each account needs its own webhook_secret")
        return self

    def account(self, account_id: str) -> Account:
        for a in self.accounts:
            if a.id == account_id:
                return a
        raise KeyError(account_id)

    def hook_url(self, account: Account, source: str | None = None) -> str:
        """Our webhook URL for the account's CRM (or `source`: wazzup, ...)."""
        return f"{self.public_url.rstrip('/')}/hooks/{source or account.crm}/{account.webhook_secret}"

    def secrets(self) -> list[str]:
        """Every secret value in the configuration, for log redaction."""
        found: list[str] = []
        for a in self.accounts:
            found.append(a.webhook_secret)
            if a.amocrm:
                found.append(a.amocrm.long_lived_token or "")
                if a.amocrm.oauth:
                    o = a.amocrm.oauth
                    found += [o.client_secret, o.authorization_code or "", o.refresh_token or ""]
            if a.bitrix24:
                found += a.bitrix24.secrets()
            if a.wazzup:
                found.append(a.wazzup.api_key)
            if a.telephony and a.telephony.zadarma:
                found.append(a.telephony.zadarma.secret)
            if a.telephony and a.telephony.mango:
                found += [a.telephony.mango.api_key, a.telephony.mango.api_salt]
            found += MessagingSettings(sms=a.sms, telegram=a.telegram, email=a.email).secrets()
            found += [d.dashboard_token for d in a.departments if d.dashboard_token]
        return [s for s in found if s]


class ConfigError(Exception):
    """Every problem found in a configuration file, each as 'where: what'."""

    def __init__(self, problems: list[str], path: str | None = None):
        self.problems = problems
        self.path = path
        super().__init__("\n".join(problems))


def _interpolate(node: Any, where: tuple, missing: list[tuple[tuple, str]]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, where + (k,), missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, where + (i,), missing) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(m: re.Match) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                missing.append((where, m.group(1)))
                return ""
            return value
        return ENV_REF.sub(sub, node)
    return node


def _lines(text: str) -> dict[tuple, int]:
    """Map each path in the YAML document to its 1-based line number."""
    found: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        found[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                found[path + (k.value,)] = k.start_mark.line + 1
                walk(v, path + (k.value,))
                found[path + (k.value,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return found
    if root is not None:
        walk(root, ())
    return found


def _describe(path: tuple, raw: Any, lines: dict[tuple, int]) -> str:
    parts: list[str] = []
    node = raw
    for p in path:
        if isinstance(p, int):
            label = f"[{p}]"
            if isinstance(node, list) and p < len(node) and isinstance(node[p], dict) and node[p].get("id"):
                label = f"[{p}] ({node[p]['id']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(p))
        node = node[p] if isinstance(node, (list, dict)) and _has(node, p) else None
    where = "".join(parts) or "(top level)"
    line = None
    for n in range(len(path), -1, -1):
        line = lines.get(tuple(path[:n]))
        if line:
            break
    return f"line {line}, {where}" if line else where


def _has(node: Any, p: Any) -> bool:
    return (isinstance(node, dict) and p in node) or (isinstance(node, list) and isinstance(p, int) and p < len(node))


def parse(text: str, source: str = "<config>") -> Settings:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError([f"{where}: not valid YAML ({getattr(e, 'problem', e)})"], source)
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): the file must be a mapping with an accounts: list"], source)
    lines = _lines(text)
    missing: list[tuple[tuple, str]] = []
    data = _interpolate(raw, (), missing)
    problems = [f"{_describe(w, raw, lines)}: environment variable {name} is not set" for w, name in missing]
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems += _explain(e, (), raw, lines)
        raise ConfigError(problems, source)
    problems += _rules_problems(settings, raw, lines)
    if problems:
        raise ConfigError(problems, source)
    return settings


def _explain(e: ValidationError, prefix: tuple, raw: Any, lines: dict[tuple, int]) -> list[str]:
    out = []
    for err in e.errors():
        loc = prefix + tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith(("function-", "union["))))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling)"
        elif err["type"] == "missing":
            msg = "required setting is missing"
        out.append(f"{_describe(loc, raw, lines)}: {msg}")
    return out


def _rules_problems(settings: Settings, raw: Any, lines: dict[tuple, int]) -> list[str]:
    """Each account's `rules:` block is validated by the rules' own settings model."""
    from reglament.rule_settings import load as load_rules

    problems = []
    for i, account in enumerate(settings.accounts):
        try:
            load_rules(account.rules)
        except ValidationError as e:
            problems += _explain(e, ("accounts", i, "rules"), raw, lines)
    return problems


def locate(path: str | os.PathLike | None = None, generated: bool = True) -> Path | None:
    """Where the configuration is, in this order: the path given (--config), $REGLAMENT_CONFIG,
    ./reglament.yaml, then (`generated`) the one a `reglament run` started here without a file
    wrote in its data directory. None when there is none."""
    given = path or os.environ.get(CONFIG_ENV)
    if given:
        return Path(given)
    for candidate in [Path(DEFAULT_FILE)] + ([Path(DATA_DIR) / GENERATED] if generated else []):
        if candidate.exists():
            return candidate
    return None


def load(path: str | os.PathLike | None = None) -> Settings:
    p = locate(path)
    if p is None:
        raise ConfigError([f"no configuration: start `reglament run` here (the demo account), or pass --config, "
                           f"set {CONFIG_ENV} or write ./{DEFAULT_FILE} (`reglament init`)"])
    if not p.exists():
        raise ConfigError([f"{p}: file not found"], str(p))
    return parse(p.read_text(encoding="utf-8"), str(p))
