"""DIGEST: each head of department gets the violations of their managers for one day — counts per
manager and rule, the change against the previous working day, the worst cases with links into
amoCRM — by Telegram and by e-mail (HTML with a plain-text part), in Russian.

`build` reads (violations + the CRM's user names), `render_text` / `render_html` format, `send`
delivers; `reglament digest --date D --account A` prints the same text for any day.
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from jobs import context
from jobs.handlers.distribution import first_contact_stats
from jobs.rules.first_contact import duration_text
from reglament.names import same_name
from reglament import violations
from reglament.calendar import WorkCalendar
from reglament.violations import Violation

NO_DEPARTMENT = "Без отдела"


@dataclass
class Row:
    manager: str
    manager_id: int | None
    counts: dict[str, int]
    previous: int
    first_contact: dict | None = None  # {"count", "median", "p90"} seconds, for first contacts that day

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
    day: date
    previous_day: date
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


def day_bounds(zone: ZoneInfo, day: date) -> tuple[float, float]:
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start.timestamp(), datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).timestamp()


def previous_working_day(cal: WorkCalendar, day: date) -> date:
    d = day - timedelta(days=1)
    for _ in range(30):
        if cal.is_working_date(d):
            return d
        d -= timedelta(days=1)
    return day - timedelta(days=1)


def _user_names(account: str) -> dict[int, str]:
    try:
        return dict(context.crm_for(account).names().users)
    except Exception:  # noqa: BLE001 — the digest still goes out, with ids for names
        return {}


def build(account: str, day: date, *, all_managers: bool = False) -> list[DepartmentDigest]:
    """One digest per department (and, with all_managers, one for managers in none)."""
    acc = context.account(account)
    s = context.rules(account).discipline
    r = context.redis_client()
    zone = ZoneInfo(acc.timezone)
    prev_day = previous_working_day(context.calendar(account), day)
    bounds = day_bounds(zone, day)
    today = violations.between(r, account, *bounds)
    contact = first_contact_stats(account, *(datetime.fromtimestamp(t, timezone.utc) for t in bounds), r=r)
    before = violations.counts(violations.between(r, account, *day_bounds(zone, prev_day)))
    users = _user_names(account)

    def name(uid: int | None) -> str:
        return users.get(uid, str(uid) if uid else "—")

    groups: list[tuple[str, str, list[str] | None]] = [(d.name, d.head, d.managers) for d in acc.departments]
    if all_managers:
        listed = [m for d in acc.departments for m in d.managers]
        groups.append((NO_DEPARTMENT, "", [name(v.manager_id) for v in today
                                           if not any(same_name(name(v.manager_id), m) for m in listed)]))
    digests = []
    for dept, head, managers in groups:
        def mine(uid: int | None) -> bool:
            return any(same_name(name(uid), m) for m in managers or [])

        own = [v for v in today if mine(v.manager_id)]
        counts = violations.counts(own)
        ids = {uid: name(uid) for uid in users if mine(uid)} | {v.manager_id: name(v.manager_id) for v in own}
        ids |= {uid: name(uid) for uid in contact if uid is not None and mine(uid)}
        rows = [Row(n, uid, counts.get(uid, {}), sum(before.get(uid, {}).values()), contact.get(uid))
                for uid, n in ids.items()]
        rows.sort(key=lambda row: (-row.total, row.manager))
        rules = sorted({v.rule for v in own}, key=lambda x: (-sum(1 for v in own if v.rule == x), x))
        worst = [(lead, next((v.link for v in vs if v.link), "") or "", vs)
                 for lead, vs in violations.worst(own, s.digest.worst_cases)]
        if dept == NO_DEPARTMENT and not own:
            continue
        digests.append(DepartmentDigest(dept, head, day, prev_day, rules, rows, worst,
                                        {rule: s.title(rule) for rule in rules}))
    return digests


def _change(n: int) -> str:
    return f"+{n}" if n > 0 else str(n) if n < 0 else "±0"


def render_text(d: DepartmentDigest) -> str:
    lines = [f"Нарушения регламента за {d.day:%d.%m.%Y} — отдел «{d.department}»",
             f"Всего: {d.total} ({_change(d.total - d.previous)} к {d.previous_day:%d.%m.%Y})", ""]
    if not d.rows:
        lines.append("Менеджеров в отделе нет.")
    for row in d.rows:
        parts = ", ".join(f"{d.titles.get(rule, rule)}: {n}" for rule, n in sorted(row.counts.items()))
        lines.append(f"{row.manager}: {row.total} ({_change(row.change)})" + (f" — {parts}" if parts else "")
                     + (f"; первый контакт: медиана {duration_text(row.first_contact['median'])}, "
                        f"90% {duration_text(row.first_contact['p90'])} (заявок: {row.first_contact['count']})"
                        if row.first_contact else ""))
    if d.worst:
        lines += ["", "Худшие случаи:"]
        for lead, url, vs in d.worst:
            what = "; ".join(v.details or v.rule for v in vs)
            lines.append(f"• Сделка {lead or '—'} ({len(vs)}): {what} {url}".rstrip())
    return "\n".join(lines)


def render_html(d: DepartmentDigest) -> str:
    e = html_lib.escape
    head = "".join(f"<th>{e(d.titles.get(rule, rule))}</th>" for rule in d.rules)
    body = ""
    for row in d.rows:
        cells = "".join(f"<td>{row.counts.get(rule, 0)}</td>" for rule in d.rules)
        fc_ = row.first_contact or {}
        body += (f"<tr><td>{e(row.manager)}</td>{cells}<td><b>{row.total}</b></td>"
                 f"<td>{e(_change(row.change))}</td><td>{e(duration_text(fc_.get('median')))}</td>"
                 f"<td>{e(duration_text(fc_.get('p90')))}</td></tr>")
    worst = "".join(
        f"<li><a href=\"{e(url)}\">Сделка {e(str(lead or '—'))}</a> ({len(vs)}): "
        f"{e('; '.join(v.details or v.rule for v in vs))}</li>" for lead, url, vs in d.worst)
    return (f"<html><body><h2>Нарушения регламента за {d.day:%d.%m.%Y}</h2>"
            f"<p>Отдел «{e(d.department)}». Всего: <b>{d.total}</b> "
            f"({e(_change(d.total - d.previous))} к {d.previous_day:%d.%m.%Y})</p>"
            f"<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>Менеджер</th>{head}"
            f"<th>Всего</th><th>Изменение</th><th>Первый контакт, медиана</th><th>Первый контакт, 90%</th>"
            f"</tr>{body}</table>"
            + (f"<h3>Худшие случаи</h3><ul>{worst}</ul>" if worst else "") + "</body></html>")


def send(account: str, day: date) -> dict:
    """Each head's digest by Telegram and by e-mail; neither configured → the outbox."""
    from connectors.messaging import Person
    from connectors.telegram import format_alert
    from jobs.handlers.discipline import messenger_for

    s = context.rules(account).discipline.digest
    messenger = messenger_for(account)
    users = _user_names(account)
    sent = []
    for d in build(account, day):
        if not d.head:
            continue
        head_id = next((i for i, n in users.items() if same_name(n, d.head)), None)
        person = Person(name=d.head, id=str(head_id) if head_id else None)
        subject = s.subject.format(date=f"{day:%d.%m.%Y}", department=d.department)
        text, html = render_text(d), render_html(d)
        key = f"DIGEST:{d.department}:{day.isoformat()}"
        channels = []
        chat = person.look_up(messenger.telegram_chats)
        if messenger.telegram and chat:
            try:
                messenger.telegram.send_message(chat, format_alert(subject, text), f"{key}:telegram")
                channels.append("telegram")
            except Exception:  # noqa: BLE001 — the e-mail may still carry it
                pass
        address = person.look_up(messenger.email_addresses)
        if messenger.mailer and address:
            try:
                messenger.mailer.send(address, subject, text, f"{key}:email", html_body=html)
                channels.append("email")
            except Exception:  # noqa: BLE001
                pass
        if not channels:
            messenger.alert_person(person, subject, text, html, action_key=key)
            channels.append("outbox")
        sent.append({"department": d.department, "head": d.head, "total": d.total, "channels": channels})
    return {"account": account, "day": day.isoformat(), "sent": sent}
