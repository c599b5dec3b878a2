"""Each Wazzup fixture parsed and checked field by field."""

import json

import pytest

from app.errors import Rejected
from app.wazzup import parser
from tests.fixtures import load

EXPECTED = {
    "message_incoming": [("chat.message_in", "3a3c2c1e-5b7a-4d2f-9d64-0b3c0f9b1a11", {
        "channel_id": "e0629e11-0f67-4567-92a9-2237e91ec1b9", "chat_type": "whatsapp", "chat_id": "79011112233",
        "type": "text", "is_echo": False, "status": "inbound", "text": "Добрый день, сколько стоит доставка?",
        "date_time": "2026-11-20T09:15:42.123Z", "sent_from_app": False, "is_edited": False, "is_deleted": False,
        "contact": {"name": "Иван", "phone": "79011112233", "username": None}})],
    "message_echo_from_phone": [("chat.message_out", "7b1d0f3e-2c44-4a0b-8a61-5d2e9c7f0a22", {
        "is_echo": True, "status": "sent", "sent_from_app": True, "chat_id": "79011112233"})],
    "message_echo_api": [("chat.message_out", "c9f8e7d6-1111-4abc-9def-000000000001", {
        "is_echo": True, "author_id": "reglament", "author_name": "Reglament", "sent_from_app": False})],
    "image_incoming": [("chat.message_in", "0f0e0d0c-aaaa-4bbb-8ccc-123456789abc", {
        "type": "image", "text": None, "content_uri": "https://store.wazzup24.com/file.jpg",
        "contact": {"name": "Мария", "phone": "79022223344", "username": None}})],
    "statuses_delivered": [("chat.status", "c9f8e7d6-1111-4abc-9def-000000000001", {
        "status": "delivered", "timestamp": "2026-11-20T09:20:01.000Z"})],
    "statuses_error": [("chat.status", "c9f8e7d6-1111-4abc-9def-000000000002", {
        "status": "error", "error": {"code": "24_HOURS_EXCEEDED", "description": "The 24-hour window has passed"}})],
    "messages_and_statuses": [
        ("chat.message_in", "5e5e5e5e-0000-4000-8000-000000000005", {"chat_id": "79033334455"}),
        ("chat.status", "c9f8e7d6-1111-4abc-9def-000000000001", {"status": "read"}),
    ],
    "test_probe": [],
    "channels_update": [],
}


def test_every_fixture_has_expectations():
    assert set(load.names("wazzup")) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_field_by_field(name):
    parsed = parser.parse(load.wazzup(name), "acme")
    assert [(e.kind, e.entity_id) for e in parsed.events] == [(k, i) for k, i, _ in EXPECTED[name]]
    for event, (_, _, fields) in zip(parsed.events, EXPECTED[name]):
        assert event.source == "wazzup" and event.account == "acme"
        for key, value in fields.items():
            assert event.fields.get(key) == value, f"{name}: {key}"


def test_probe_and_ignored_keys():
    assert parser.parse(load.wazzup("test_probe"), "acme").probe is True
    assert parser.parse(load.wazzup("channels_update"), "acme").ignored == ["channelsUpdates"]


def test_status_error_code_may_be_under_code():
    body = json.dumps({"statuses": [{"messageId": "m1", "status": "error", "error": {"code": "X", "description": "d"}}]})
    assert parser.parse(body.encode(), "acme").events[0].fields["error"] == {"code": "X", "description": "d"}


def test_an_edit_of_the_same_message_is_a_new_event():
    original = json.loads(load.wazzup("message_incoming"))
    edited = json.loads(load.wazzup("message_incoming"))
    edited["messages"][0]["isEdited"] = True
    a = parser.parse(json.dumps(original).encode(), "acme").events[0]
    b = parser.parse(json.dumps(edited).encode(), "acme").events[0]
    assert a.key != b.key


@pytest.mark.parametrize("body, reason", [
    (b"", "not JSON"),
    (b"{", "not JSON"),
    (b"[]", "JSON object"),
    (b"{}", "none of messages"),
    (b'{"messages": {}}', "must be a list"),
    (b'{"messages": [1]}', "must be an object"),
    (b'{"messages": [{"chatId": "1"}]}', "messageId"),
    (b'{"messages": [{"messageId": "m"}]}', "chatId"),
    (b'{"statuses": [{"messageId": "m"}]}', "status"),
])
def test_malformed_bodies_are_rejected_with_a_reason(body, reason):
    with pytest.raises(Rejected) as e:
        parser.parse(body, "acme")
    assert reason in e.value.reason
