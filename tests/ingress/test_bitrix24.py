"""Bitrix24's outgoing events: the application token, parsing field by field, one job per
event however often it is posted, 200 for events we don't handle."""

from urllib.parse import urlencode

import pytest

from app import create_app
from app.bitrix24 import parser
from jobs.dispatcher import Dispatcher
from reglament import keys
from tests.conftest import B24_ACCOUNT, B24_SECRET, B24_TOKEN as TOKEN, make_settings
from tests.fixtures import load
from tests.jobs_helpers import dispatch_all, queued_events

FORM = "application/x-www-form-urlencoded"
PATH = f"/hooks/bitrix24/{B24_SECRET}"


def b24_settings(**bitrix24):
    return make_settings(accounts=[B24_ACCOUNT | {"bitrix24": B24_ACCOUNT["bitrix24"] | bitrix24}])


@pytest.fixture
def b24(r):
    return create_app(b24_settings(), r).test_client()


def post(client, body, path=PATH):
    return client.post(path, data=body, content_type=FORM)


def with_fields(name, **changed):
    pairs = dict(load.amocrm_pairs(name, "bitrix24"))
    return urlencode({k: v for k, v in (pairs | changed).items() if v is not None}).encode()


@pytest.mark.parametrize("name, entity, entity_id, event, at", [
    ("deal_added", "deal", 7405, "ONCRMDEALADD", 1766047124),
    ("deal_added_application", "deal", 7405, "ONCRMDEALADD", 1766047124),
    ("deal_updated", "deal", 759, "ONCRMDEALUPDATE", 1742807189),
    ("deal_deleted", "deal", 1765, "ONCRMDEALDELETE", 1736405294),
    ("lead_added", "lead", 1000983, "ONCRMLEADADD", 1742807189),
    ("lead_updated", "lead", 1000983, "ONCRMLEADUPDATE", 1742807189),
    ("activity_added_camel_case", "activity", 999, "ONCRMACTIVITYADD", 1742807189),
    ("activity_updated", "activity", 999, "ONCRMACTIVITYUPDATE", 1742807190),
    ("contact_updated", "contact", 301, "ONCRMCONTACTUPDATE", 1742807191),
    ("task_added", "task", 123, "ONTASKADD", 1742807192),
    ("task_updated", "task", 123, "ONTASKUPDATE", 1742807193),
    ("task_deleted", "task", 123, "ONTASKDELETE", 1742807194),
    ("call_ended_missed", "call", "externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327",
     "ONVOXIMPLANTCALLEND", 1773239624),
    ("comment_added", "comment", 999, "ONCRMTIMELINECOMMENTADD", 1466439714),
])
def test_each_event_becomes_one_crm_changed_field_by_field(name, entity, entity_id, event, at):
    parsed = parser.parse(load.bitrix24(name), "b24")
    [e] = parsed.events
    assert (e.account, e.source, e.kind, e.entity_id) == ("b24", "bitrix24", "crm.changed", entity_id)
    assert e.fields == {"entity": entity, "id": entity_id, "event": event, "at": at}
    assert e.key and parsed.ignored == []
    assert (parsed.application_token, parsed.domain) == (TOKEN, "some-domain.bitrix24.com")
    assert parsed.member_id == dict(load.amocrm_pairs(name, "bitrix24"))["auth[member_id]"]


def test_every_fixture_is_a_handled_event_but_the_ignored_one():
    handled = {n for n in load.names("bitrix24") if dict(load.amocrm_pairs(n, "bitrix24"))["event"].upper() in parser.EVENTS}
    lifecycle = {"app_installed", "app_installed_callback", "app_uninstalled"}  # tests/ingress/test_bitrix24_install.py
    assert set(load.names("bitrix24")) - handled == {"company_added_ignored"} | lifecycle


@pytest.mark.parametrize("changed, entity_id", [({}, 999), ({"data[ID]": None, "data[FIELDS][ID]": "998"}, 998)])
def test_a_comment_event_is_taken_with_data_id_or_data_fields_id(changed, entity_id):
    [e] = parser.parse(with_fields("comment_added", **changed), "b24").events
    assert (e.entity_id, e.fields["entity"]) == (entity_id, "comment")


