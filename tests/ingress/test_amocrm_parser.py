"""Each amoCRM fixture parsed and checked field by field."""

import pytest

from app.amocrm import parser
from app.errors import Rejected
from tests.fixtures import load

# fixture → [(kind, entity_id, {field: expected value})], one tuple per entity, in body order
EXPECTED = {
    "lead_added": [("lead.added", 1190401, {
        "lead_id": 1190401, "name": "AASDASD", "stage": "53861254", "pipeline": "6254262", "closed": None,
        "responsible_id": 9040358, "created_at": 1672189247, "at": 1672189247, "values": {}, "tags": []})],
    "lead_added_digital_pipeline": [("lead.added", 1190402, {
        "stage": "53861254", "pipeline": "6254262", "name": "", "responsible_id": None, "created_at": None})],
    "lead_updated": [("lead.updated", 5685933, {
        "name": "Альфия Ханитова", "stage": "43315792", "responsible_id": 3493057, "pipeline": "4740529",
        "created_at": 1635022800, "at": 1635139016,
        "values": {"Услуги": "1234", "ID записи, Yclients": "339030120", "Тип": "Пробное",
                   "Дата перезвона": "1541980800"},
        "tags": ["взято"]})],
    "lead_status_changed": [("lead.status_changed", 23802129, {
        "lead_id": 23802129, "stage": "47873533", "pipeline": "5389528", "closed": None})],
    "lead_status_changed_full": [("lead.status_changed", 11111111, {
        "name": "test", "stage": "143", "closed": "lost", "responsible_id": 33333333, "pipeline": "44444444",
        "at": 1700000100, "created_at": 1699990000})],
    "lead_responsible_changed": [("lead.responsible_changed", 31926520, {
        "responsible_id": 938348, "previous_responsible_id": 102525, "stage": "10216994",
        "pipeline": "2116", "at": 1456822527, "created_at": 1456808154,
        "values": {"Some text field": "some text"}})],
    "lead_deleted": [("lead.deleted", 5685933, {"stage": "43315792", "pipeline": "4740529"})],
    "lead_restored": [("lead.restored", 5685933, {"stage": "43315792", "responsible_id": 3493057,
                                                 "at": 1635200000})],
    "note_added_common": [("comment.added", 213313359, {
        "lead_id": 22060555, "text": "Количество этажей: 2", "by": 1608151, "at": 1601242011})],
    "note_added_call_in": [("call.ended", 213313360, {
        "call_id": "a1b2c3", "direction": "in", "outcome": None, "duration": 0,
        "phone": "+79990001122", "lead_id": 22060555, "ref": "call_in:22060555:213313360:6"})],
    "note_added_call_out_flat": [("call.ended", 213313361, {
        "call_id": "d4e5f6", "direction": "out", "outcome": None, "duration": 95, "phone": "+79990001122",
        "lead_id": 22060555, "ref": "call_out:22060555:213313361:"})],
    "task_added": [("task.added", 48823307, {
        "task_id": 48823307, "lead_id": 22060555, "task_type": "1", "text": "Перезвонить клиенту",
        "completed": False, "due": 1601251200, "responsible_id": 1608151, "created_at": 1601242011,
        "result": None})],
    "task_updated_completed": [("task.updated", 48823307, {
        "completed": True, "result": "Не дозвонился", "due": 1601251200, "at": 1601250000})],
    "task_deleted": [("task.deleted", 48823307, {"task_id": 48823307, "lead_id": 22060555})],
    "tasks_plural_added": [("task.added", 48823308, {
        "lead_id": None, "task_type": "2", "due": 1601337600, "text": "Встреча в офисе", "completed": False})],
    "contact_added": [("contact.added", 10971463, {
        "contact_id": 10971463, "name": "Иван Петров", "responsible_id": 9040358, "at": 1672189300})],
    "contact_updated": [("contact.updated", 10971463, {"at": 1672190000})],
    "message_incoming": [("crm.other", "d3bac6d3-1b5e-40c2-a054-4e0cfe283edb", {
        "chat_id": "54caee02-e383-46d8-a9b7-1fb43f07cffe", "text": "f", "at": 1695486610, "lead_id": 28455849})],
    "multi_section": [
        ("lead.status_changed", 23802129, {"stage": "47873533"}),
        ("lead.status_changed", 23802130, {"stage": "142", "closed": "won"}),
        ("lead.updated", 23802129, {"at": 1700000200}),
        ("task.added", 48823400, {"text": "Дозвониться", "lead_id": 23802129}),
    ],
    "unknown_section": [],
}


def test_every_fixture_has_expectations():
    assert set(load.names("amocrm")) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_field_by_field(name):
    parsed = parser.parse(load.amocrm(name), "acme")
    got = [(e.kind, e.entity_id) for e in parsed.events]
    assert got == [(kind, entity_id) for kind, entity_id, _ in EXPECTED[name]]
    for event, (_, _, fields) in zip(parsed.events, EXPECTED[name]):
        assert event.account == "acme" and event.source == "amocrm"
        for key, value in fields.items():
            assert event.fields.get(key) == value, f"{name}: {key}"
        assert len(event.key) == 20


def test_account_section_is_read():
    parsed = parser.parse(load.amocrm("lead_status_changed"), "acme")
    assert (parsed.account_id, parsed.subdomain) == (29013640, "drvorobjev")


def test_unknown_section_is_listed_as_ignored():
    assert parser.parse(load.amocrm("unknown_section"), "acme").ignored == ["companies.add"]


def test_same_body_gives_same_keys_and_a_change_gives_another():
    a = parser.parse(load.amocrm("lead_updated"), "acme").events[0]
    b = parser.parse(load.amocrm("lead_updated"), "acme").events[0]
    changed = load.amocrm("lead_updated").replace(b"1635139016", b"1635139999")
    c = parser.parse(changed, "acme").events[0]
    assert a.key == b.key != c.key


def test_entities_of_one_body_have_distinct_keys():
    events = parser.parse(load.amocrm("multi_section"), "acme").events
    assert len({e.key for e in events}) == len(events)


@pytest.mark.parametrize("body, reason", [
    (b"", "no account"),
    (b"leads[status][0][id]=1", "no account"),
    (b"account[id]=1", "no entities"),
    (b"account[id]=1&leads[status][0][status_id]=5", "no valid id"),
    (b"account[id]=1&leads[status][0][id]=abc", "no valid id"),
    (b"account[id]=1&leads=3", "plain value"),
    (b"account[id]=1&leads[status]=3", "no entities"),
    (b"account[id]=1&leads[status][0]=3", "plain value"),
    (b"account[id]=1&[x]=1", "no name"),
    (b"account[id]=1&leads[status][0][id]=1&leads[status][0][id][x]=2", "conflicts"),
    (b"\xff\xfe", "not UTF-8"),
    (b"account[id]=1&a[b=1", "well-formed"),
])
def test_malformed_bodies_are_rejected_with_a_reason(body, reason):
    with pytest.raises(Rejected) as e:
        parser.parse(body, "acme")
    assert reason in e.value.reason and e.value.status == 400
