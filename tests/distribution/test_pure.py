"""The pure parts: schedules and absences, weights, the Lua turn, sources and deadlines, priorities."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from jobs.rules import distribution as dist
from jobs.rules import first_contact as fc
from reglament.names import norm
from reglament.distribution_settings import DistributionSettings, Manager, parse_spans
from reglament import keys, shifts
from reglament.calendar import WorkCalendar
from reglament.crm import Call, CallDirection, CallStatus, Touch

MSK = ZoneInfo("Europe/Moscow")
OFFICE = WorkCalendar("Europe/Moscow", {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")})


def msk(*a) -> datetime:
    return datetime(*a, tzinfo=MSK)


# 2025-03-03 is a Monday.
@pytest.mark.parametrize("shifts_cfg, at, on", [
    ({"mon": "09:00-18:00"}, msk(2025, 3, 3, 9, 0), True),
    ({"mon": "09:00-18:00"}, msk(2025, 3, 3, 18, 0), False),          # the end is exclusive
    ({"mon": "09:00-18:00"}, msk(2025, 3, 3, 8, 59), False),
    ({"mon": "09:00-18:00"}, msk(2025, 3, 4, 10, 0), False),          # Tuesday is off
    ({"mon": "09:00-13:00, 14:00-18:00"}, msk(2025, 3, 3, 13, 30), False),
    ({"mon": "09:00-13:00, 14:00-18:00"}, msk(2025, 3, 3, 14, 30), True),
    ({"sun": "20:00-08:00"}, msk(2025, 3, 3, 7, 59), True),           # Sunday's night shift into Monday
    ({"sun": "20:00-08:00"}, msk(2025, 3, 3, 8, 0), False),
    ({"mon": "20:00-08:00"}, msk(2025, 3, 3, 7, 0), False),           # Monday's shift starts in the evening
    ({"mon": "00:00-24:00"}, msk(2025, 3, 3, 23, 59), True),
    ({"mon": None}, msk(2025, 3, 3, 12, 0), False),
])
def test_schedule(shifts_cfg, at, on):
    assert shifts.Schedule.from_config("Europe/Moscow", shifts_cfg).on_shift(at) is on


def test_shift_start_of_an_overnight_shift():
    s = shifts.Schedule.from_config("Europe/Moscow", {"sun": "20:00-08:00"})
    assert s.shift_start(msk(2025, 3, 3, 3, 0)) == msk(2025, 3, 2, 20, 0)
    assert s.shift_start(msk(2025, 3, 3, 9, 0)) is None


def test_bad_spans_are_refused():
    for bad in ("9-18", "09:00-25:00", "24:30-01:00"):
        with pytest.raises(ValueError):
            parse_spans(bad)
    with pytest.raises(ValueError):
        Manager(name="A", shifts={"monday": "09:00-18:00"})
    with pytest.raises(ValueError):
        DistributionSettings(managers=[Manager(name="Анна"), Manager(name="анна ")])


@pytest.mark.parametrize("at, expected", [
    (msk(2025, 3, 3, 9, 30), ["Анна"]),                    # Борис absent until 12:30, Вера from 10:00
    (msk(2025, 3, 3, 12, 0), ["Анна", "Вера"]),
    (msk(2025, 3, 3, 12, 30), ["Анна", "Борис", "Вера"]),  # back
    (msk(2025, 3, 3, 19, 0), ["Вера"]),                    # only Вера works evenings
    (msk(2025, 3, 8, 12, 0), ["Вера"]),                    # Saturday: the office calendar is closed
    (msk(2025, 3, 4, 3, 0), []),
])
def test_on_duty(at, expected):
    managers = [Manager(name="Анна"), Manager(name="Борис", shifts={"mon": "09:00-18:00"}),
                Manager(name="Вера", shifts={d: "10:00-22:00" for d in ("mon", "sat")})]
    absent = {norm("борис"): shifts.Absence(msk(2025, 3, 3, 8, 0), msk(2025, 3, 3, 12, 30))}
    assert [m.name for m in dist.on_duty(managers, OFFICE, absent, at)] == expected


def test_smooth_weights_interleave():
    current: dict = {}
    picks = [shifts.smooth_wrr([("A", 2), ("B", 1), ("C", 1)], current) for _ in range(8)]
    assert Counter(picks) == {"A": 4, "B": 2, "C": 2}
    assert picks[:4] == ["A", "B", "C", "A"]  # never two of A's leads in a row while others wait


def test_lua_turn_matches_python_and_records_the_pick(r):
    weights = [(11, 3), (12, 1), (13, 2)]
    current: dict = {}
    expected = [shifts.smooth_wrr(weights, current) for _ in range(12)]
    got = [shifts.take_turn(r, "t", lead, weights, None) for lead in range(12)]
    assert got == expected
    assert Counter(got) == {11: 6, 13: 4, 12: 2}
    # A retried job for lead 5 gets the same manager and does not advance the turn.
    assert shifts.take_turn(r, "t", 5, weights, None) == got[5]
    assert shifts.take_turn(r, "t", 100, weights, None) == shifts.smooth_wrr(weights, current)


def test_lua_turn_fallback(r):
    assert shifts.take_turn(r, "t", 1, [], 99) == 99
    assert shifts.take_turn(r, "t", 2, [], None) is None
    assert shifts.take_turn(r, "t", 1, [(5, 1)], None) == 99  # recorded


@pytest.mark.parametrize("at, away", [
    (msk(2025, 3, 10, 8, 59), False),   # before the start: still gets leads
    (msk(2025, 3, 10, 9, 0), True),     # the start is inclusive
    (msk(2025, 3, 12, 15, 0), True),
    (msk(2025, 3, 17, 9, 0), False),    # the end is exclusive
])
def test_is_absent_within_start_and_end(at, away):
    absent = {"борис иванов": shifts.Absence(msk(2025, 3, 10, 9, 0), msk(2025, 3, 17, 9, 0))}
    assert shifts.is_absent(absent, "Борис Иванов", at) is away
    assert not shifts.is_absent(absent, "Анна", at)


def test_absences_in_redis(r):
    shifts.set_absent(r, "t", "Борис  Иванов", msk(2025, 3, 5, 18, 0))
    a = shifts.absences(r, "t")
    assert shifts.is_absent(a, "борис иванов", msk(2025, 3, 5, 17, 0))
    assert not shifts.is_absent(a, "Борис Иванов", msk(2025, 3, 5, 18, 0))
    # Setting again replaces it: one absence per manager.
    shifts.set_absent(r, "t", "Борис Иванов", msk(2025, 3, 12, 18, 0), msk(2025, 3, 10, 9, 0))
    a = shifts.absences(r, "t")
    assert a == {"борис иванов": shifts.Absence(msk(2025, 3, 10, 9, 0), msk(2025, 3, 12, 18, 0))}
    assert not shifts.is_absent(a, "Борис Иванов", msk(2025, 3, 5, 17, 0))
    assert shifts.clear_absent(r, "t", "Борис Иванов") and shifts.absences(r, "t") == {}


def test_absence_stored_as_a_bare_end_time_is_still_read(r):
    # As written before absences had a start: a bare end time.
    r.hset(keys.key("t", "dist", "absent"), "вера", msk(2025, 3, 5, 18, 0).timestamp())
    a = shifts.absences(r, "t")
    assert a["вера"].end == msk(2025, 3, 5, 18, 0) and a["вера"].start == shifts.EPOCH
    assert shifts.is_absent(a, "Вера", msk(2025, 3, 5, 17, 59))
    assert not shifts.is_absent(a, "Вера", msk(2025, 3, 5, 18, 0))


@pytest.mark.parametrize("pick, current, original, manual, outcome", [
    (2, 1, 1, False, "assigned"),
    (2, 2, 1, False, "already assigned"),
    (2, 3, 1, False, "the responsible was changed after the lead arrived"),
    (2, 1, 1, True, "the responsible was changed by a person"),
    (None, 1, 1, False, "nobody on shift and no fallback user"),
])
def test_assignment_decision(pick, current, original, manual, outcome):
    d = dist.decide(7, pick, current, original, manual)
    assert d.why == outcome
    assert (d.action is not None) == (outcome == "assigned")
    if d.action:
        assert d.action.user_id == pick and d.action.action_key == "DISTRIBUTION:7:assign"


S = DistributionSettings()


@pytest.mark.parametrize("candidates, label, minutes", [
    (["Яндекс.Директ", None, "Продажи"], "Реклама", 15),
    ([None, "YANDEX", "Продажи"], "Реклама", 15),
    (["tilda", "google", "Продажи"], "Сайт", 60),       # the source field wins over utm
    (["Сарафан", None, "Продажи"], "Сарафан", 240),
    ([None, None, None], "—", 240),
])
def test_sources(candidates, label, minutes):
    got, source = fc.resolve_source(candidates, S)
    assert got == label and fc.sla_minutes(source, S) == minutes


@pytest.mark.parametrize("arrived, minutes, due", [
    (msk(2025, 3, 3, 10, 0), 240, msk(2025, 3, 3, 14, 0)),
    (msk(2025, 3, 3, 16, 0), 240, msk(2025, 3, 4, 11, 0)),   # the rest goes to the next morning
    (msk(2025, 3, 8, 23, 40), 240, msk(2025, 3, 10, 13, 0)),  # Saturday night → Monday 09:00 + 4h
    (msk(2025, 3, 7, 17, 50), 15, msk(2025, 3, 10, 9, 5)),    # Friday evening ad lead
])
def test_deadline_on_the_calendar(arrived, minutes, due):
    assert fc.deadline(arrived, minutes, OFFICE) == due


def test_escalation_on_the_calendar():
    assert fc.escalation_at(msk(2025, 3, 3, 17, 30), S, OFFICE) == msk(2025, 3, 4, 9, 30)
    assert fc.escalation_at(msk(2025, 3, 3, 17, 30), S.model_copy(update={"escalation_after": None}), OFFICE) is None


@pytest.mark.parametrize("stage, contacted, now_min, active, outcome", [
    (1, False, -1, True, "early"),
    (1, False, 0, True, "alert"),
    (2, False, 5, True, "escalate"),
    (1, True, 5, True, "contacted"),
    (1, False, 5, False, "gone"),
])
def test_timer_decision(stage, contacted, now_min, active, outcome):
    due = msk(2025, 3, 3, 12, 0)
    assert fc.on_timer(stage, contacted, due + timedelta(minutes=now_min), due, active).outcome == outcome


def _call(direction, status, duration):
    return Call(id="c1", direction=direction, status=status, at=datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc),
                duration=duration)


AT = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("touch, contact", [
    (Touch(kind="comment", at=AT, by=9100001), True),
    (Touch(kind="comment", at=AT, by=9100004), False),   # the integration's own note
    (Touch(kind="comment", at=AT, by=0), False),         # a robot
    (Touch(kind="message", at=AT, by=9100001), True),    # an SMS sent by a person
    (Touch(kind="call", at=AT, by=9100004, call=_call(CallDirection.OUT, CallStatus.NOT_REACHED, 0)), False),
    (Touch(kind="call", at=AT, by=9100004, call=_call(CallDirection.OUT, CallStatus.TALKED, 0)), False),  # 0 s
    (Touch(kind="call", at=AT, by=9100004, call=_call(CallDirection.OUT, CallStatus.TALKED, 40)), True),
    (Touch(kind="call", at=AT, by=0, call=_call(CallDirection.IN, CallStatus.TALKED, 30)), True),
    (Touch(kind="call", at=AT, by=0, call=_call(CallDirection.IN, CallStatus.NOT_REACHED, 0)), False),
    (Touch(kind="call", at=AT, by=0, call=None), False),
])
def test_what_counts_as_contact(touch, contact):
    assert fc.touch_is_contact(touch, S, 9100004) is contact


def test_a_failed_call_followed_by_our_message_is_contact():
    failed = Touch(kind="call", at=AT, call=_call(CallDirection.OUT, CallStatus.BUSY, 0))
    assert not fc.touch_is_contact(failed, S, None)
    assert fc.touch_is_contact(failed, S, None, messaged_after_failure=True)


def test_contact_kinds_setting_narrows_what_counts():
    s = S.model_copy(update={"contact_kinds": ["outgoing_call"]})
    assert not fc.touch_is_contact(Touch(kind="comment", at=AT, by=9100001), s, 9100004)
    assert fc.touch_is_contact(Touch(kind="call", at=AT, call=_call(CallDirection.OUT, CallStatus.TALKED, 9)), s, None)


def test_queue_order():
    t0 = datetime(2025, 3, 3, 6, 0, tzinfo=timezone.utc)
    item = lambda i, mins, prio, new: fc.QueueItem(lead_id=i, name=str(i), arrived=t0 + timedelta(minutes=mins),  # noqa: E731
                                                   source="", priority=prio, is_new=new, responsible_id=1)
    items = [item(1, 0, 100, True), item(2, 30, 10, True), item(3, 10, 10, True), item(4, -60, 10, False),
             item(5, 5, 20, True)]
    assert [i.lead_id for i in fc.order_queue(items, S)] == [3, 2, 5, 1, 4]
    newest = S.model_copy(update={"oldest_first": False, "new_first": False})
    assert [i.lead_id for i in fc.order_queue(items, newest)] == [2, 3, 4, 5, 1]


def test_percentiles():
    assert fc.percentile([], 50) is None
    assert fc.percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 50) == 55
    assert fc.percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 90) == pytest.approx(91)
    assert fc.stats({7: [60, 120, 600]}) == {7: {"count": 3, "median": 120, "p90": pytest.approx(504)}}
