"""Wazzup v3 client: exact send bodies, idempotency through crmMessageId, retries, channels, errors."""

from __future__ import annotations

import json
import logging

import pytest
import requests
import responses

from connectors.http import GaveUp
from connectors.wazzup import Template, WazzupAuthError, WazzupClient, WazzupError, crm_message_id, is_our_message
from reglament.config import Wazzup
from tests.messaging.conftest import ACCOUNT, CHANNEL_ID, WAZZUP_KEY

API = "https://api.wazzup24.com/v3"
CHANNELS = [
    {"channelId": "11111111-0f67-4567-92a9-2237e91ec1b9", "transport": "whatsapp", "plainId": "79860000001",
     "state": "qr"},
    {"channelId": "22222222-0f67-4567-92a9-2237e91ec1b9", "transport": "instagram", "plainId": "acme_shop",
     "state": "active"},
    {"channelId": CHANNEL_ID, "transport": "whatsapp", "plainId": "79865784457", "state": "active"},
]
MESSAGE_ID = "3a3c2c1e-5b7a-4d2f-9d64-0b3c0f9b1a11"
TEXT = "Здравствуйте! Вы звонили нам, перезвоним в течение 10 минут."
REPEATED = {"error": "repeatedCrmMessageId", "description": "You have already sent message with the same crmMessageId"}


@pytest.fixture
def make_wazzup(r, fast):
    def make(channel_id: str | None = None, **kw) -> WazzupClient:
        return WazzupClient(ACCOUNT, Wazzup(api_key=WAZZUP_KEY, channel_id=channel_id), r, **{**fast, **kw})
    return make


@pytest.fixture
def wazzup(make_wazzup) -> WazzupClient:
    return make_wazzup()


def sent_bodies(mocked) -> list[dict]:
    return [json.loads(c.request.body) for c in mocked.calls if c.request.url == f"{API}/message"]


def test_send_text_posts_the_documented_body(wazzup, mocked, r):
    mocked.get(f"{API}/channels", json=CHANNELS)
    mocked.post(f"{API}/message", status=201, json={"messageId": MESSAGE_ID, "chatId": "79011112233"})
    result = wazzup.send_text("+7 (901) 111-22-33", TEXT, "missed_call:call:8f2c")
    crm_id = crm_message_id(ACCOUNT, "missed_call:call:8f2c")
    assert sent_bodies(mocked) == [{"channelId": CHANNEL_ID, "chatType": "whatsapp", "chatId": "79011112233",
                                    "text": TEXT, "crmMessageId": crm_id, "clearUnanswered": False}]
    post = mocked.calls[-1].request
    assert post.headers["Authorization"] == f"Bearer {WAZZUP_KEY}"
    assert post.headers["Content-Type"] == "application/json"
    assert (result.channel, result.provider, result.message_id, result.duplicate) == (
        "whatsapp", "wazzup", MESSAGE_ID, False)
    assert len(crm_id) <= 40 and crm_id.startswith("rg-")
    # Our own echo can be told from a manager's answer, by either id.
    assert wazzup.is_our_message(message_id=MESSAGE_ID)
    assert is_our_message(r, ACCOUNT, crm_message_id=crm_id)
    assert not wazzup.is_our_message(message_id="a-manager-typed-this")
    assert not wazzup.is_our_message()


@pytest.mark.parametrize("answer", [{"message_id": MESSAGE_ID}, {"data": {"messageId": MESSAGE_ID}}],
                         ids=["message_id", "data.messageId"])
def test_message_id_is_read_defensively(wazzup, mocked, answer):
    mocked.get(f"{API}/channels", json=CHANNELS)
    mocked.post(f"{API}/message", status=200, json=answer)
    assert wazzup.send_text("79011112233", "hi", "k1").message_id == MESSAGE_ID


def test_a_2xx_without_an_id_is_still_a_success(wazzup, mocked):
    mocked.get(f"{API}/channels", json=CHANNELS)
    mocked.post(f"{API}/message", status=201, body="")
    result = wazzup.send_text("79011112233", "hi", "k1")
    assert result.message_id is None and not result.duplicate


def test_429_is_retried_honouring_retry_after(wazzup, mocked, sleeps):
    mocked.get(f"{API}/channels", json=CHANNELS)
    mocked.post(f"{API}/message", status=429, headers={"Retry-After": "2"})
    mocked.post(f"{API}/message", status=201, json={"messageId": MESSAGE_ID})
    assert wazzup.send_text("79011112233", "hi", "k1").message_id == MESSAGE_ID
    assert len(sent_bodies(mocked)) == 2
    assert sleeps and sleeps[0] >= 2


def test_repeated_crm_message_id_means_already_sent(wazzup, mocked):
    mocked.get(f"{API}/channels", json=CHANNELS)
    mocked.post(f"{API}/message", status=400, json=REPEATED)
    result = wazzup.send_text("79011112233", "hi", "k1")
    assert result.channel == "whatsapp" and result.duplicate


@pytest.mark.parametrize("lost", [dict(status=503), dict(body=requests.ReadTimeout("read timed out"))],
                         ids=["503", "read-timeout"])
