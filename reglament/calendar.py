"""The working calendar of one account: time zone, weekly hours, public holidays, days off.

Every due time and every SLA clock is measured on it. Working periods are defined in
local wall-clock time ("09:00-18:00" on Mondays) but all arithmetic is done on real
instants, so a day on which clocks change (23 or 25 hours long) counts its true length.

All methods take and return timezone-aware datetimes; results are in the calendar's
zone. A naive datetime raises ValueError: its meaning would depend on the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AROUND_THE_CLOCK = "00:00-24:00"
_SPAN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
# How far to look for working time before deciding the calendar has none (e.g. every
# weekday off): a bound, so a broken calendar fails loudly instead of looping forever.
_SEARCH_DAYS = 3 * 366

Period = tuple[datetime, datetime]  # [start, end) as UTC instants


def _minutes(hh: str, mm: str) -> int:
    h, m = int(hh), int(mm)
    if m > 59 or h > 24 or (h == 24 and m):
        raise ValueError
    return h * 60 + m


def parse_span(span: str) -> tuple[int, int]:
    """'09:00-18:00' → (540, 1080) minutes after local midnight; '00:00-24:00' is the whole day."""
    m = _SPAN.match(span.strip())
    try:
        if not m:
            raise ValueError
        start, end = _minutes(m[1], m[2]), _minutes(m[3], m[4])
    except ValueError:
        raise ValueError(f"{span!r} is not a span like 09:00-18:00") from None
    if start >= end:
        # A night shift would make one working period belong to two dates; not supported.
        raise ValueError(f"{span!r}: the end must be after the start (overnight spans are not supported)")
    return start, end


def _parse_time(at: time | str) -> time:
    if isinstance(at, time):
        return at
    m = re.match(r"^(\d{1,2}):(\d{2})$", at.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError(f"{at!r} is not a time like 10:00")
    return time(int(m[1]), int(m[2]))


def _aware(dt: datetime, what: str = "datetime") -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} {dt.isoformat()} is naive; pass a timezone-aware datetime")
    return dt.astimezone(timezone.utc)


class WorkCalendar:
    """Working time of one account.

    tz        IANA zone name, e.g. "Europe/Moscow".
    hours     weekday ("mon".."sun") → "09:00-18:00", "00:00-24:00" (around the clock) or
              None (day off). A weekday left out is a day off.
    country   country whose public holidays are days off, as the `holidays` library knows
              it ("RU"; "DE-BY" for a subdivision); None = no public holidays. Weekend
              days the country turns into working days (RU's transferred Saturdays) work
              with the hours of the nearest earlier weekday that has hours.
    days_off  the company's own extra days off (dates or "YYYY-MM-DD").
    """

    def __init__(self, tz: str, hours: Mapping[str, str | None], country: str | None = None,
                 days_off: Iterable[date | str] = ()):
        try:
            self.tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as Europe/Moscow") from None
        unknown = set(hours) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekday(s) {sorted(unknown)}; use {', '.join(WEEKDAYS)}")
        self._spans: list[tuple[int, int] | None] = [
            parse_span(hours[d]) if hours.get(d) else None for d in WEEKDAYS
        ]
        if not any(self._spans):
            raise ValueError("the working hours have no working day")
        self.country = country
        self._holidays = _country_holidays(country) if country else None
        self.days_off = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in days_off)
        # Periods are asked for the same few dates over and over (every due time, every sweep).
        self._period = lru_cache(maxsize=4096)(self._compute_period)

    @classmethod
    def from_account(cls, account) -> "WorkCalendar":
        """Build from anything with the config's account attributes (timezone, working_hours,
        holidays_country, days_off), e.g. reglament.config.Account."""
        return cls(account.timezone, account.working_hours, account.holidays_country, account.days_off)

    # --- days -----------------------------------------------------------------------

    def _span_for(self, d: date) -> tuple[int, int] | None:
        if d in self.days_off:
            return None
        if self._holidays is not None and d in self._holidays:
            return None
        span = self._spans[d.weekday()]
        if span is None and self._holidays is not None and d in getattr(self._holidays, "weekend_workdays", ()):
            for back in range(1, 7):
                span = self._spans[(d.weekday() - back) % 7]
                if span:
                    break
        return span

    def is_working_date(self, d: date) -> bool:
        """True when the local date has working hours (not a day off, holiday or company day off)."""
        return self._span_for(d) is not None

    def _wall(self, d: date, minutes: int) -> datetime:
        # Local wall time → UTC instant. A wall time inside a spring-forward gap maps past
        # the gap (zoneinfo's fold=0 rule), which is what an opening at 02:30 should mean.
        day, m = d + timedelta(days=minutes // 1440), minutes % 1440  # 24:00 is the next midnight
        return datetime.combine(day, time(m // 60, m % 60), tzinfo=self.tz).astimezone(timezone.utc)

    def _compute_period(self, d: date) -> Period | None:
        span = self._span_for(d)
        if span is None:
            return None
        return self._wall(d, span[0]), self._wall(d, span[1])

    def hours_on(self, d: date) -> tuple[datetime, datetime] | None:
        """The working period [start, end) of a local date, in the calendar's zone; None on a day off."""
        p = self._period(d)
        return (p[0].astimezone(self.tz), p[1].astimezone(self.tz)) if p else None

    def _local_date(self, u: datetime) -> date:
        return u.astimezone(self.tz).date()

    def _periods_from(self, u: datetime):
        """Working periods that end after instant u, in order."""
        d = self._local_date(u) - timedelta(days=1)  # a period may start on the previous local date
        for i in range(_SEARCH_DAYS):
            p = self._period(d + timedelta(days=i))
            if p and p[1] > u:
                yield p
        raise ValueError(f"no working time within {_SEARCH_DAYS} days after {u.isoformat()}")

    def _periods_before(self, u: datetime):
        """Working periods that start at or before instant u, latest first."""
        d = self._local_date(u) + timedelta(days=1)
        for i in range(_SEARCH_DAYS):
            p = self._period(d - timedelta(days=i))
            if p and p[0] <= u:
                yield p
        raise ValueError(f"no working time within {_SEARCH_DAYS} days before {u.isoformat()}")

    def _out(self, u: datetime) -> datetime:
        return u.astimezone(self.tz)

    # --- instants -------------------------------------------------------------------

    def is_working(self, dt: datetime) -> bool:
        """True inside working hours. Periods are half-open: 09:00 is working, 18:00 is not."""
        u = _aware(dt)
        d = self._local_date(u)
        return any(p and p[0] <= u < p[1] for p in (self._period(d - timedelta(days=1)), self._period(d)))

    def next_opening(self, dt: datetime) -> datetime:
        """dt itself if it is working time, else the next moment work starts."""
        u = _aware(dt)
        start, _ = next(self._periods_from(u))
        return self._out(max(u, start))

    def previous_closing(self, dt: datetime) -> datetime:
        """dt itself if it is working time, else the moment the last working period before it
        ended (for due times that must fall before something, e.g. a reminder before a class)."""
        u = _aware(dt)
        _, end = next(self._periods_before(u))
        return self._out(min(u, end))

    def add_working(self, dt: datetime, delta: timedelta) -> datetime:
        """The instant when `delta` of working time has passed since dt.

        Counting starts at next_opening(dt). The result may be a closing time exactly
        (17:00 + 1 h with hours 09:00-18:00 is 18:00 the same day, not the next morning):
        that is when the time is used up.
        """
        if delta < timedelta(0):
            raise ValueError("delta must not be negative")
        u = _aware(dt)
        left = delta
        for start, end in self._periods_from(u):
            start = max(start, u)
            if left <= end - start:
                return self._out(start + left)
            left -= end - start
        raise AssertionError("unreachable")  # _periods_from raises when it runs out

    def working_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time elapsed from a to b (negative when b is before a), e.g. for SLA clocks."""
        ua, ub = _aware(a, "a"), _aware(b, "b")
        if ub < ua:
            return -self.working_between(b, a)
        total = timedelta(0)
        d, last = self._local_date(ua) - timedelta(days=1), self._local_date(ub)
        while d <= last:
            p = self._period(d)
            if p and p[0] < ub and p[1] > ua:
                total += min(p[1], ub) - max(p[0], ua)
            d += timedelta(days=1)
        return total

    def shift_days(self, dt: datetime, days: int) -> datetime:
        """The same local wall time `days` calendar days later (earlier when negative).
        Across a clock change this is 23 or 25 real hours per day, as people expect."""
        _aware(dt)
        local = dt.astimezone(self.tz)
        moved = datetime.combine(local.date() + timedelta(days=days), local.timetz().replace(tzinfo=None),
                                 tzinfo=self.tz)
        return moved.astimezone(timezone.utc).astimezone(self.tz)

    def add_days(self, dt: datetime, n: int, at: time | str | None = None, *, working: bool = True) -> datetime:
        """n days later, at local time `at` (default: dt's local time), on a working moment.

        working=True counts working dates: n=1 from a Friday (or a Saturday) is Monday.
        working=False counts calendar days, then rolls forward to the next working date.
        n=0 means dt's own date if it is a working date, else the next one. When the
        chosen time is outside that date's hours the result moves to the next opening
        (before opening → that morning; after closing → the next working morning). The
        result is never earlier than dt.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        u = _aware(dt)
        local = u.astimezone(self.tz)
        d = local.date()
        if working:
            for _ in range(n):
                d = self._next_working_date(d + timedelta(days=1))
            d = self._next_working_date(d)
        else:
            d = self._next_working_date(d + timedelta(days=n))
        at_time = _parse_time(at) if at is not None else local.time()
        candidate = datetime.combine(d, at_time, tzinfo=self.tz).astimezone(timezone.utc)
        return self.next_opening(max(candidate, u))

    def _next_working_date(self, d: date) -> date:
        for i in range(_SEARCH_DAYS):
            if self.is_working_date(d + timedelta(days=i)):
                return d + timedelta(days=i)
        raise ValueError(f"no working date within {_SEARCH_DAYS} days after {d}")

    def __repr__(self) -> str:
        hours = {d: f"{s[0] // 60:02}:{s[0] % 60:02}-{s[1] // 60:02}:{s[1] % 60:02}"
                 for d, s in zip(WEEKDAYS, self._spans) if s}
        return f"WorkCalendar({self.tz.key!r}, {hours}, country={self.country!r}, days_off={len(self.days_off)})"


def _country_holidays(country: str):
    code, _, subdiv = country.partition("-")
    try:
        return holidays_lib.country_holidays(code.upper(), subdiv=subdiv or None)
    except NotImplementedError:
        raise ValueError(f"the holidays library does not know country {country!r}") from None
