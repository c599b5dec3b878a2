"""Who is on shift: weekly schedules, absences, and the Redis-atomic round robin of DISTRIBUTION.

- A manager's shifts are weekday → spans in the account's time zone (see
  reglament.distribution_settings); a manager without shifts works the account's working
  hours (its WorkCalendar, with holidays).
- Absences (`reglament absent <manager> --from … --until …`) are kept in Redis by the
  manager's normalised name, one per manager, as {"start": …, "end": …} unix times; a
  value written before absences had a start is a bare end time (started long ago).
- The turn (smooth weighted round robin, as nginx does it) is one Lua script: it returns
  the pick already recorded for the lead, or advances the group's weights and records the
  pick for the lead in the same step. Concurrent leads each get their own turn; a retried
  job gets the same manager again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import redis

from reglament import keys
from reglament.names import norm

PICK_TTL = 45 * 86400


# --------------------------------------------------------------------------- schedules

class Schedule:
    """A weekly schedule: weekday index (0 = Monday) → [(start, end)] minutes after local
    midnight; an end past 1440 runs into the next day."""

    def __init__(self, tz: str | ZoneInfo, week: Mapping[int, Sequence[tuple[int, int]]]):
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.week = {d: tuple(spans) for d, spans in week.items() if spans}

    @classmethod
    def from_config(cls, tz: str | ZoneInfo, shifts: Mapping[str, str | None]) -> "Schedule":
        from reglament.distribution_settings import WEEKDAYS, parse_spans

        return cls(tz, {WEEKDAYS.index(d): parse_spans(v) for d, v in shifts.items() if v})

    def _periods_around(self, t: datetime):
        local = t.astimezone(self.tz)
        for back in (1, 0, -1):  # yesterday's overnight span, today, tomorrow
            day = (local - timedelta(days=back)).date()
            for start, end in self.week.get(day.weekday(), ()):
                midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
                yield (midnight + timedelta(minutes=start)).astimezone(timezone.utc), \
                      (midnight + timedelta(minutes=end)).astimezone(timezone.utc)

    def on_shift(self, t: datetime) -> bool:
        t = t.astimezone(timezone.utc)
        return any(a <= t < b for a, b in self._periods_around(t))

    def shift_start(self, t: datetime) -> datetime | None:
        """When the shift that `t` falls in opened (None when off shift)."""
        t = t.astimezone(timezone.utc)
        starts = [a for a, b in self._periods_around(t) if a <= t < b]
        return min(starts) if starts else None


class CalendarSchedule:
    """The account's working hours as a manager's schedule."""

    def __init__(self, calendar):
        self.calendar = calendar

    def on_shift(self, t: datetime) -> bool:
        return self.calendar.is_working(t)

    def shift_start(self, t: datetime) -> datetime | None:
        if not self.calendar.is_working(t):
            return None
        d = t.astimezone(self.calendar.tz).date()
        hours = self.calendar.hours_on(d)
        return hours[0] if hours else None


def schedule_for(manager, calendar):
    """The schedule of a configured manager (reglament.distribution_settings.Manager)."""
    if manager.shifts is None:
        return CalendarSchedule(calendar)
    return Schedule.from_config(calendar.tz, manager.shifts)


# --------------------------------------------------------------------------- absences

def _absent_key(account: str) -> str:
    return keys.key(account, "dist", "absent")


class Absence(NamedTuple):
    """A manager is away in [start, end)."""
    start: datetime
    end: datetime


EPOCH = datetime.fromtimestamp(0, timezone.utc)


def set_absent(r: redis.Redis, account: str, manager: str, until: datetime, start: datetime | None = None) -> None:
    """Replaces the manager's absence; without a start it has already begun."""
    begin = start.timestamp() if start is not None else 0
    r.hset(_absent_key(account), norm(manager), json.dumps({"start": begin, "end": until.timestamp()}))


def clear_absent(r: redis.Redis, account: str, manager: str) -> bool:
    return bool(r.hdel(_absent_key(account), norm(manager)))


def _absence(raw: bytes) -> Absence:
    value = json.loads(raw)
    if not isinstance(value, dict):  # a bare end time, stored before absences had a start
        return Absence(EPOCH, datetime.fromtimestamp(float(value), timezone.utc))
    return Absence(datetime.fromtimestamp(float(value["start"]), timezone.utc),
                   datetime.fromtimestamp(float(value["end"]), timezone.utc))


def absences(r: redis.Redis, account: str) -> dict[str, Absence]:
    """Normalised manager name → their absence (past, current or planned)."""
    return {k.decode(): _absence(v) for k, v in r.hgetall(_absent_key(account)).items()}


def is_absent(absent: Mapping[str, Absence], manager: str, t: datetime) -> bool:
    a = absent.get(norm(manager))
    return a is not None and a.start <= t < a.end


# --------------------------------------------------------------------------- the turn

# KEYS[1] the lead's pick, KEYS[2] the group's current weights (hash user → weight)
# ARGV[1] pick TTL, ARGV[2] fallback ("" = none), then user, weight pairs (the eligible, in a fixed order)
TURN = """
local got = redis.call('GET', KEYS[1])
if got then return got end
local best, bestw, total = nil, nil, 0
for i = 3, #ARGV, 2 do
  local w = tonumber(ARGV[i + 1])
  local cw = redis.call('HINCRBY', KEYS[2], ARGV[i], w)
  total = total + w
  if best == nil or cw > bestw then best, bestw = ARGV[i], cw end
end
if best == nil then
  if ARGV[2] == '' then return false end
  best = ARGV[2]
else
  redis.call('HINCRBY', KEYS[2], best, -total)
end
redis.call('SET', KEYS[1], best, 'EX', ARGV[1])
return best
"""


def pick_key(account: str, lead_id: int) -> str:
    return keys.key(account, "dist", "pick", lead_id)


def take_turn(r: redis.Redis, account: str, lead_id: int, eligible: Sequence[tuple[int, int]],
              fallback: int | None, *, key: str | None = None) -> int | None:
    """The manager for this lead: the one recorded already, else the next of `eligible`
    ((user id, weight) pairs) by smooth weighted round robin, else `fallback`. Atomic.
    `key` records the pick somewhere else than the lead's arrival pick (a reassignment)."""
    args: list = [PICK_TTL, fallback or ""]
    for user, weight in eligible:
        args += [user, weight]
    got = r.register_script(TURN)(keys=[key or pick_key(account, lead_id), keys.key(account, "dist", "rr")],
                                  args=args)
    return int(got) if got else None


def record_pick(r: redis.Redis, account: str, lead_id: int, user: int) -> None:
    """Make `user` the lead's recorded pick: the responsible change we are about to make is ours."""
    r.set(pick_key(account, lead_id), user, ex=PICK_TTL)


def recorded_pick(r: redis.Redis, account: str, lead_id: int) -> int | None:
    got = r.get(pick_key(account, lead_id))
    return int(got) if got else None


def smooth_wrr(weights: Sequence[tuple[object, int]], current: dict) -> object:
    """The same turn in Python (for tests and dry runs): mutates `current`."""
    best, total = None, 0
    for who, w in weights:
        current[who] = current.get(who, 0) + w
        total += w
        if best is None or current[who] > current[best]:
            best = who
    if best is not None:
        current[best] -= total
    return best