def test_a_retried_send_never_sends_twice(wazzup, mocked, lost):
    mocked.get(f"{API}/channels", json=CHANNELS)
    mocked.post(f"{API}/message", **lost)          # the answer is lost; the message may have gone
    mocked.post(f"{API}/message", status=400, json=REPEATED)
    result = wazzup.send_text("79011112233", "hi", "k1")
    bodies = sent_bodies(mocked)
    assert len(bodies) == 2 and bodies[0]["crmMessageId"] == bodies[1]["crmMessageId"]
    assert result.duplicate
    # A later attempt of the same action sends nothing at all.
    before = len(mocked.calls)
    again = wazzup.send_text("79011112233", "hi", "k1")
    assert again.duplicate and len(mocked.calls) == before


def test_a_send_that_gave_up_is_repeated_later_with_the_same_crm_message_id(wazzup, mocked):
    mocked.get(f"{API}/channels", json=CHANNELS)
    for _ in range(3):
        mocked.post(f"{API}/message", status=502)
    with pytest.raises(GaveUp):
        wazzup.send_text("79011112233", "hi", "k1")
    mocked.post(f"{API}/message", status=201, json={"messageId": MESSAGE_ID})
    assert wazzup.send_text("79011112233", "hi", "k1").message_id == MESSAGE_ID
    assert len({b["crmMessageId"] for b in sent_bodies(mocked)}) == 1


def test_template_forms(wazzup, mocked):
    mocked.get(f"{API}/channels", json=CHANNELS)
    mocked.post(f"{API}/message", status=201, json={"messageId": MESSAGE_ID})
    tid = "6201005a-9a6f-486f-bdd5-e6cb86c76ddb"
    wazzup.send_template("79011112233", Template(tid, ["Иван"]), "t1")
    wazzup.send_template("79011112233", Template(tid, ["Иван"], as_text=True), "t2")
    by_id, as_text = sent_bodies(mocked)
    assert by_id["templateId"] == tid and by_id["templateValues"] == ["Иван"] and "text" not in by_id
    assert as_text["text"] == f"@template: {tid} {{ [[Иван]] }}" and "templateId" not in as_text
    assert by_id["clearUnanswered"] is False and as_text["crmMessageId"] != by_id["crmMessageId"]


def test_channels_are_parsed_and_only_active_whatsapp_ones_are_used(make_wazzup, mocked):
    mocked.get(f"{API}/channels", json=CHANNELS)
    wazzup = make_wazzup()
    channels = wazzup.list_channels()
    assert [(c.transport, c.plain_id, c.active) for c in channels] == [
        ("whatsapp", "79860000001", False), ("instagram", "acme_shop", True), ("whatsapp", "79865784457", True)]
    assert [c.channel_id for c in wazzup.active_channels()] == [CHANNELS[1]["channelId"], CHANNEL_ID]
    assert wazzup.usable_channel().channel_id == CHANNEL_ID
    calls = len(mocked.calls)
    wazzup.usable_channel()
    assert len(mocked.calls) == calls  # the list is reused for a while
    # A configured channel that is not active is not silently replaced by another number.
    assert make_wazzup(channel_id=CHANNELS[0]["channelId"]).usable_channel(refresh=True) is None


def test_a_wapi_channel_sends_as_whatsapp(wazzup, mocked):
    mocked.get(f"{API}/channels", json=[{"channelId": CHANNEL_ID, "transport": "wapi", "state": "active"}])
    mocked.post(f"{API}/message", status=201, json={"messageId": MESSAGE_ID})
    wazzup.send_text("79011112233", "hi", "k1")
    assert sent_bodies(mocked)[0]["chatType"] == "whatsapp"


def test_errors_are_raised_in_plain_words(wazzup, mocked):
    mocked.get(f"{API}/channels", json=CHANNELS)
    mocked.post(f"{API}/message", status=400,
                json={"error": "CHANNEL_BLOCKED", "description": "Channel is blocked", "data": {"channelId": "x"}})
    with pytest.raises(WazzupError) as e:
        wazzup.send_text("79011112233", "hi", "k1")
    assert e.value.code == "CHANNEL_BLOCKED" and e.value.status == 400
    assert "Wazzup refused the request (HTTP 400 CHANNEL_BLOCKED: Channel is blocked)" in str(e.value)
    # A refusal sent nothing: the next attempt really sends.
    mocked.replace(responses.POST, f"{API}/message", status=201, json={"messageId": MESSAGE_ID})
    assert wazzup.send_text("79011112233", "hi", "k1").message_id == MESSAGE_ID


def test_bad_key_is_an_auth_error_without_the_key(wazzup, mocked, caplog):
    caplog.set_level(logging.DEBUG)
    mocked.get(f"{API}/channels", status=401, body="")
    with pytest.raises(WazzupAuthError) as e:
        wazzup.list_channels()
    assert "HTTP 401" in str(e.value) and "wazzup.api_key" in str(e.value)
    assert WAZZUP_KEY not in str(e.value) and WAZZUP_KEY not in caplog.text


def test_the_rate_limit_is_500_per_5_seconds(wazzup):
    assert wazzup.http.limiter.rate == 100
    assert wazzup.http.limiter.key == f"rg:{ACCOUNT}:wazzup:ratelimit"
