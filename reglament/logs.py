"""Logging: text or JSON lines, with every known secret and webhook path redacted.

Redaction sits on the handler, so it covers our loggers, gunicorn's, RQ's and any
library's: a token or webhook secret never reaches the output, whatever logged it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

# Our webhook URLs carry the secret as their last path segment.
HOOK_PATH = re.compile(r"(/hooks/[a-z0-9_-]+(?:/[a-z0-9_-]+)?/)([^/\s?\"']+)", re.I)
# A Bitrix24 incoming webhook's path carries its secret code: /rest/<user>/<code>/<method>.
REST_HOOK = re.compile(r"(/rest/\d+/)([^/\s?\"']+)(?=/)")
BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
# Credentials in a query string (Bitrix24's OAuth server takes a rotating refresh token by GET,
# and libraries log request URLs at DEBUG): the values go, whoever logged them.
QUERY_SECRET = re.compile(r"([?&](?:refresh_token|client_secret|access_token|auth|code)=)[^&\s\"']+", re.I)
REDACTED = "***"

# Fields that structured log calls pass through `extra=`.
CONTEXT = ("account", "source", "kind", "entity_id", "outcome", "job_id", "rule", "lead_id")


def redact_path(path: str) -> str:
    return HOOK_PATH.sub(lambda m: m.group(1) + REDACTED, path)


class Redactor(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        # Cheap substring checks first: this runs for every log line.
        if "/hooks/" in text:
            text = redact_path(text)
        if "/rest/" in text:
            text = REST_HOOK.sub(lambda m: m.group(1) + REDACTED, text)
        if "earer" in text:
            text = BEARER.sub(lambda m: m.group(1) + REDACTED, text)
        if "token=" in text or "secret=" in text or "auth=" in text or "code=" in text:
            text = QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT if getattr(record, k, None) is not None)
        return f"{line} {ctx}" if ctx else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k in CONTEXT:
            v = getattr(record, k, None)
            if v is not None:
                data[k] = v
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


_handler: logging.Handler | None = None


def setup(fmt: str = "text", secrets: Iterable[str] = (), level: int = logging.INFO,
          stream=None) -> logging.Handler:
    """(Re)configure the root logger; call again when the set of secrets is known."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redactor(secrets))
    root.addHandler(handler)
    root.setLevel(level)
    # gunicorn and werkzeug log through their own loggers; route them to ours only.
    for name in ("gunicorn.error", "gunicorn.access", "werkzeug", "rq.worker"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    _handler = handler
    return handler
