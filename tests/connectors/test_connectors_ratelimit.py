"""The shared rate limiter: four processes together stay within the rate yet use most of it."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import redis

from connectors.ratelimit import RateLimiter
from reglament import keys

RATE = 7.0
PER_PROCESS = 9
PROCESSES = 4


def _acquire_many(redis_url: str, key: str, count: int) -> list[float]:
    r = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(r, key, RATE)
    stamps = []
    for _ in range(count):
        limiter.acquire()
        stamps.append(time.time())  # the moment a request would leave
    return stamps


def max_in_any_window(stamps: list[float], width: float = 1.0) -> int:
    """The most stamps in any closed window of `width` seconds (a window that counts most starts at a stamp)."""
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps[i:] if t - s <= width) for i, s in enumerate(stamps))


def test_four_processes_never_exceed_the_rate_in_any_second_and_use_90_percent(redis_url):
    key = keys.key("acme", "amocrm", "ratelimit")
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(PROCESSES)
    try:
        per_process = pool.starmap(_acquire_many, [(redis_url, key, PER_PROCESS)] * PROCESSES)
    finally:
        # close + join, not the with-block's terminate(): a forked worker inherits the SIGTERM
        # handler an in-process RQ worker of an earlier test may have left, and would not stop.
        pool.close()
        pool.join()
    stamps = sorted(t for batch in per_process for t in batch)

    assert len(stamps) == PROCESSES * PER_PROCESS
    assert max_in_any_window(stamps) <= RATE
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert achieved >= 0.9 * RATE, f"only {achieved:.2f} req/s of {RATE}"
    # Every process got its turns: nobody starved while others ran.
    assert all(len(batch) == PER_PROCESS for batch in per_process)


def test_the_window_counter_itself_catches_a_burst():
    # Guards the assertion above: evenly spaced at exactly 1/rate, 8 requests fit in a closed second.
    assert max_in_any_window([i / RATE for i in range(8)]) == 8


def test_the_limiter_state_expires_and_lives_under_the_account(r):
    key = keys.key("acme", "amocrm", "ratelimit")
    RateLimiter(r, key, RATE).acquire()
    assert key.startswith("rg:acme:")
    assert 0 < r.pttl(key) <= 1000 + 1000 / (RATE * 0.95) + 1


def test_a_second_caller_waits_by_sleeping(r):
    slept = []
    limiter = RateLimiter(r, keys.key("acme", "x", "ratelimit"), 2.0, sleep=lambda s: (slept.append(s), time.sleep(s)))
    limiter.acquire()
    limiter.acquire()
    assert len(slept) >= 1 and 0.4 < sum(slept) < 0.7  # one interval of 1/(2*0.95) s, spent asleep


def test_inside_a_job_a_caller_waits_a_short_turn_but_goes_back_from_a_long_one(r):
    from connectors.ratelimit import OverLimit, waiting_at_most

    slept = []
    limiter = RateLimiter(r, keys.key("acme", "x", "ratelimit"), 2.0, sleep=lambda s: (slept.append(s), time.sleep(s)))
    limiter.acquire()
    with waiting_at_most(1.0):
        limiter.acquire()           # its turn comes in about 0.53 s: it sleeps
        assert len(slept) == 1
        with pytest.raises(OverLimit) as caught:
            with waiting_at_most(0.2):
                limiter.acquire()   # 0.53 s again, more than it may wait
    assert len(slept) == 1          # and it did not sleep
    assert 0.3 < caught.value.retry_in <= 0.53 and caught.value.reason == "budget"


def test_trouble_pauses_the_account_for_every_caller_growing_with_strikes_until_a_success(r):
    from connectors.ratelimit import OverLimit, pause, state, waiting_at_most

    key = keys.key("acme", "amocrm", "ratelimit")
    limiter = RateLimiter(r, key, 100.0)
    other = RateLimiter(r, keys.key("calm", "amocrm", "ratelimit"), 100.0)
    assert 0.45 < limiter.pause("429") <= 0.5
    assert 0.95 < pause(r, key, "429") <= 1.0          # the second strike doubles it
    assert 30 <= pause(r, key, "5xx", at_least=30) <= 30.001  # a Retry-After wins when longer
    with waiting_at_most(1.0), pytest.raises(OverLimit) as caught:
        RateLimiter(r, key, 100.0).acquire()         # another process, same account
    assert caught.value.reason == "5xx" and caught.value.retry_in > 29
    other.acquire()                                  # another account is untouched
    assert state(r, key).strikes == 3 and state(r, key).reason == "5xx"
    r.delete(key)                                    # (the pause is over)
    limiter.acquire()
    limiter.recovered()                              # the first success clears the record
    assert (state(r, key).reason, state(r, key).strikes) == ("", 0)


def test_a_burst_goes_at_once_shared_by_every_client_then_one_per_interval(redis_url):
    from connectors.ratelimit import OverLimit, waiting_at_most

    key = keys.key("acme", "bitrix24", "ratelimit")
    # Three clients on their own connections, as three processes would be. At 0.1 a second the
    # bucket drains one request in 10 s: what goes at once is the burst alone.
    limiters = [RateLimiter(redis.Redis.from_url(redis_url), key, 0.1, burst=20, margin=0) for _ in range(3)]
    taken, refused = 0, set()
    with waiting_at_most(0):
        while len(refused) < 3:
            for n, limiter in enumerate(limiters):
                try:
                    limiter.acquire()
                    taken += 1
                except OverLimit as exc:
                    refused.add(n)
                    retry_in = exc.retry_in
    assert taken == 20
    assert 9 < retry_in <= 10                               # the next one interval after the last


def test_the_burst_keeps_the_margin_and_burst_one_is_plain_spacing(r):
    assert RateLimiter(r, "rg:a:x", 2.0, burst=50).burst == 47  # 5 % short of Bitrix24's 50
    assert RateLimiter(r, "rg:a:x", 7.0).burst == 1
    with pytest.raises(ValueError):
        RateLimiter(r, "rg:a:x", 2.0, burst=0)


def test_a_pause_holds_whatever_the_burst_and_no_burst_follows_it(r):
    from connectors.ratelimit import OverLimit, pause, waiting_at_most

    key = keys.key("acme", "bitrix24", "ratelimit")
    limiter = RateLimiter(r, key, 100.0, burst=50, margin=0)   # 10 ms apart, 49 intervals = 0.49 s of burst
    limiter.acquire()

    def ahead() -> float:
        sec, micro = r.time()
        return (int(r.get(key)) - sec * 1_000_000 - micro) / 1e6

    assert 0.45 < limiter.pause("429") <= 0.5
    # After the pause tat stands a whole burst ahead: requests go one interval apart, not 50 at once.
    assert ahead() > 0.45 + 0.49
    with waiting_at_most(0), pytest.raises(OverLimit) as caught:
        limiter.acquire()                                   # the bucket had room, but the account is paused
    assert caught.value.reason == "429" and caught.value.retry_in > 0.4
    assert 4.9 < pause(r, key, "auth", 5.0) <= 5.0          # a pause from outside the limiter holds too
    with waiting_at_most(0), pytest.raises(OverLimit) as caught:
        limiter.acquire()
    assert caught.value.retry_in > 4.8 and caught.value.reason == "auth"   # its `until`, not cut by the burst
