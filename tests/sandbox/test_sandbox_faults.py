"""/_sandbox/faults: the sandbox answers 429/5xx for a while, and blocks (403) a client that ignores 429s."""

import time

import requests

from sandbox.faults import Faults


def test_injected_statuses_are_answered_in_turn_then_the_api_serves_again(amo):
    api = amo.url + "/api/v4/account"
    set_ = requests.post(amo.url + "/_sandbox/faults", json={"statuses": [429, 503], "seconds": 0.5})
    assert set_.status_code == 200 and set_.json()["active_for"] > 0
    answers = [requests.get(api, headers=amo.headers).status_code for _ in range(4)]
    assert answers == [429, 503, 429, 503]
    assert requests.get(api).status_code == 401  # a fault never lets an unauthenticated request through
    time.sleep(0.6)
    assert requests.get(api, headers=amo.headers).status_code == 200
    assert requests.get(amo.url + "/_sandbox/faults").json()["answered"] == {"429": 2, "503": 2}
    assert requests.post(amo.url + "/_sandbox/faults", json={"statuses": [200]}).status_code == 400


def test_a_client_causing_more_429s_a_minute_than_allowed_is_blocked_with_403():
    now = [0.0]
    faults = Faults(clock=lambda: now[0])
    faults.set_block(after=3, seconds=10)
    faults.inject([429], 5)
    for _ in range(3):
        assert faults.answer() == 429
        faults.note_429()
    assert faults.answer() == 429
    faults.note_429()  # the fourth within a minute
    assert faults.answer() == 403
    now[0] = 11
    assert faults.answer() is None  # the block and the fault are over
