"""Shared base for calling an outside HTTP API (amoCRM now; Wazzup, SMS, Telegram later).

Every attempt:
- first takes a slot from the shared rate limiter,
- is counted in metrics as api_calls_total{system, status} (status "error" when no
  HTTP answer came back),
- is retried with exponential backoff and jitter on 429, 5xx, connection errors and
  timeouts, waiting at least what a `Retry-After` header asks; never on other 4xx,
  which are returned to the caller to interpret.

A request that is not idempotent (POST by default) is NOT repeated after a failure that
may have reached the server (read timeout, dropped connection, 5xx): it raises
AmbiguousFailure instead, so the caller can first look for what the lost attempt may have
created. 429 and connect timeouts are safe to repeat and are retried for every method.

Secrets never appear in what this module logs or raises: Authorization headers are
never logged, and every message is passed through `redact` with the caller's secrets.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import redis
import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from connectors.ratelimit import OverLimit, RateLimiter, wait_allowed
from connectors.redact import redact
from reglament import metrics

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds


class ConnectorError(Exception):
    """Base of every error raised by a connector."""


class AccessRefused(ConnectorError):
    """The remote side refuses our credentials or rights (a 401 that a refresh cannot fix, a
    403): nothing to retry until an admin acts."""


class GaveUp(ConnectorError):
    """The remote side kept failing (429, 5xx, network) until the retry budget ran out."""

    def __init__(self, system: str, method: str, path: str, attempts: int, last: str):
        self.system, self.method, self.path, self.attempts, self.last = system, method, path, attempts, last
        super().__init__(f"{system}: gave up on {method} {path} after {attempts} attempt(s); last failure: {last}")


class AmbiguousFailure(ConnectorError):
    """A non-idempotent request failed after it may have reached the server; it may or may not have taken effect."""

    def __init__(self, system: str, method: str, path: str, last: str):
        self.system, self.method, self.path, self.last = system, method, path, last
        super().__init__(f"{system}: {method} {path} failed after it may have reached the server ({last}); "
                         "its effect is unknown")


class _Retry(Exception):
    """One failed attempt worth repeating (internal)."""

    def __init__(self, description: str, *, ambiguous: bool, retry_after: float | None = None):
        super().__init__(description)
        self.description = description
        self.ambiguous = ambiguous
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """A requests.Session wrapped with rate limiting, retries, metrics and redaction.

    `secrets` returns the secrets in use right now (tokens rotate), for redaction.
    `sleep`, `backoff_base` and `backoff_max` exist so tests can run retries instantly.
    """

    def __init__(self, r: redis.Redis, account: str, system: str, *,
                 limiter: RateLimiter | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 max_attempts: int = 5,
                 backoff_base: float = 0.5,
                 backoff_max: float = 30.0,
                 retry_after_max: float = 120.0,
                 secrets: Callable[[], Iterable[str | None]] = lambda: (),
                 sleep: Callable[[float], None] = time.sleep,
                 session: requests.Session | None = None,
                 headers: dict[str, str] | None = None,
                 judge: Callable[[requests.Response], str | None] = lambda resp: None):
        self.r = r
        self.account = account
        self.system = system
        self.limiter = limiter
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.secrets = secrets
        self.sleep = sleep
        self.session = session or requests.Session()
        # For a 429/5xx answer, what the body says beyond its status: "refused" (the server
        # did nothing: safe to repeat any request), "final" (not worth repeating: returned
        # to the caller) or None (by the status alone).
        self.judge = judge
        if headers:
            self.session.headers.update(headers)

    def __repr__(self) -> str:
        return f"HttpClient(system={self.system!r}, account={self.account!r})"

    def redact(self, text: str) -> str:
        return redact(text, self.secrets())

    def longest_request(self) -> float:
        """The most seconds one `request` can take: every attempt timing out, and the longest
        wait between attempts (the rate limiter's own wait aside)."""
        per_attempt = sum(self.timeout) if isinstance(self.timeout, tuple) else float(self.timeout)
        return self.max_attempts * per_attempt + (self.max_attempts - 1) * max(self.backoff_max, self.retry_after_max)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        Exponential with "equal jitter" (half fixed, half random), and never less than
        what the server asked for in Retry-After (capped, so a worker is not parked for hours).
        """
        step = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        wait = step / 2 + random.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_max))
        return wait

    def request(self, method: str, url: str, *, params=None, json=None, data=None,
                headers: dict[str, str] | None = None, idempotent: bool | None = None) -> requests.Response:
        """Send one request, retrying what is safe to retry; return the final response.

        Returns any response that is not 429/5xx (2xx, 3xx and other 4xx alike).
        Raises GaveUp when the retry budget runs out, AmbiguousFailure for a
        non-idempotent request that may have reached the server.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method != "POST"
        path = self.redact(urlsplit(url).path or "/")

        def worth_retrying(exc: BaseException) -> bool:
            return isinstance(exc, _Retry) and (idempotent or not exc.ambiguous)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception()
            log.warning("%s %s %s: %s; retrying in %.2f s (attempt %d of %d)", self.system, method, path,
                        self.redact(str(exc)), state.upcoming_sleep, state.attempt_number + 1, self.max_attempts)

        retrying = Retrying(
            retry=retry_if_exception(worth_retrying),
            stop=stop_after_attempt(self.max_attempts),
            wait=lambda state: self.backoff(state.attempt_number,
                                            getattr(state.outcome.exception(), "retry_after", None)),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, path,
                            dict(params=params, json=json, data=data, headers=headers), idempotent)
        except _Retry as exc:
            last = self.redact(exc.description)
            if exc.ambiguous and not idempotent:
                raise AmbiguousFailure(self.system, method, path, last) from None
            raise GaveUp(self.system, method, path, self.max_attempts, last) from None

    def _attempt(self, method: str, url: str, path: str, kwargs: dict, idempotent: bool) -> requests.Response:
        if self.limiter is not None:
            self.limiter.acquire()
        started = time.monotonic()
        try:
            resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.ConnectTimeout:
            # No connection was made, so the server cannot have seen the request.
            self._count("error")
            self._trouble(_Retry("connect timeout", ambiguous=False), "network", idempotent)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            # `from None` (in _trouble): the original exception's text holds the full URL, which may carry a secret.
            self._count("error")
            self._trouble(_Retry(f"{type(exc).__name__}: {self.redact(str(exc))[:300]}", ambiguous=True),
                          "network", idempotent)
        self._count(resp.status_code)
        log.debug("%s %s %s -> %d (%.2f s)", self.system, method, path, resp.status_code, time.monotonic() - started)
        verdict = self.judge(resp) if resp.status_code == 429 or resp.status_code >= 500 else None
        if verdict == "final":
            return resp
        if resp.status_code == 429:
            self._trouble(_Retry("HTTP 429 Too Many Requests", ambiguous=False,
                                 retry_after=parse_retry_after(resp.headers.get("Retry-After"))), "429", idempotent)
        if resp.status_code >= 500:
            # A refusal said in the body (Bitrix24's 503 QUERY_LIMIT_EXCEEDED) is the rate limit's "429".
            self._trouble(_Retry(f"HTTP {resp.status_code} {resp.reason or ''}".strip(), ambiguous=verdict != "refused",
                                 retry_after=parse_retry_after(resp.headers.get("Retry-After"))),
                          "429" if verdict == "refused" else "5xx", idempotent)
        if self.limiter is not None:
            self.limiter.recovered()
        return resp

    def _trouble(self, failure: _Retry, reason: str, idempotent: bool):
        """A failed attempt. Inside a job (ratelimit.waiting_at_most) the whole account pauses
        and the job goes back (OverLimit) rather than sleeping out the backoff here; a request
        that may have landed and must not be repeated still raises as such, for the caller to
        look for what it did. Elsewhere: retried here, as before."""
        if self.limiter is not None and wait_allowed() is not None:
            paused = self.limiter.pause(reason, at_least=min(failure.retry_after or 0.0, self.retry_after_max))
            log.warning("%s: %s; the account pauses %.1f s", self.system, failure.description, paused)
            if idempotent or not failure.ambiguous:
                raise OverLimit(self.limiter.key, paused, reason) from None
        raise failure from None

    def _count(self, status: int | str) -> None:
        metrics.incr(self.r, self.account, "api_calls_total", system=self.system, status=status)
