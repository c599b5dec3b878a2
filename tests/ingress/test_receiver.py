"""The webhook endpoints end to end against a real Redis: accept, dedupe, dispatch, refuse."""

import pytest
import redis as redis_lib
from rq import Queue

from jobs.queues import EVENTS
from reglament import keys
from tests.conftest import SECRET
from tests.jobs_helpers import dispatch_all, queued_events
from tests.fixtures import load

FORM = "application/x-www-form-urlencoded"
AMO = f"/hooks/amocrm/{SECRET}"
WAZZUP = f"/hooks/wazzup/{SECRET}"


def jobs(r):
    return queued_events(r)


@pytest.mark.parametrize("name", load.names("amocrm"))
def test_amocrm_event_kinds_become_one_job_per_entity_even_when_posted_twice(client, r, name):
    from app.amocrm import parser

    expected = parser.parse(load.amocrm(name), "acme").events
    for _ in range(2):
        resp = client.post(AMO, data=load.amocrm(name), content_type=FORM)
        assert resp.status_code == 200, resp.json
    dispatch_all(r)
    queued = jobs(r)
    assert sorted(j["key"] for j in queued) == sorted(e.key for e in expected)
    assert [j["kind"] for j in queued] == [e.kind for e in expected]


@pytest.mark.parametrize("name", load.names("wazzup"))
def test_wazzup_kinds_become_one_job_each_even_when_posted_twice(client, r, name):
    from app.wazzup import parser

    expected = parser.parse(load.wazzup(name), "acme").events
    for _ in range(2):
        resp = client.post(WAZZUP, data=load.wazzup(name), content_type="application/json; charset-utf-8")
        assert resp.status_code == 200, resp.json
    dispatch_all(r)
    assert sorted(j["key"] for j in jobs(r)) == sorted(e.key for e in expected)


def test_answer_counts_new_duplicate_and_ignored(client):
    first = client.post(AMO, data=load.amocrm("multi_section"), content_type=FORM).json
    second = client.post(AMO, data=load.amocrm("multi_section"), content_type=FORM).json
    ignored = client.post(AMO, data=load.amocrm("unknown_section"), content_type=FORM).json
    assert (first["accepted"], first["duplicates"]) == (4, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 4)
    assert ignored == {"accepted": 0, "duplicates": 0, "ignored": ["companies.add"], "delivery": ignored["delivery"]}


def test_the_event_is_in_redis_before_the_answer(client, r):
    resp = client.post(AMO, data=load.amocrm("lead_added"), content_type=FORM)
    entry = r.xrange(keys.inbox("acme"), resp.json["delivery"], resp.json["delivery"])
    assert entry, "delivery stored"
    fields = entry[0][1]
    assert fields[b"body"] == load.amocrm("lead_added")
    assert fields[b"source"] == b"amocrm" and fields[b"new"] == b"1"


def test_wazzup_probe_is_answered_200_and_stores_nothing(client, r):
    resp = client.post(WAZZUP, data=b'{"test": true}', content_type="application/json")
    assert resp.status_code == 200
    assert r.xlen(keys.inbox("acme")) == 0


def test_unknown_secret_is_404_without_hint_and_counted(client, r):
    resp = client.post("/hooks/amocrm/wrong-secret-xxxxxxxxxxxxxxx", data=load.amocrm("lead_added"), content_type=FORM)
    assert resp.status_code == 404 and resp.json == {"error": "not found"}
    assert r.hget(keys.metrics(keys.GLOBAL), "webhook_rejections_total\treason=unknown_secret\tsource=amocrm") == b"1"


@pytest.mark.parametrize("path, body, content_type, status, code", [
    (AMO, b"leads[status][0][id]=1", FORM, 400, "malformed"),
    (AMO, load.amocrm("lead_added"), "application/json", 415, "wrong_content_type"),
    (AMO, b"", "", 415, "wrong_content_type"),
    (WAZZUP, b"not json", "application/json", 400, "malformed"),
    (WAZZUP, b"{}", "text/html", 415, "wrong_content_type"),
])
def test_bad_bodies_get_4xx_with_reason_and_are_kept(client, r, path, body, content_type, status, code):
    resp = client.post(path, data=body, content_type=content_type)
    assert resp.status_code == status
    assert resp.json["error"]
    kept = r.xrange(keys.rejected("acme"))
    assert len(kept) == 1
    assert kept[0][1][b"code"] == code.encode() and kept[0][1][b"body"] == body
    assert r.xlen(keys.inbox("acme")) == 0


def test_oversized_body_is_413(settings, r):
    from app import create_app

    settings.max_body_bytes = 1000
    client = create_app(settings, r).test_client()
    resp = client.post(AMO, data=b"account[id]=1&leads[add][0][name]=" + b"x" * 2000, content_type=FORM)
    assert resp.status_code == 413
    assert r.xrange(keys.rejected("acme"))[0][1][b"code"] == b"too_large"


def test_account_mismatch_is_refused(r):
    from app import create_app
    from tests.conftest import make_settings

    s = make_settings()
    s.accounts[0].amocrm.account_id = 1
    resp = create_app(s, r).test_client().post(AMO, data=load.amocrm("lead_added"), content_type=FORM)
    assert resp.status_code == 403 and "30739638" in resp.json["error"]


def test_redis_down_is_503_so_the_sender_retries(settings):
    from app import create_app

    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    client = create_app(settings, dead).test_client()
    resp = client.post(AMO, data=load.amocrm("lead_added"), content_type=FORM)
    assert resp.status_code == 503
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_parser_crash_is_400_and_body_kept(client, r, monkeypatch):
    from app.amocrm import parser

    def boom(body, account, full=True):
        raise KeyError("bug")

    monkeypatch.setattr(parser, "parse", boom)
    resp = client.post(AMO, data=load.amocrm("lead_added"), content_type=FORM)
    assert resp.status_code == 400
    assert r.xrange(keys.rejected("acme"))[0][1][b"code"] == b"parser_error"


def test_readyz_needs_a_worker(client, r):
    assert client.get("/readyz").status_code == 503
    from rq import Worker

    w = Worker([Queue(EVENTS, connection=r)], connection=r)
    w.register_birth()
    try:
        assert client.get("/readyz").status_code == 200
    finally:
        w.register_death()


def test_metrics_count_by_source_kind_and_outcome(client, r):
    client.post(AMO, data=load.amocrm("lead_added"), content_type=FORM)
    client.post(AMO, data=load.amocrm("lead_added"), content_type=FORM)
    client.post(AMO, data=b"junk", content_type=FORM)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'reglament_webhooks_total{account="acme",kind="lead.added",outcome="accepted",source="amocrm"} 1.0' in text
    assert 'reglament_webhooks_total{account="acme",kind="lead.added",outcome="duplicate",source="amocrm"} 1.0' in text
    assert 'reglament_webhook_rejections_total{account="acme",reason="malformed",source="amocrm"} 1.0' in text
    assert 'reglament_queue_depth{queue="events"} 0.0' in text
