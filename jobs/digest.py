"""DIGEST: each head of department gets the violations of their managers since the previous
digest — counts per manager and rule, the change against the period of the digest before,
the worst cases with links into the CRM — by Telegram and by e-mail (HTML with a plain-text
part), in Russian. Managers in no department get a section of their own, sent to every head.

- **The period.** A digest covers everything from where the last sent one ended (kept in
  Redis) to the start of today, so what happened on a weekend or a holiday reaches the
  heads on the next working day. The first one covers the previous working day, but never
  time before Reglament watched the account (`watching_since`, stamped by the first tick):
  started today, the first digest goes tomorrow; the days before are not compared with, as
  nothing was counted then.
- `build` reads (violations, first contacts, the CRM's user names), `render_text` /
  `render_html` format, `send` delivers one message per head, `tick` is the scheduled job's
  decision; `reglament digest --date D --account A` prints any one day.
"""

from __future__ import annotations

import html as html_lib
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

from jobs import context
from jobs.handlers.distribution import first_contact_stats
from jobs.rules.first_contact import duration_text
from reglament import keys, violations
from reglament.calendar import WorkCalendar
from reglament.names import norm, same_name
from reglament.violations import Violation

log = logging.getLogger("reglament.digest")

NO_DEPARTMENT = "Без отдела"


class Period(NamedTuple):
    """[start, end) in the account's time zone; both at a local midnight."""
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        """«12.03.2026» for one day, «13.03–15.03.2026» for several."""
        first, last = self.start.date(), (self.end - timedelta(seconds=1)).date()
        if first >= last:
            return f"{first:%d.%m.%Y}"
        return f"{first:%d.%m}–{last:%d.%m.%Y}" if first.year == last.year else f"{first:%d.%m.%Y}–{last:%d.%m.%Y}"

    def utc(self) -> tuple[datetime, datetime]:
        return self.start.astimezone(timezone.utc), self.end.astimezone(timezone.utc)

    def seconds(self) -> tuple[float, float]:
        return self.start.timestamp(), self.end.timestamp()


@dataclass
class Row:
    manager: str
    manager_id: int | None
    counts: dict[str, int]
    previous: int
    first_contact: dict | None = None  # {"count", "median", "p90"} seconds, for first contacts in the period

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def change(self) -> int:
        return self.total - self.previous


@dataclass
class DepartmentDigest:
    department: str
    head: str
    period: Period
    previous_period: Period | None   # None: nothing to compare with (not watched then)
    rules: list[str]
    rows: list[Row]
    worst: list[tuple[int | None, str, list[Violation]]] = field(default_factory=list)  # lead, link, violations
    titles: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(r.total for r in self.rows)

    @property
    def previous(self) -> int:
        return sum(r.previous for r in self.rows)


def day_period(zone: ZoneInfo, day: date) -> Period:
    return Period(datetime.combine(day, time(0), tzinfo=zone), datetime.combine(day + timedelta(days=1), time(0),
                                                                                 tzinfo=zone))


def previous_working_day(cal: WorkCalendar, day: date) -> date:
    d = day - timedelta(days=1)
    for _ in range(30):
        if cal.is_working_date(d):
            return d
        d -= timedelta(days=1)
    return day - timedelta(days=1)


def one_day(account: str, day: date) -> tuple[Period, Period]:
    """A day and, to compare with, the working day before it."""
    zone = ZoneInfo(context.account(account).timezone)
    return day_period(zone, day), day_period(zone, previous_working_day(context.calendar(account), day))


def _user_names(account: str) -> dict[int, str]:
    try:
        return dict(context.crm_for(account).users())
    except Exception:  # noqa: BLE001 — the digest still goes out, with ids for names
        return {}


def build(account: str, period: Period, previous: Period | None) -> list[DepartmentDigest]:
    """One digest per department, then one for the managers in no department (when they
    have violations or first contacts in the period)."""
    acc = context.account(account)
    s = context.rules(account).discipline
    r = context.redis_client()
    now = violations.between(r, account, *period.seconds())
    contact = first_contact_stats(account, *period.utc(), r=r)
    before = violations.counts(violations.between(r, account, *previous.seconds())) if previous else {}
    users = _user_names(account)

    def name(uid: int | None) -> str:
        return users.get(uid, str(uid) if uid else "—")

    listed = [m for d in acc.departments for m in d.managers]

    def in_department(uid: int | None, managers: list[str] | None) -> bool:
        if managers is None:  # no department: listed in none
            return not any(same_name(name(uid), m) for m in listed)
        return any(same_name(name(uid), m) for m in managers)

    groups: list[tuple[str, str, list[str] | None]] = [(d.name, d.head, d.managers) for d in acc.departments]
    groups.append((NO_DEPARTMENT, "", None))
    digests = []
    for dept, head, managers in groups:
        own = [v for v in now if in_department(v.manager_id, managers)]
        if managers is None:  # only the people something happened to, not every user of the CRM
            ids = {v.manager_id: name(v.manager_id) for v in own}
            ids |= {uid: name(uid) for uid in contact if uid is not None and in_department(uid, None)}
            if not ids:
                continue
        else:
            ids = {uid: name(uid) for uid in users if in_department(uid, managers)}
            ids |= {v.manager_id: name(v.manager_id) for v in own}
            ids |= {uid: name(uid) for uid in contact if uid is not None and in_department(uid, managers)}
        counts = violations.counts(own)
        rows = [Row(n, uid, counts.get(uid, {}), sum(before.get(uid, {}).values()), contact.get(uid))
                for uid, n in ids.items()]
        rows.sort(key=lambda row: (-row.total, row.manager))
        rules = sorted({v.rule for v in own}, key=lambda x: (-sum(1 for v in own if v.rule == x), x))
        worst = [(lead, next((v.link for v in vs if v.link), "") or "", vs)
                 for lead, vs in violations.worst(own, s.digest.worst_cases)]
        digests.append(DepartmentDigest(dept, head, period, previous, rules, rows, worst,
                                        {rule: s.title(rule) for rule in rules}))
    return digests


