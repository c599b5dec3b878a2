"""SMS.ru and SMSC.ru: exact request fields, success and error bodies, at-most-once sending."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import pytest
import requests

from connectors.http import GaveUp
from connectors.outbox import OutcomeUnknown
from connectors.sms import InvalidPhone, SmsError, Smsc, SmsRu, make_sms_sender, normalize_phone
from tests.messaging.conftest import ACCOUNT, SMSC_PASSWORD, SMSRU_API_ID, smsc_settings, smsru_settings

SMSRU = "https://sms.ru/sms/send"
SMSC = "https://smsc.ru/sys/send.php"
TEXT = "Здравствуйте! Перезвоним в течение 10 минут."


def form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


@pytest.fixture
def smsru(r, fast) -> SmsRu:
    return make_sms_sender(ACCOUNT, smsru_settings(sender="ACME"), r, **fast)


@pytest.fixture
def smsc(r, fast) -> Smsc:
    return make_sms_sender(ACCOUNT, smsc_settings(sender="ACME"), r, **fast)


@pytest.mark.parametrize("raw, digits", [
    ("+7 (901) 111-22-33", "79011112233"), ("8 901 111 22 33", "79011112233"), ("9011112233", "79011112233"),
    ("79011112233", "79011112233"), ("+375 29 123-45-67", "375291234567"), ("0049 30 1234567", "49301234567"),
])
def test_phones_become_international_digits(raw, digits):
    assert normalize_phone(raw) == digits


@pytest.mark.parametrize("raw", ["", "12345", "не указан", "+7 901 111 22 33 44 55 66"])
def test_bad_phones_are_refused(raw):
    with pytest.raises(InvalidPhone):
        normalize_phone(raw)


# ---------------------------------------------------------------- SMS.ru

def test_smsru_success(smsru, mocked):
    mocked.post(SMSRU, json={"status": "OK", "status_code": 100, "balance": 4122.56,
                             "sms": {"79011112233": {"status": "OK", "status_code": 100,
                                                     "sms_id": "000000-10000000"}}})
    result = smsru.send("8 (901) 111-22-33", TEXT, "missed_call:1")
    assert form(mocked.calls[0]) == {"api_id": SMSRU_API_ID, "to": "79011112233", "msg": TEXT, "json": "1",
                                     "from": "ACME"}
    assert (result.channel, result.provider, result.message_id, result.duplicate) == (
        "sms", "smsru", "000000-10000000", False)
    again = smsru.send("79011112233", TEXT, "missed_call:1")
    assert again.duplicate and again.message_id == "000000-10000000" and len(mocked.calls) == 1


def test_smsru_per_number_error_sends_nothing_and_may_be_retried(smsru, mocked):
    mocked.post(SMSRU, json={"status": "OK", "status_code": 100, "balance": 10,
                             "sms": {"79011112233": {"status": "ERROR", "status_code": 207,
                                                     "status_text": "На этот номер нельзя отправлять сообщения"}}})
    with pytest.raises(SmsError) as e:
        smsru.send("79011112233", TEXT, "missed_call:1")
    assert e.value.code == 207 and not e.value.retryable
    assert str(e.value) == ("SMS.ru refused the message (code 207: cannot send to this number; "
                            "На этот номер нельзя отправлять сообщения)")
    mocked.replace("POST", SMSRU, json={"status": "OK", "status_code": 100,
                                        "sms": {"79011112233": {"status": "OK", "status_code": 100, "sms_id": "1-2"}}})
    assert smsru.send("79011112233", TEXT, "missed_call:1").message_id == "1-2"


def test_smsru_request_level_error(smsru, mocked, caplog):
    caplog.set_level(logging.DEBUG)
    mocked.post(SMSRU, json={"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"})
    with pytest.raises(SmsError) as e:
        smsru.send("79011112233", TEXT, "missed_call:1")
    assert e.value.code == 200 and "wrong api_id" in str(e.value)
    assert SMSRU_API_ID not in str(e.value) and SMSRU_API_ID not in caplog.text


def test_smsru_service_unavailable_is_retryable(smsru, mocked):
    mocked.post(SMSRU, json={"status": "ERROR", "status_code": 220, "status_text": "Сервис временно недоступен"})
    with pytest.raises(SmsError) as e:
        smsru.send("79011112233", TEXT, "missed_call:1")
    assert e.value.retryable


def test_smsru_anti_duplicate_means_the_client_has_it(smsru, mocked):
    mocked.post(SMSRU, json={"status": "OK", "status_code": 100,
                             "sms": {"79011112233": {"status": "ERROR", "status_code": 231}}})
    result = smsru.send("79011112233", TEXT, "missed_call:1")
    assert result.duplicate and result.channel == "sms"


# ---------------------------------------------------------------- SMSC.ru

def test_smsc_success(smsc, mocked):
    mocked.post(SMSC, json={"id": 123456, "cnt": 1})
    result = smsc.send("+7 901 111-22-33", TEXT, "missed_call:1")
    assert form(mocked.calls[0]) == {"login": "acme-login", "psw": SMSC_PASSWORD, "phones": "79011112233",
                                     "mes": TEXT, "fmt": "3", "charset": "utf-8", "sender": "ACME"}
    assert (result.provider, result.message_id) == ("smsc", "123456")


@pytest.mark.parametrize("body, code, words", [
    ({"error": "authorise error", "error_code": 2}, 2, "wrong login or password"),
    ({"error": "invalid phone", "error_code": 7, "id": 77}, 7, "wrong phone format"),
])
def test_smsc_errors(smsc, mocked, caplog, body, code, words):
    caplog.set_level(logging.DEBUG)
    mocked.post(SMSC, json=body)
    with pytest.raises(SmsError) as e:
        smsc.send("79011112233", TEXT, "missed_call:1")
    assert e.value.code == code and words in str(e.value) and body["error"] in str(e.value)
    assert SMSC_PASSWORD not in str(e.value) and SMSC_PASSWORD not in caplog.text


def test_smsc_anti_duplicate_means_the_client_has_it(smsc, mocked):
    mocked.post(SMSC, json={"error": "duplicate request", "error_code": 9})
    assert smsc.send("79011112233", TEXT, "missed_call:1").duplicate


# ---------------------------------------------------------------- unknown outcomes

@pytest.mark.parametrize("lost", [dict(body=requests.ReadTimeout("read timed out")), dict(status=503),
                                  dict(status=200, body="<html>oops</html>")],
                         ids=["read-timeout", "503", "not-json"])
def test_an_unknown_outcome_is_reported_and_never_resent(smsc, mocked, lost, r):
    mocked.post(SMSC, **lost)
    mocked.post(SMSC, json={"id": 1, "cnt": 1})
    with pytest.raises(OutcomeUnknown):
        smsc.send("79011112233", TEXT, "missed_call:1")
    assert len(mocked.calls) == 1
    with pytest.raises(OutcomeUnknown, match="may or may not have been sent"):
        smsc.send("79011112233", TEXT, "missed_call:1")
    assert len(mocked.calls) == 1
    assert smsc.deliveries.get("missed_call:1")["state"] == "unknown"
    # An operator who checked the gateway may allow a resend.
    smsc.deliveries.forget("missed_call:1")
    assert smsc.send("79011112233", TEXT, "missed_call:1").message_id == "1"


def test_429_is_retried_since_nothing_was_sent(smsru, mocked, sleeps):
    mocked.post(SMSRU, status=429)
    mocked.post(SMSRU, json={"status": "OK", "status_code": 100,
                             "sms": {"79011112233": {"status": "OK", "status_code": 100, "sms_id": "9"}}})
    assert smsru.send("79011112233", TEXT, "missed_call:1").message_id == "9"
    assert len(sleeps) == 1


def test_unreachable_gateway_sends_nothing_and_may_be_retried(smsru, mocked):
    for _ in range(3):
        mocked.post(SMSRU, body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(GaveUp):
        smsru.send("79011112233", TEXT, "missed_call:1")
    assert smsru.deliveries.get("missed_call:1") is None


def test_concurrent_attempt_is_not_doubled(smsru, mocked):
    assert smsru.deliveries.claim("missed_call:1")  # another worker is sending right now
    with pytest.raises(OutcomeUnknown, match="sending it right now"):
        smsru.send("79011112233", TEXT, "missed_call:1")
    assert not mocked.calls
