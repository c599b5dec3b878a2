"""Each amoCRM fixture parsed and checked field by field."""

import pytest

from app.amocrm import parser
from app.errors import Rejected
from tests.fixtures import load

# fixture → [(kind, entity_id, {field: expected value})], one tuple per entity, in body order
EXPECTED = {
    "lead_added": [("lead.added", 1190401, {
        "name": "AASDASD", "status_id": 53861254, "pipeline_id": 6254262, "price": 34343,
        "responsible_user_id": 9040358, "created_user_id": 9040358, "created_at": 1672189247,
        "updated_at": 1672189247, "account_id": 30739638, "custom_fields": [], "tags": []})],
    "lead_added_digital_pipeline": [("lead.added", 1190402, {
        "status_id": 53861254, "pipeline_id": 6254262, "name": None, "responsible_user_id": None,
        "created_at": None})],
    "lead_updated": [("lead.updated", 5685933, {
        "name": "Альфия Ханитова", "status_id": 43315792, "old_status_id": 43315795, "price": 450,
        "responsible_user_id": 3493057, "pipeline_id": 4740529, "created_user_id": 0,
        "created_at": 1635022800, "updated_at": 1635139016,
        "custom_fields": [
            {"id": 629233, "name": "Услуги", "values": [{"value": "1234"}]},
            {"id": 629165, "name": "ID записи, Yclients", "values": [{"value": "339030120"}]},
            {"id": 66339, "name": "Тип", "values": [{"value": "Пробное", "enum": 139517}]},
            {"id": 70001, "name": "Дата перезвона", "values": [{"value": "1541980800"}]},
        ],
        "tags": [{"id": 6172, "name": "взято"}]})],
    "lead_status_changed": [("lead.status_changed", 23802129, {
        "status_id": 47873533, "old_status_id": 47888833, "pipeline_id": 5389528, "old_pipeline_id": 5389528})],
    "lead_status_changed_full": [("lead.status_changed", 11111111, {
        "name": "test", "status_id": 143, "old_status_id": 22222222, "price": 0,
        "responsible_user_id": 33333333, "pipeline_id": 44444444, "updated_at": 1700000100,
        "created_at": 1699990000})],
    "lead_responsible_changed": [("lead.responsible_changed", 31926520, {
        "responsible_user_id": 938348, "old_responsible_user_id": 102525, "status_id": 10216994,
        "pipeline_id": 2116, "updated_at": 1456822527, "created_at": 1456808154,
        "custom_fields": [{"id": 1119321, "name": "Some text field", "values": [{"value": "some text"}]}]})],
    "lead_deleted": [("lead.deleted", 5685933, {"status_id": 43315792, "pipeline_id": 4740529})],
    "lead_restored": [("lead.restored", 5685933, {"status_id": 43315792, "responsible_user_id": 3493057,
                                                 "updated_at": 1635200000})],
    "note_added_common": [("note.added", 213313359, {
        "note_type": "common", "parent_type": "lead", "parent_id": 22060555, "text": "Количество этажей: 2",
        "created_by": 1608151, "created_at": 1601242011, "date_create": "2020-09-28 00:26:51"})],
    "note_added_call_in": [("note.added", 213313360, {
        "note_type": "call_in", "parent_type": "lead", "parent_id": 22060555,
        "call": {"uniq": "a1b2c3", "duration": 0, "src": "my_pbx", "link": "", "phone": "+79990001122",
                 "call_status": 6}})],
    "note_added_call_out_flat": [("note.added", 213313361, {
        "note_type": "call_out", "parent_type": "lead", "parent_id": 22060555,
        "call": {"uniq": "d4e5f6", "duration": 95, "src": "my_pbx",
                 "link": "https://pbx.example/rec/d4e5f6.mp3", "phone": "+79990001122"}})],
    "task_added": [("task.added", 48823307, {
        "parent_type": "lead", "parent_id": 22060555, "task_type": 1, "text": "Перезвонить клиенту",
        "is_completed": False, "complete_till": 1601251200, "responsible_user_id": 1608151,
        "created_at": 1601242011, "result_text": None})],
    "task_updated_completed": [("task.updated", 48823307, {
        "is_completed": True, "result_text": "Не дозвонился", "complete_till": 1601251200,
        "updated_at": 1601250000})],
    "task_deleted": [("task.deleted", 48823307, {"parent_type": "lead", "parent_id": 22060555})],
    "tasks_plural_added": [("task.added", 48823308, {
        "parent_type": "contact", "parent_id": 22060556, "task_type": 2, "complete_till": 1601337600,
        "text": "Встреча в офисе", "is_completed": False})],
    "contact_added": [("contact.added", 10971463, {
        "name": "Иван Петров", "responsible_user_id": 9040358, "created_at": 1672189300,
        "custom_fields": [{"id": 264911, "name": "Телефон",
                           "values": [{"value": "+7 901 111-22-33", "enum": 482931}]}]})],
    "contact_updated": [("contact.updated", 10971463, {"updated_at": 1672190000})],
    "message_incoming": [("message.incoming", "d3bac6d3-1b5e-40c2-a054-4e0cfe283edb", {
        "chat_id": "54caee02-e383-46d8-a9b7-1fb43f07cffe", "talk_id": 100, "contact_id": 93589657,
        "text": "f", "created_at": 1695486610, "parent_type": "lead", "parent_id": 28455849,
        "type": "incoming", "origin": "onlinechat",
        "author": {"id": "1db2f5cc-aea4-4f96-8d4f-a256ead5b7b0", "type": "external", "name": "Oleg"}})],
    "multi_section": [
        ("lead.status_changed", 23802129, {"status_id": 47873533, "old_status_id": 47888833}),
        ("lead.status_changed", 23802130, {"status_id": 142, "old_status_id": 47873533}),
        ("lead.updated", 23802129, {"updated_at": 1700000200}),
        ("task.added", 48823400, {"text": "Дозвониться", "parent_id": 23802129}),
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
