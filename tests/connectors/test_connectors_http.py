"""The shared HTTP base: what is retried, what is not, metrics, rate limiting, redaction."""

from __future__ import annotations

import email.utils
import time
import traceback

import pytest
import requests
import responses

from connectors.http import AmbiguousFailure, GaveUp, HttpClient, parse_retry_after
from reglament import keys

BOT_TOKEN = "123456789:AAE-telegram-bot-SECRET-token"
URL = f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"


class CountingLimiter:
    def __init__(self):
        self.acquired = 0

    def acquire(self):
        self.acquired += 1

    def recovered(self):
        pass


@pytest.fixture
def limiter():
    return CountingLimiter()


@pytest.fixture
def http(r, limiter):
    return HttpClient(r, "acme", "telegram", limiter=limiter, max_attempts=3, backoff_base=0.001, backoff_max=0.002,
                      secrets=lambda: [BOT_TOKEN], sleep=lambda s: None)


def counters(r) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in r.hgetall(keys.metrics("acme")).items()}


def test_retry_after_as_seconds_or_http_date():
    assert parse_retry_after("7") == 7.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < parse_retry_after(soon) <= 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_with_jitter_and_respects_caps(r):
    h = HttpClient(r, "acme", "x", backoff_base=1.0, backoff_max=8.0, retry_after_max=60.0)
    assert 0.5 <= h.backoff(1) <= 1.0
    assert 2.0 <= h.backoff(3) <= 4.0
    assert 4.0 <= h.backoff(10) <= 8.0
    assert h.backoff(1, retry_after=20) >= 20
    assert h.backoff(1, retry_after=3600) == 60.0


def test_every_attempt_takes_a_rate_slot_and_is_counted(http, limiter, r):
    with responses.RequestsMock() as mocked:
        mocked.post(URL, status=429)
        mocked.post(URL, body=requests.ConnectTimeout("connect timed out"))
        mocked.post(URL, json={"ok": True})
        assert http.request("POST", URL, json={"text": "hi"}).json() == {"ok": True}
    assert limiter.acquired == 3
    assert counters(r) == {"api_calls_total\tstatus=429\tsystem=telegram": 1,
                           "api_calls_total\tstatus=error\tsystem=telegram": 1,
                           "api_calls_total\tstatus=200\tsystem=telegram": 1}


def test_other_4xx_are_returned_not_retried(http, limiter):
    with responses.RequestsMock() as mocked:
        mocked.get(URL, status=404)
        assert http.request("GET", URL).status_code == 404
    assert limiter.acquired == 1


@pytest.mark.parametrize("failure", [dict(status=503), dict(body=requests.ReadTimeout("read timed out")),
                                     dict(body=requests.ConnectionError("reset"))], ids=["503", "timeout", "reset"])
def test_a_post_that_may_have_landed_is_not_repeated(http, limiter, failure):
    with responses.RequestsMock() as mocked:
        mocked.post(URL, **failure)
        with pytest.raises(AmbiguousFailure):
            http.request("POST", URL, json={})
        assert len(mocked.calls) == 1


def test_the_same_failure_on_a_get_is_retried(http):
    with responses.RequestsMock() as mocked:
        mocked.get(URL, body=requests.ReadTimeout("read timed out"))
        mocked.get(URL, status=503)
        mocked.get(URL, json={})
        assert http.request("GET", URL).status_code == 200
        assert len(mocked.calls) == 3


def test_giving_up_says_so_without_the_token_in_the_url(http, caplog):
    caplog.set_level("DEBUG")
    with responses.RequestsMock() as mocked:
        mocked.get(URL, body=requests.ConnectionError(f"Max retries exceeded with url: /bot{BOT_TOKEN}/sendMessage"))
        with pytest.raises(GaveUp) as caught:
            http.request("GET", URL)
    message = str(caught.value)
    assert message.startswith("telegram: gave up on GET /bot***/sendMessage after 3 attempt(s)")
    assert BOT_TOKEN not in message
    assert BOT_TOKEN not in "".join(traceback.format_exception(caught.value))  # what a log of the error shows
    assert "retrying" in caplog.text
    assert BOT_TOKEN not in caplog.text


def test_inside_a_job_a_429_pauses_the_account_and_the_job_goes_back_without_sleeping(r):
    from connectors.ratelimit import OverLimit, RateLimiter, state, waiting_at_most

    key = keys.key("acme", "telegram", "ratelimit")
    slept = []
    h = HttpClient(r, "acme", "telegram", limiter=RateLimiter(r, key, 100.0), sleep=slept.append)
    with responses.RequestsMock() as mocked:
        mocked.get(URL, status=429, headers={"Retry-After": "20"})
        with waiting_at_most(1.0), pytest.raises(OverLimit) as caught:
            h.request("GET", URL)
        assert len(mocked.calls) == 1
    assert slept == [] and caught.value.reason == "429" and 19 < caught.value.retry_in <= 20
    assert state(r, key).reason == "429" and 19 < state(r, key).wait <= 20


def test_inside_a_job_a_post_that_may_have_landed_still_says_so_and_pauses_the_account(r):
    from connectors.ratelimit import RateLimiter, state, waiting_at_most

    key = keys.key("acme", "telegram", "ratelimit")
    h = HttpClient(r, "acme", "telegram", limiter=RateLimiter(r, key, 100.0), sleep=lambda s: None)
    with responses.RequestsMock() as mocked:
        mocked.post(URL, status=503)
        with waiting_at_most(1.0), pytest.raises(AmbiguousFailure):
            h.request("POST", URL, json={})
    assert state(r, key).reason == "5xx" and state(r, key).wait > 0
