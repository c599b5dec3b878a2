"""WorkCalendar as tables of cases. Dates are in 2025-2026; 2026-03-13 is a Friday."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from reglament.calendar import WorkCalendar

MSK = ZoneInfo("Europe/Moscow")
BER = ZoneInfo("Europe/Berlin")
WEEK = {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")} | {"sat": None, "sun": None}
ALWAYS = {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

RU = WorkCalendar("Europe/Moscow", WEEK, "RU")                     # Russian public holidays
PLAIN = WorkCalendar("Europe/Moscow", WEEK, None)                  # no public holidays
OWN_DAY_OFF = WorkCalendar("Europe/Moscow", WEEK, "RU", days_off=[date(2026, 3, 16)])
MSK_ALWAYS = WorkCalendar("Europe/Moscow", ALWAYS, None)
BER_WEEK = WorkCalendar("Europe/Berlin", WEEK, None)
BER_ALWAYS = WorkCalendar("Europe/Berlin", ALWAYS, None)
BER_NIGHT = WorkCalendar("Europe/Berlin", {"sun": "01:00-05:00"}, None)  # spans the spring-forward gap


def m(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=MSK)


def b(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=BER)


H = timedelta(hours=1)


@pytest.mark.parametrize("cal, start, delta, expected", [
    pytest.param(RU, m(2026, 3, 13, 17, 30), H, m(2026, 3, 16, 9, 30), id="fri-17:30+1h=mon-09:30"),
    pytest.param(RU, m(2026, 3, 6, 17, 30), H, m(2026, 3, 10, 9, 30), id="monday-public-holiday=tuesday"),
    pytest.param(PLAIN, m(2026, 3, 6, 17, 30), H, m(2026, 3, 9, 9, 30), id="same-without-holidays=monday"),
    pytest.param(OWN_DAY_OFF, m(2026, 3, 13, 17, 30), H, m(2026, 3, 17, 9, 30), id="company-day-off-monday"),
    pytest.param(RU, m(2025, 12, 30, 17, 30), H, m(2026, 1, 12, 9, 30), id="new-year-holidays-ru"),
    pytest.param(RU, m(2026, 4, 30, 17, 30), H, m(2026, 5, 4, 9, 30), id="may-1-ru"),
    pytest.param(RU, m(2025, 10, 31, 17, 30), H, m(2025, 11, 1, 9, 30), id="ru-transferred-working-saturday"),
    pytest.param(RU, m(2026, 3, 16, 7, 0), H, m(2026, 3, 16, 10, 0), id="before-opening"),
    pytest.param(RU, m(2026, 3, 15, 12, 0), 2 * H, m(2026, 3, 16, 11, 0), id="start-on-sunday"),
    pytest.param(RU, m(2026, 3, 16, 10, 0), 20 * H, m(2026, 3, 18, 12, 0), id="multi-day-20h"),
    pytest.param(RU, m(2026, 3, 13, 10, 0), 27 * H, m(2026, 3, 18, 10, 0), id="multi-day-over-weekend"),
    pytest.param(RU, m(2026, 3, 16, 17, 0), H, m(2026, 3, 16, 18, 0), id="lands-on-closing"),
    pytest.param(RU, m(2026, 3, 14, 12, 0), timedelta(0), m(2026, 3, 16, 9, 0), id="zero-outside=next-opening"),
    pytest.param(RU, m(2026, 3, 16, 12, 0), timedelta(0), m(2026, 3, 16, 12, 0), id="zero-inside=same"),
    pytest.param(MSK_ALWAYS, m(2026, 3, 14, 23, 30), H, m(2026, 3, 15, 0, 30), id="around-the-clock"),
    pytest.param(MSK_ALWAYS, m(2026, 3, 28, 12, 0), 24 * H, m(2026, 3, 29, 12, 0), id="moscow-no-dst"),
    pytest.param(BER_ALWAYS, b(2026, 3, 28, 12, 0), 24 * H, b(2026, 3, 29, 13, 0), id="berlin-spring-23h-day"),
    pytest.param(BER_ALWAYS, b(2026, 10, 24, 12, 0), 24 * H, b(2026, 10, 25, 11, 0), id="berlin-autumn-25h-day"),
    pytest.param(BER_WEEK, b(2026, 3, 27, 17, 0), 2 * H, b(2026, 3, 30, 10, 0), id="berlin-weekend-over-dst"),
    pytest.param(RU, datetime(2026, 3, 13, 14, 30, tzinfo=timezone.utc), H, m(2026, 3, 16, 9, 30),
                 id="utc-input-moscow-result"),
])
def test_add_working(cal, start, delta, expected):
    got = cal.add_working(start, delta)
    assert got == expected
    assert got.tzinfo == cal.tz and got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("cal, dt, working", [
    (RU, m(2026, 3, 16, 9, 0), True),
    (RU, m(2026, 3, 16, 17, 59), True),
    (RU, m(2026, 3, 16, 18, 0), False),
    (RU, m(2026, 3, 16, 8, 59), False),
    (RU, m(2026, 3, 14, 12, 0), False),                      # Saturday
    (RU, m(2026, 5, 1, 12, 0), False),                       # Праздник Весны и Труда
    (RU, m(2026, 3, 9, 12, 0), False),                       # 8 March observed on Monday
    (RU, m(2025, 11, 1, 12, 0), True),                       # transferred working Saturday
    (PLAIN, m(2026, 5, 1, 12, 0), True),
    (OWN_DAY_OFF, m(2026, 3, 16, 12, 0), False),
    (MSK_ALWAYS, m(2026, 3, 15, 3, 0), True),
    (RU, datetime(2026, 3, 16, 6, 30, tzinfo=timezone.utc), True),  # 09:30 in Moscow
    (BER_NIGHT, b(2026, 3, 29, 1, 30), True),
    (BER_NIGHT, b(2026, 3, 29, 4, 59), True),
    (BER_NIGHT, b(2026, 3, 29, 5, 0), False),
] + [(RU, m(2026, 1, day, 12, 0), False) for day in range(1, 9)],  # New Year holidays 1-8 January
   ids=lambda v: v.isoformat() if isinstance(v, datetime) else None)
def test_is_working(cal, dt, working):
    assert cal.is_working(dt) is working


@pytest.mark.parametrize("cal, dt, expected", [
    pytest.param(RU, m(2026, 3, 16, 12, 0), m(2026, 3, 16, 12, 0), id="working=itself"),
    pytest.param(RU, m(2026, 3, 16, 7, 0), m(2026, 3, 16, 9, 0), id="before-opening"),
    pytest.param(RU, m(2026, 3, 13, 18, 0), m(2026, 3, 16, 9, 0), id="friday-closing"),
    pytest.param(RU, m(2025, 12, 31, 10, 0), m(2026, 1, 12, 9, 0), id="new-year"),
    pytest.param(BER_WEEK, b(2026, 3, 28, 10, 0), b(2026, 3, 30, 9, 0), id="berlin-over-dst"),
])
def test_next_opening(cal, dt, expected):
    assert cal.next_opening(dt) == expected


@pytest.mark.parametrize("cal, dt, expected", [
    pytest.param(RU, m(2026, 3, 16, 12, 0), m(2026, 3, 16, 12, 0), id="working=itself"),
    pytest.param(RU, m(2026, 3, 15, 10, 0), m(2026, 3, 13, 18, 0), id="sunday=friday-closing"),
    pytest.param(RU, m(2026, 3, 16, 8, 0), m(2026, 3, 13, 18, 0), id="monday-early=friday-closing"),
    pytest.param(RU, m(2026, 3, 16, 20, 0), m(2026, 3, 16, 18, 0), id="evening=closing"),
    pytest.param(RU, m(2026, 1, 10, 10, 0), m(2025, 12, 30, 18, 0), id="new-year"),
])
def test_previous_closing(cal, dt, expected):
    assert cal.previous_closing(dt) == expected


@pytest.mark.parametrize("cal, start, n, kwargs, expected", [
    pytest.param(RU, m(2026, 3, 13, 15, 0), 1, {}, m(2026, 3, 16, 15, 0), id="friday+1=monday-same-time"),
    pytest.param(RU, m(2026, 3, 14, 12, 0), 1, {}, m(2026, 3, 16, 12, 0), id="saturday+1=monday"),
    pytest.param(RU, m(2026, 3, 13, 20, 0), 1, {}, m(2026, 3, 17, 9, 0), id="after-closing-rolls-to-opening"),
    pytest.param(RU, m(2026, 3, 5, 15, 0), 2, {}, m(2026, 3, 10, 15, 0), id="skips-holiday-monday"),
    pytest.param(RU, m(2026, 3, 13, 15, 0), 2, {"at": "10:00"}, m(2026, 3, 17, 10, 0), id="at-10:00"),
    pytest.param(RU, m(2026, 3, 13, 15, 0), 1, {"at": time(7, 0)}, m(2026, 3, 16, 9, 0), id="at-before-opening"),
    pytest.param(RU, m(2026, 3, 14, 12, 0), 0, {}, m(2026, 3, 16, 12, 0), id="zero-from-saturday"),
    pytest.param(RU, m(2026, 3, 16, 12, 0), 0, {"at": "10:00"}, m(2026, 3, 16, 12, 0), id="zero-never-earlier"),
    pytest.param(RU, m(2026, 3, 13, 15, 0), 1, {"working": False}, m(2026, 3, 16, 15, 0), id="calendar-day-rolls"),
    pytest.param(RU, m(2026, 3, 16, 10, 0), 7, {"working": False}, m(2026, 3, 23, 10, 0), id="calendar-week"),
    pytest.param(RU, m(2026, 3, 16, 10, 0), 30, {"working": False}, m(2026, 4, 15, 10, 0), id="calendar-30d"),
    pytest.param(BER_WEEK, b(2026, 3, 27, 10, 0), 1, {}, b(2026, 3, 30, 10, 0), id="berlin-keeps-wall-time"),
])
def test_add_days(cal, start, n, kwargs, expected):
    assert cal.add_days(start, n, **kwargs) == expected


@pytest.mark.parametrize("cal, a, z, expected", [
    pytest.param(RU, m(2026, 3, 13, 17, 0), m(2026, 3, 16, 10, 0), 2 * H, id="across-weekend"),
    pytest.param(RU, m(2026, 3, 16, 10, 0), m(2026, 3, 13, 17, 0), -2 * H, id="reversed-negative"),
    pytest.param(RU, m(2026, 3, 14, 10, 0), m(2026, 3, 15, 10, 0), timedelta(0), id="inside-weekend"),
    pytest.param(RU, m(2025, 12, 30, 17, 0), m(2026, 1, 12, 10, 0), 2 * H, id="across-new-year"),
    pytest.param(RU, m(2026, 3, 16, 9, 0), m(2026, 3, 23, 9, 0), 45 * H, id="a-week"),
    pytest.param(MSK_ALWAYS, m(2026, 3, 28), m(2026, 3, 30), 48 * H, id="moscow-always"),
    pytest.param(BER_ALWAYS, b(2026, 3, 28), b(2026, 3, 30), 47 * H, id="berlin-spring"),
    pytest.param(BER_ALWAYS, b(2026, 10, 24), b(2026, 10, 26), 49 * H, id="berlin-autumn"),
    pytest.param(BER_NIGHT, b(2026, 3, 28), b(2026, 3, 30), 3 * H, id="berlin-gap-inside-hours"),
    pytest.param(BER_WEEK, b(2026, 3, 27, 17, 0), b(2026, 3, 30, 10, 0), 2 * H, id="berlin-weekend-over-dst"),
])
def test_working_between(cal, a, z, expected):
    assert cal.working_between(a, z) == expected


@pytest.mark.parametrize("call", [
    lambda c, dt: c.is_working(dt),
    lambda c, dt: c.next_opening(dt),
    lambda c, dt: c.previous_closing(dt),
    lambda c, dt: c.add_working(dt, H),
    lambda c, dt: c.add_days(dt, 1),
    lambda c, dt: c.working_between(dt, m(2026, 3, 20)),
    lambda c, dt: c.working_between(m(2026, 3, 10), dt),
], ids=["is_working", "next_opening", "previous_closing", "add_working", "add_days", "between-a", "between-b"])
def test_naive_datetime_raises(call):
    with pytest.raises(ValueError, match="naive"):
        call(RU, datetime(2026, 3, 16, 12, 0))


@pytest.mark.parametrize("args, message", [
    (("Mars/Olympus", WEEK), "unknown time zone"),
    (("Europe/Moscow", {"mon": "9-18"}), "not a span"),
    (("Europe/Moscow", {"mon": "22:00-06:00"}), "overnight"),
    (("Europe/Moscow", {"mon": "09:00-25:00"}), "not a span"),
    (("Europe/Moscow", {"sat": None, "sun": None}), "no working day"),
    (("Europe/Moscow", {"monday": "09:00-18:00"}), "unknown weekday"),
    (("Europe/Moscow", WEEK, "XX"), "does not know country"),
])
def test_invalid_calendar(args, message):
    with pytest.raises(ValueError, match=message):
        WorkCalendar(*args)


def test_negative_amounts_rejected():
    with pytest.raises(ValueError):
        RU.add_working(m(2026, 3, 16, 10), -H)
    with pytest.raises(ValueError):
        RU.add_days(m(2026, 3, 16, 10), -1)


def test_from_account_and_subdivision():
    class Account:
        timezone, working_hours, holidays_country, days_off = "Europe/Berlin", WEEK, "DE-BY", [date(2026, 3, 20)]

    cal = WorkCalendar.from_account(Account)
    assert not cal.is_working(b(2026, 1, 6, 12))    # Epiphany: a holiday in Bavaria only
    assert not cal.is_working(b(2026, 3, 20, 12))   # the company's own day off
    assert cal.is_working(b(2026, 3, 19, 12))


# --- properties over many instants: add_working and working_between agree -----------------

from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

_instants = st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2026, 12, 31),
                         timezones=st.just(timezone.utc))


@hsettings(max_examples=300, deadline=None)
@given(cal=st.sampled_from([RU, OWN_DAY_OFF, BER_WEEK, BER_ALWAYS, BER_NIGHT]), start=_instants,
       minutes=st.integers(0, 60 * 200))
def test_add_working_inverts_working_between(cal, start, minutes):
    delta = timedelta(minutes=minutes)
    end = cal.add_working(start, delta)
    assert cal.working_between(start, end) == delta
    assert end >= start
    # The end is inside working time, or exactly the close of a working period.
    assert cal.is_working(end) or (minutes and cal.previous_closing(end) == end)


@hsettings(max_examples=200, deadline=None)
@given(cal=st.sampled_from([RU, BER_WEEK, BER_NIGHT]), a=_instants, b=_instants, c=_instants)
def test_working_between_adds_up(cal, a, b, c):
    a, b, c = sorted((a, b, c))
    assert cal.working_between(a, c) == cal.working_between(a, b) + cal.working_between(b, c)


def test_working_between_long_span():
    assert RU.working_between(m(2024, 1, 1), m(2028, 1, 1)) > timedelta(hours=7000)