def test_a_comment_event_without_an_id_is_rejected(b24):
    resp = post(b24, with_fields("comment_added", **{"data[ID]": None, "data[FIELDS][X]": "1"}))
    assert resp.status_code == 400 and resp.json["error"] == "ONCRMTIMELINECOMMENTADD has no valid data[FIELDS][ID]"


def test_the_key_is_the_events_identity_not_the_handler_or_the_auth():
    key = lambda body: parser.parse(body, "b24").events[0].key  # noqa: E731
    base = key(load.bitrix24("deal_added"))
    # A second handler (double bind), an application's auth block: the same event.
    assert key(with_fields("deal_added", event_handler_id="976")) == base
    assert key(load.bitrix24("deal_added_application")) == base
    assert key(with_fields("deal_added", event="oncrmdealadd")) == base
    # Another deal, another moment, another event: another key.
    assert len({base, key(with_fields("deal_added", **{"data[FIELDS][ID]": "7406"})),
                key(with_fields("deal_added", ts="1766047125")),
                key(with_fields("deal_added", event="ONCRMDEALUPDATE"))}) == 4


def test_the_same_body_posted_three_times_is_one_job(b24, r):
    answers = [post(b24, load.bitrix24("deal_updated")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert [(a.json["accepted"], a.json["duplicates"]) for a in answers] == [(1, 0), (0, 1), (0, 1)]
    # A handler bound twice sends it with another event_handler_id: still the same event.
    assert post(b24, with_fields("deal_updated", event_handler_id="977")).json["duplicates"] == 1
    dispatch_all(r, ["b24"])
    [event] = queued_events(r)
    assert event["kind"] == "crm.changed" and event["source"] == "bitrix24"
    assert event["fields"] == {"entity": "deal", "id": 759, "event": "ONCRMDEALUPDATE", "at": 1742807189}


def test_a_wrong_or_missing_token_is_403_with_its_reason_and_kept(b24, r):
    wrong = post(b24, with_fields("deal_added", **{"auth[application_token]": TOKEN[:-1] + "x"}))
    assert wrong.status_code == 403
    assert wrong.json["error"] == "auth[application_token] does not match the configured application_token"
    assert TOKEN not in wrong.get_data(as_text=True)
    missing = post(b24, with_fields("deal_added", **{"auth[application_token]": None}))
    assert missing.status_code == 403 and missing.json["error"] == "body has no auth[application_token]"
    # Even an event we would ignore is refused without the token.
    assert post(b24, with_fields("company_added_ignored", **{"auth[application_token]": "x"})).status_code == 403
    assert [e[1][b"code"] for e in r.xrange(keys.rejected("b24"))] == [b"wrong_token"] * 3
    assert r.xlen(keys.inbox("b24")) == 0


def test_another_portal_is_403(b24, r):
    # The docs' own ONCRMDEALDELETE comes from another portal than our account's member_id.
    other = post(b24, load.bitrix24("deal_deleted"))
    assert other.status_code == 403
    assert other.json["error"] == "event is from portal member_id 'a223c6b3710f85df22e9377d6c4f7553', not the configured one"
    assert [e[1][b"code"] for e in r.xrange(keys.rejected("b24"))] == [b"account_mismatch"]


def test_the_domain_is_checked_when_the_portal_is_configured(r):
    oauth = {"webhook_url": None, "portal": "other.bitrix24.ru",
             "oauth": {"client_id": "local.1", "client_secret": "app-secret-0123456789"}}
    client = create_app(b24_settings(**oauth), r).test_client()
    refused = post(client, load.bitrix24("deal_added"))
    assert refused.status_code == 403 and "some-domain.bitrix24.com" in refused.json["error"]
    same = create_app(b24_settings(**oauth | {"portal": "some-domain.bitrix24.com"}), r).test_client()
    assert post(same, load.bitrix24("deal_added")).status_code == 200


def test_no_configured_token_refuses_every_event(r):
    client = create_app(b24_settings(application_token=None), r).test_client()
    refused = post(client, load.bitrix24("deal_added"))
    assert refused.status_code == 403 and "application_token" in refused.json["error"]


def test_an_amocrm_account_has_no_bitrix24_endpoint(client, r):
    from tests.conftest import SECRET

    assert post(client, load.bitrix24("deal_added"), f"/hooks/bitrix24/{SECRET}").status_code == 404
    assert post(client, load.bitrix24("deal_added"), "/hooks/bitrix24/unknown-secret").status_code == 404


def test_events_we_do_not_handle_are_200_and_listed_as_ignored(b24, r):
    resp = post(b24, load.bitrix24("company_added_ignored"))
    assert resp.status_code == 200
    assert resp.json["ignored"] == ["ONCRMCOMPANYADD"] and resp.json["accepted"] == 0


@pytest.mark.parametrize("changed, reason", [
    ({"event": None}, "body has no event: not a Bitrix24 event"),
    ({"event": "ON\tCRM=1"}, "event 'ON\\tCRM=1' is not an event name"),
    ({"ts": None}, "ONCRMDEALADD has no valid ts (unix seconds)"),
    ({"ts": "yesterday"}, "ONCRMDEALADD has no valid ts (unix seconds)"),
    ({"data[FIELDS][ID]": None}, "ONCRMDEALADD has no data[...]"),
    ({"data[FIELDS][ID]": "abc"}, "ONCRMDEALADD has no valid data[FIELDS][ID]"),
    ({"data[FIELDS][ID]": "0"}, "ONCRMDEALADD has no valid data[FIELDS][ID]"),
])
def test_a_malformed_event_is_400_with_its_reason(b24, changed, reason):
    resp = post(b24, with_fields("deal_added", **changed))
    assert resp.status_code == 400 and resp.json["error"] == reason


def test_malformed_bodies_are_400(b24):
    assert post(b24, b"event=ONCRMDEALADD&data[FIELDS]=1&data[FIELDS][ID]=2").status_code == 400
    assert post(b24, b"\xff\xfe").json["error"] == "body is not UTF-8 text"
    assert post(b24, b"event=ONCRMDEALADD&ts=1").json["error"] == "body has no auth[...] block: not a Bitrix24 event"
    call = with_fields("call_ended_missed", **{"data[CALL_ID]": ""})
    assert post(b24, call).json["error"] == "ONVOXIMPLANTCALLEND has no data[CALL_ID]"
    assert b24.post(PATH, data=load.bitrix24("deal_added"), content_type="application/json").status_code == 415


def test_a_body_is_one_read_with_its_twin_while_the_job_waits_and_a_job_of_its_own_once_it_has_started(b24, r,
                                                                                                      monkeypatch):
    """Two changes of one deal within one second post the same body. While the first one's
    job waits, its read comes after both; once it has started, its read may come before the
    second, so the second body is a job of its own, not a duplicate to drop."""
    from rq import Queue, SimpleWorker

    from jobs import context, queues

    body = load.bitrix24("deal_updated")
    during_read = []

    class CRM:  # the deal's read: a second change of the deal is posted while the first is read
        def expand(self, event):
            if not during_read:
                during_read.append(post(b24, body).json["accepted"])
            return []

    context.set_settings(b24_settings(), r)
    monkeypatch.setattr(context, "crm_for", lambda account: CRM())
    d = Dispatcher(r, ["b24"])
    d.ensure_groups()

    def dispatch_and_work() -> int:
        while d.run_once(block_ms=10):
            pass
        jobs = Queue(queues.EVENTS, connection=r).count
        SimpleWorker([Queue(queues.EVENTS, connection=r)], connection=r).work(burst=True, with_scheduler=False)
        return jobs

    assert [post(b24, body).json["accepted"] for _ in range(3)] == [1, 0, 0]  # the job waits: one read
    assert dispatch_and_work() == 1
    assert during_read == [1]                      # posted while the job read: a job of its own
    assert post(b24, body).json["accepted"] == 0   # and that one waits in turn
    assert dispatch_and_work() == 1
    assert dispatch_and_work() == 0 and not r.keys(keys.dedupe("b24", "*"))


def test_an_application_event_is_kept_without_the_users_access_token(b24, r):
    body = load.bitrix24("deal_added_application")
    token = dict(load.amocrm_pairs("deal_added_application", "bitrix24"))["auth[access_token]"]
    assert post(b24, body).status_code == 200
    [(_, kept)] = r.xrange(keys.inbox("b24"))
    assert token.encode() not in kept[b"body"] and TOKEN.encode() not in kept[b"body"]
    dispatch_all(r, ["b24"])                          # and the dispatcher still reads it
    [event] = queued_events(r)
    assert event["fields"]["id"] == 7405