def _change(n: int) -> str:
    return f"+{n}" if n > 0 else str(n) if n < 0 else "±0"


def _compared(d: DepartmentDigest) -> str:
    """« (+2 к 12.03.2026)» after the total; "" with nothing to compare with."""
    return f" ({_change(d.total - d.previous)} к {d.previous_period.label})" if d.previous_period else ""


def _title(d: DepartmentDigest) -> str:
    return f"отдел «{d.department}»" if d.department != NO_DEPARTMENT else f"{NO_DEPARTMENT} (менеджеры не из отделов)"


def render_text(d: DepartmentDigest) -> str:
    lines = [f"Нарушения регламента за {d.period.label} — {_title(d)}",
             f"Всего: {d.total}{_compared(d)}", ""]
    if not d.rows:
        lines.append("Менеджеров в отделе нет.")
    for row in d.rows:
        parts = ", ".join(f"{d.titles.get(rule, rule)}: {n}" for rule, n in sorted(row.counts.items()))
        change = f" ({_change(row.change)})" if d.previous_period else ""
        lines.append(f"{row.manager}: {row.total}{change}" + (f" — {parts}" if parts else "")
                     + (f"; первый контакт: медиана {duration_text(row.first_contact['median'])}, "
                        f"90% {duration_text(row.first_contact['p90'])} (заявок: {row.first_contact['count']})"
                        if row.first_contact else ""))
    if d.worst:
        lines += ["", "Худшие случаи:"]
        for lead, url, vs in d.worst:
            what = "; ".join(v.details or v.rule for v in vs)
            lines.append(f"• Сделка {lead or '—'} ({len(vs)}): {what} {url}".rstrip())
    return "\n".join(lines)


def _html_section(d: DepartmentDigest) -> str:
    e = html_lib.escape
    head = "".join(f"<th>{e(d.titles.get(rule, rule))}</th>" for rule in d.rules)
    body = ""
    for row in d.rows:
        cells = "".join(f"<td>{row.counts.get(rule, 0)}</td>" for rule in d.rules)
        fc_ = row.first_contact or {}
        body += (f"<tr><td>{e(row.manager)}</td>{cells}<td><b>{row.total}</b></td>"
                 f"<td>{e(_change(row.change)) if d.previous_period else '—'}</td>"
                 f"<td>{e(duration_text(fc_.get('median')))}</td>"
                 f"<td>{e(duration_text(fc_.get('p90')))}</td></tr>")
    worst = "".join(
        f"<li><a href=\"{e(url)}\">Сделка {e(str(lead or '—'))}</a> ({len(vs)}): "
        f"{e('; '.join(v.details or v.rule for v in vs))}</li>" for lead, url, vs in d.worst)
    return (f"<h2>Нарушения регламента за {e(d.period.label)}</h2>"
            f"<p>{e(_title(d)[:1].upper() + _title(d)[1:])}. Всего: <b>{d.total}</b>"
            f"{e(_compared(d))}</p>"
            f"<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>Менеджер</th>{head}"
            f"<th>Всего</th><th>Изменение</th><th>Первый контакт, медиана</th><th>Первый контакт, 90%</th>"
            f"</tr>{body}</table>"
            + (f"<h3>Худшие случаи</h3><ul>{worst}</ul>" if worst else ""))


def render_html(*digests: DepartmentDigest) -> str:
    """One HTML document with a section per digest (a head's departments, then no department)."""
    return "<html><body>" + "".join(_html_section(d) for d in digests) + "</body></html>"


def by_head(digests: list[DepartmentDigest]) -> dict[str, list[DepartmentDigest]]:
    """Each head (by name, as configured) with the sections they get: their departments, then
    the managers in no department, which every head gets."""
    heads: dict[str, list[DepartmentDigest]] = {}
    names: dict[str, str] = {}
    for d in digests:
        if d.head:
            heads.setdefault(names.setdefault(norm(d.head), d.head), []).append(d)
    rest = [d for d in digests if not d.head]
    return {head: sections + rest for head, sections in heads.items()}


