"""Rule settings: defaults from REGULATIONS.md / seed 003, validation, the init YAML."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from reglament.rule_settings import ImportantMarker, RuleSettings, defaults_yaml, load, parse_step


def test_defaults_follow_the_regulations():
    s = RuleSettings()
    table = {name: (t.task, t.due.kind, t.important) for name, t in s.statuses.items()}
    assert table == {
        "Недозвон": ("Дозвониться", "cadence", False),
        "Просил перезвонить": ("Перезвон", "field", True),
        "Записался на пробное": ("Напомнить", "before_field", False),
        "Не пришел на пробное": ("Записать", "days", False),
        "Пришел на пробное": ("Продать", "days", False),
        "Принимает решение": ("Продать", "days", False),
        "Клиент": ("Продление", "before_field", False),
        "Новая заявка": ("Связаться: первый контакт", "first_contact", False),
        "Инкубатор": ("Презент", "after", False),
    }
    assert s.default_task.task == "Договориться о следующем шаге"  # every active status has a next step
    assert s.redial.cadence == ["1h", "3h", "1d", "7d", "3h", "30d", "3h"]
    assert (s.redial.task, s.redial.final_status, s.redial.loss_reason, s.redial.max_failures) == \
        ("Дозвониться", "Отказ", "Не дозвонились 7 раз", 7)
    assert s.terminal_statuses == ["Отказ", "Расторгнут договор", "Завершил"] and s.crm_closed_is_terminal
    assert s.notes is True
    assert (s.important.task_type, s.important.prefix) == ("Важный звонок", "❗ ВАЖНО: ")


@pytest.mark.parametrize("indent", [0, 2])
def test_init_yaml_is_the_defaults(indent):
    text = defaults_yaml(indent)
    assert text.lstrip().startswith("#")
    data = yaml.safe_load("a:\n  b:\n" + text if indent == 2 else text)
    data = data["a"]["b"] if indent == 2 else data
    assert load(data) == RuleSettings()
    assert "Просил перезвонить:" in text and "due: {kind: field, field: callback_at}" in text


def test_missing_keys_take_defaults():
    assert load(None) == RuleSettings()
    s = load({"redial": {"cadence": ["30m", "1h", "1wd", "2d", "1h", "5d"]}})
    assert s.redial.cadence[0] == "30m" and s.redial.task == "Дозвониться"


@pytest.mark.parametrize("data, message", [
    ({"notez": True}, "Extra inputs"),
    ({"redial": {"cadence": ["1h", "2x"]}}, "not a step"),
    ({"redial": {"cadence": ["1h", "3h"]}}, "at least max_failures - 1"),
    ({"redial": {"same_attempt_within": "1wd"}}, "working days"),
    ({"redial": {"final_status": "Инкубатор"}}, "must be one of terminal_statuses"),
    ({"redial": {"attempt_format": "N"}}, "must contain"),
    ({"statuses": {"Отказ": {"task": "Позвонить", "due": {"kind": "days", "days": 1}}}}, "is terminal"),
    ({"statuses": {"Клиент": {"task": "Продление", "due": {"kind": "cadence"}}}}, "only redial.status"),
    ({"statuses": {"Недозвон": {"task": "Позвонить", "due": {"kind": "cadence"}}}}, "differs from redial.task"),
    ({"statuses": {"Клиент": {"task": "Продление", "due": {"kind": "weeks"}}}}, "does not match any of the"),
    ({"statuses": {"Клиент": {"task": "Продление", "due": {"kind": "days", "days": 1, "at": "25:00"}}}},
     "not a time"),
    ({"statuses": {"Клиент": {"task": "", "due": {"kind": "days", "days": 1}}}}, "at least 1 character"),
    ({"statuses": {"Клиент": {"task": "a", "due": {"kind": "days", "days": 1}},
                   "клиент": {"task": "b", "due": {"kind": "days", "days": 1}}}}, "same status"),
    ({"note_texts": {"next_task": "создана {task} для {client}"}}, "unknown placeholder"),
    ({"fallback_due": {"kind": "field", "field": "callback_at"}}, "does not match any of the"),
])
def test_invalid_settings(data, message):
    with pytest.raises(ValidationError, match=message):
        load(data)


@pytest.mark.parametrize("step, parsed", [("30m", (30, "m")), ("3h", (3, "h")), ("1d", (1, "d")),
                                          ("2wd", (2, "wd")), (" 7d ", (7, "d"))])
def test_parse_step(step, parsed):
    assert parse_step(step) == parsed


@pytest.mark.parametrize("marker, available, expected", [
    pytest.param(ImportantMarker(), ["Звонок", "Важный звонок"], ("Перезвон", "Важный звонок"), id="type-exists"),
    pytest.param(ImportantMarker(), ["Звонок", "важный  звонок"], ("Перезвон", "Важный звонок"), id="type-loose"),
    pytest.param(ImportantMarker(), ["Звонок", "Встреча"], ("❗ ВАЖНО: Перезвон", "Звонок"), id="no-type-prefix"),
    pytest.param(ImportantMarker(task_type=None), ["Важный звонок"], ("❗ ВАЖНО: Перезвон", "Звонок"),
                 id="type-off-prefix"),
])
def test_important_marker(marker, available, expected):
    assert marker.render("Перезвон", "Звонок", available) == expected


def test_important_prefix_not_doubled():
    marker = ImportantMarker()
    assert marker.render("❗ ВАЖНО: Перезвон", "Звонок", []) == ("❗ ВАЖНО: Перезвон", "Звонок")
    assert marker.strip("❗ ВАЖНО: Перезвон") == "Перезвон"
