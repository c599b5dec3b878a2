"""Random, truncated, oversized and mistyped bodies: always a 4xx or 200, never a 5xx."""

import json

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.conftest import ACCOUNT, B24_ACCOUNT, B24_SECRET, B24_TOKEN, SECRET, make_settings
from tests.fixtures import load

PATHS = [f"/hooks/amocrm/{SECRET}", f"/hooks/wazzup/{SECRET}", f"/hooks/telephony/zadarma/{SECRET}",
         f"/hooks/telephony/mango/{SECRET}", f"/hooks/telephony/mango/{SECRET}/events/summary",
         f"/hooks/bitrix24/{B24_SECRET}"]
B24 = PATHS[-1]
CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/json", "application/json; charset-utf-8",
                 "text/plain", "multipart/form-data; boundary=x", "", "application/xml", "text/html; charset=\x00"]
FUZZ = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

key_part = st.one_of(st.sampled_from(["leads", "task", "tasks", "contacts", "message", "account", "note",
                                      "status", "add", "update", "0", "1", "id", "text", "custom_fields",
                                      "values", "value", ""]), st.text(max_size=6))
nested_key = st.builds(lambda head, parts: head + "".join(f"[{p}]" for p in parts),
                       key_part, st.lists(key_part, max_size=5))
form_body = st.lists(st.tuples(nested_key, st.text(max_size=20)), max_size=12)

json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["messages", "statuses", "test", "messageId", "chatId", "status", "isEcho",
                         "error", "contact", "text"]) | st.text(max_size=5), children, max_size=5),
    max_leaves=20)


@pytest.fixture
def settings():
    return make_settings(accounts=[ACCOUNT, B24_ACCOUNT])


def assert_not_5xx(resp):
    assert resp.status_code < 500, (resp.status_code, resp.get_data()[:200])
    assert resp.status_code in (200, 400, 403, 413, 415), resp.status_code
    assert resp.is_json and (resp.status_code == 200 or resp.json.get("error"))


@FUZZ
@given(body=st.binary(max_size=2000), path=st.sampled_from(PATHS), ct=st.sampled_from(CONTENT_TYPES))
def test_random_bytes(client, body, path, ct):
    assert_not_5xx(client.post(path, data=body, content_type=ct))


@FUZZ
@given(pairs=form_body, path=st.sampled_from([p for p in PATHS if "wazzup" not in p]))
def test_random_php_forms(client, pairs, path):
    from urllib.parse import urlencode

    resp = client.post(path, data=urlencode(pairs + [("account[id]", "1")]),
                       content_type="application/x-www-form-urlencoded")
    assert_not_5xx(resp)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["event", "call_start", "pbx_call_id", "caller_id", "called_did",
                                               "internal", "destination", "disposition", "duration",
                                               "vpbx_api_key", "sign", "json"]),
                              st.one_of(st.sampled_from(["NOTIFY_END", "NOTIFY_OUT_END", "answered", "abc123", "",
                                                         '{"call_direction":1,"entry_result":0}', "{"]),
                                        st.text(max_size=12)), max_size=10),
       path=st.sampled_from(PATHS[2:]),
       signature=st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=30))
def test_random_telephony_fields(client, fields, path, signature):
    from urllib.parse import urlencode

    resp = client.post(path, data=urlencode(fields), content_type="application/x-www-form-urlencoded",
                       headers={"Signature": signature})
    assert_not_5xx(resp)


b24_key = st.one_of(
    st.sampled_from(["event", "event_handler_id", "ts", "data[FIELDS][ID]", "data[FIELDS]", "data[FIELDS_AFTER][ID]",
                     "data[FIELDS_BEFORE][ID]", "data[FIELDS_AFTER]", "data[CALL_ID]", "data", "auth[domain]",
                     "auth[member_id]", "auth", "auth[application_token][0]"]), nested_key)
b24_value = st.one_of(st.sampled_from(["ONCRMDEALADD", "oncrmdealupdate", "ONTASKDELETE", "ONVOXIMPLANTCALLEND",
                                       "ONCRMCOMPANYADD", "7405", "0", "-1", "1766047124", "undefined", ""]),
                      st.text(max_size=12))


@FUZZ
@given(pairs=st.lists(st.tuples(b24_key, b24_value), max_size=10), token=st.booleans())
def test_random_bitrix24_events(client, pairs, token):
    """Mostly with the right token, so the parser is reached; the token goes last, so a
    generated auth[...] key may collide with it as in a hostile body."""
    from urllib.parse import urlencode

    tail = [("auth[application_token]", B24_TOKEN)] if token else []
    assert_not_5xx(client.post(B24, data=urlencode(pairs + tail), content_type="application/x-www-form-urlencoded"))


@pytest.mark.parametrize("name", load.names("bitrix24"))
def test_every_truncation_of_bitrix24_fixtures(client, name):
    """The token is moved first so that most cuts reach the parser."""
    from urllib.parse import urlencode

    pairs = load.amocrm_pairs(name, "bitrix24")
    body = urlencode(sorted(pairs, key=lambda p: p[0] != "auth[application_token]")).encode()
    for cut in range(0, len(body), max(1, len(body) // 40)):
        assert_not_5xx(client.post(B24, data=body[:cut], content_type="application/x-www-form-urlencoded"))


@FUZZ
@given(doc=json_value)
def test_random_json(client, doc):
    assert_not_5xx(client.post(PATHS[1], data=json.dumps(doc), content_type="application/json"))


@pytest.mark.parametrize("name", load.names("amocrm"))
def test_every_truncation_of_amocrm_fixtures(client, name):
    body = load.amocrm(name)
    for cut in range(0, len(body), max(1, len(body) // 40)):
        assert_not_5xx(client.post(PATHS[0], data=body[:cut], content_type="application/x-www-form-urlencoded"))


@pytest.mark.parametrize("name", load.names("wazzup"))
def test_every_truncation_of_wazzup_fixtures(client, name):
    body = load.wazzup(name)
    for cut in range(0, len(body), max(1, len(body) // 40)):
        assert_not_5xx(client.post(PATHS[1], data=body[:cut], content_type="application/json"))


@pytest.mark.parametrize("path", PATHS)
def test_oversized(client, path):
    resp = client.post(path, data=b"a" * (2 * 1024 * 1024), content_type="application/json")
    assert resp.status_code == 413


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
@pytest.mark.parametrize("path", [p for p in PATHS if "/events/" not in p] + ["/hooks/bitrix/x", "/nope", "/hooks/amocrm/"])
def test_other_methods_and_paths(client, method, path):
    resp = getattr(client, method)(path)
    assert resp.status_code in (404, 405)