def send(account: str, period: Period, previous: Period | None) -> dict:
    """One message per head by Telegram and by e-mail; neither configured → the outbox.
    Each head and period is sent once (the messenger keeps the keys)."""
    from connectors.messaging import Person
    from connectors.telegram import format_alert
    from jobs.handlers.discipline import messenger_for

    s = context.rules(account).discipline.digest
    messenger = messenger_for(account)
    users = _user_names(account)
    sent = []
    for head, sections in by_head(build(account, period, previous)).items():
        head_id = next((i for i, n in users.items() if same_name(n, head)), None)
        person = Person(name=head, id=str(head_id) if head_id else None)
        departments = [d.department for d in sections]
        subject = s.subject.format(date=period.label, department=", ".join(departments))
        text, html = "\n\n".join(render_text(d) for d in sections), render_html(*sections)
        key = f"DIGEST:{norm(head)}:{period.start.date().isoformat()}:{period.end.date().isoformat()}"
        channels = []
        chat = person.look_up(messenger.telegram_chats)
        if messenger.telegram and chat:
            try:
                messenger.telegram.send_message(chat, format_alert(subject, text), f"{key}:telegram")
                channels.append("telegram")
            except Exception:  # noqa: BLE001 — the e-mail may still carry it
                log.warning("digest to %s: Telegram failed", head, exc_info=True, extra={"account": account})
        address = person.look_up(messenger.email_addresses)
        if messenger.mailer and address:
            try:
                messenger.mailer.send(address, subject, text, f"{key}:email", html_body=html)
                channels.append("email")
            except Exception:  # noqa: BLE001
                log.warning("digest to %s: e-mail failed", head, exc_info=True, extra={"account": account})
        if not channels:
            messenger.alert_person(person, subject, text, html, action_key=key)
            channels.append("outbox")
        sent.append({"head": head, "departments": departments, "total": sum(d.total for d in sections),
                     "channels": channels})
    return {"account": account, "period": [period.start.isoformat(), period.end.isoformat()], "sent": sent}


# ---------------------------------------------------------------- when and what the scheduled digest covers

def _last_key(account: str) -> str:
    return keys.key(account, "discipline", "digest_last")


def last_period(account: str) -> Period | None:
    """The period of the last digest sent on schedule."""
    raw = context.redis_client().get(_last_key(account))
    if raw is None:
        return None
    zone = ZoneInfo(context.account(account).timezone)
    start, end = json.loads(raw)
    return Period(datetime.fromtimestamp(start, zone), datetime.fromtimestamp(end, zone))


def watching_key(account: str) -> str:
    return keys.key(account, "discipline", "watching_since")


def watching_since(account: str) -> datetime | None:
    """When Reglament first watched the account (its first digest tick), in its time zone."""
    raw = context.redis_client().get(watching_key(account))
    return datetime.fromtimestamp(float(raw), ZoneInfo(context.account(account).timezone)) if raw else None


def due_periods(account: str, today: date) -> tuple[Period, Period | None]:
    """What the digest sent today covers (from where the last one ended to the start of
    today) and the period it is compared with. The first one: the previous working day, or
    from the day watching began if later (empty when that is today), compared with nothing
    when the day before it was not watched."""
    zone = ZoneInfo(context.account(account).timezone)
    today_start = day_period(zone, today).start
    last = last_period(account)
    if last is not None:
        return Period(last.end, today_start), last
    period, previous = one_day(account, previous_working_day(context.calendar(account), today))
    since = watching_since(account) or datetime.now(zone)
    since_day = day_period(zone, since.astimezone(zone).date()).start
    if since_day > period.start:
        period = Period(min(since_day, today_start), today_start)
    return period, previous if since <= previous.start else None


def tick(account: str, now: datetime | None = None) -> dict:
    """The scheduled job's decision: at the configured time of a working day, the digest of
    everything since the previous one, once a day."""
    s = context.rules(account).discipline.digest
    if not s.enabled:
        return {"skipped": "disabled"}
    zone = ZoneInfo(context.account(account).timezone)
    now = (now or datetime.now(timezone.utc)).astimezone(zone)
    r = context.redis_client()
    r.set(watching_key(account), now.timestamp(), nx=True)   # the first tick: watching begins
    hh, mm = map(int, s.at.split(":"))
    if not context.calendar(account).is_working_date(now.date()) or (now.hour, now.minute) < (hh, mm):
        return {"skipped": "not yet"}
    period, previous = due_periods(account, now.date())
    if period.start >= period.end:
        first = last_period(account) is None
        return {"skipped": "watching began today: the first digest goes on the next working day" if first
                else "nothing since the last digest"}
    claim = keys.key(account, "discipline", "digest_sent", now.date().isoformat())
    if not r.set(claim, 1, nx=True, ex=7 * 86400):
        return {"skipped": "sent already"}
    try:
        result = send(account, period, previous)
    except Exception:
        r.delete(claim)  # the next tick tries again; what went out already is not sent twice (keys)
        raise
    r.set(_last_key(account), json.dumps([period.start.timestamp(), period.end.timestamp()]))
    return result
