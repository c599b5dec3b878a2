"""Telephony providers' own webhooks: signature checks, parsing, one job per finished call."""

import hashlib
from urllib.parse import urlencode

import pytest

from app import create_app
from app.telephony import mango, zadarma
from reglament import keys
from tests.conftest import MANGO_SALT, SECRET, ZADARMA_SECRET, make_settings
from tests.jobs_helpers import dispatch_all, queued_events
from tests.fixtures import load

FORM = "application/x-www-form-urlencoded"


def zadarma_post(client, name, signature=None):
    fields = load.telephony_fields(name)
    sig = signature if signature is not None else (
        zadarma.signature(fields, ZADARMA_SECRET) if fields["event"] in zadarma.SIGNED else "")
    return client.post(f"/hooks/telephony/zadarma/{SECRET}", data=urlencode(fields), content_type=FORM,
                       headers={"Signature": sig})


def mango_body(name, salt=MANGO_SALT):
    fields = load.telephony_fields(name)
    fields["sign"] = hashlib.sha256((fields["vpbx_api_key"] + fields["json"] + salt).encode()).hexdigest()
    return urlencode(fields)


@pytest.mark.parametrize("name, kind, fields", [
    ("zadarma_notify_end_missed", "call.ended", {
        "call_id": "in_6a2b90c1f1e2d3", "direction": "in", "outcome": "not_reached", "phone": "79011112233",
        "our_number": "74951234567", "extension": "100", "duration": 0, "result": "cancel",
        "at": "2026-11-20 12:15:42", "lead_id": None}),
    ("zadarma_notify_end_answered", "call.ended", {
        "direction": "in", "outcome": "talked", "duration": 95, "extension": "101", "result": "answered"}),
    ("zadarma_notify_out_end_busy", "call.ended", {
        "direction": "out", "outcome": "busy", "phone": "79022223344", "our_number": "74951234567", "extension": "102",
        "result": "busy"}),
])
def test_zadarma_end_events_field_by_field(name, kind, fields):
    body = urlencode(load.telephony_fields(name)).encode()
    [event] = zadarma.parse(body, "acme").events
    assert event.kind == kind and event.source == "telephony.zadarma"
    for k, v in fields.items():
        assert event.fields[k] == v, k


@pytest.mark.parametrize("name, kind, fields", [
    ("mango_summary_missed", "call.ended", {
        "call_id": "MToxMDA1MjM0NjoxMDE6MjQ5Njg1NjQw", "phone": "79011112233", "our_number": "74951234567",
        "extension": "101", "at": 1763630000, "direction": "in", "outcome": "not_reached", "duration": 0, "result": "1110"}),
    ("mango_summary_outgoing_talked", "call.ended", {
        "phone": "79022223344", "extension": "102", "duration": 120, "direction": "out", "outcome": "talked"}),
])
def test_mango_summary_field_by_field(name, kind, fields):
    [event] = mango.parse(mango_body(name).encode(), "acme").events
    assert event.kind == kind
    for k, v in fields.items():
        assert event.fields[k] == v, k


def test_signed_zadarma_missed_call_becomes_one_job_even_when_posted_twice(client, r):
    for _ in range(2):
        assert zadarma_post(client, "zadarma_notify_end_missed").status_code == 200
    dispatch_all(r, ["acme"])
    [event] = queued_events(r)
    assert event["kind"] == "call.ended" and event["fields"]["outcome"] == "not_reached"
    assert event["fields"]["phone"] == "79011112233"  # the dispatcher parsed the stored body


def test_zadarma_bad_or_missing_signature_is_403_and_kept(client, r):
    assert zadarma_post(client, "zadarma_notify_end_missed", signature="Zm9v").status_code == 403
    assert zadarma_post(client, "zadarma_notify_out_end_busy", signature="").status_code == 403
    assert [e[1][b"code"] for e in r.xrange(keys.rejected("acme"))] == [b"bad_signature"] * 2
    assert r.xlen(keys.inbox("acme")) == 0


def test_zadarma_start_is_acknowledged_and_ignored(client, r):
    resp = zadarma_post(client, "zadarma_notify_start")
    assert resp.status_code == 200 and resp.json["ignored"] == ["NOTIFY_START"]


def test_zadarma_echo_check(client):
    assert client.get(f"/hooks/telephony/zadarma/{SECRET}?zd_echo=abc").get_data(as_text=True) == "abc"
    assert client.get("/hooks/telephony/zadarma/wrong?zd_echo=abc").status_code == 404


def test_mango_signed_summary_is_accepted_on_the_events_subpath(client):
    for path in ("", "/events/summary"):
        resp = client.post(f"/hooks/telephony/mango/{SECRET}{path}", data=mango_body("mango_summary_missed"),
                           content_type=FORM)
        assert resp.status_code == 200
    assert resp.json["duplicates"] == 1


def test_mango_wrong_salt_is_403(client):
    resp = client.post(f"/hooks/telephony/mango/{SECRET}", data=mango_body("mango_summary_missed", salt="x"),
                       content_type=FORM)
    assert resp.status_code == 403


def test_mango_call_state_events_are_ignored(client):
    resp = client.post(f"/hooks/telephony/mango/{SECRET}/events/call", data=mango_body("mango_call_connected"),
                       content_type=FORM)
    assert resp.status_code == 200 and resp.json["ignored"] == ["mango.call"]


def test_provider_not_configured_is_404(r):
    s = make_settings()
    s.accounts[0].telephony = None
    c = create_app(s, r).test_client()
    resp = c.post(f"/hooks/telephony/zadarma/{SECRET}", data=urlencode(load.telephony_fields("zadarma_notify_end_missed")),
                  content_type=FORM)
    assert resp.status_code == 404 and "not configured" in resp.json["error"]
