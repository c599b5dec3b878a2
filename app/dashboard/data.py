"""What the dashboard shows, read from Redis (violations, WhatsApp timers, RQ) — no CRM calls
except the account's user names when they are not cached (jobs.directory)."""

from __future__ import annotations

import html
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import redis

from reglament import keys, violations
from reglament.config import Account, Department

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def _same(a: str | None, b: str | None) -> bool:
    from reglament.names import same_name

    return same_name(a, b)


def titles(acc: Account) -> dict[str, str]:
    from reglament import rule_settings

    try:
        return dict(rule_settings.load(acc.rules).discipline.rule_titles)
    except Exception:  # noqa: BLE001
        return {}


def user_names(acc: Account, r: redis.Redis) -> dict[int, str]:
    """The account's CRM users by id (a read model of jobs/: no connector here)."""
    from jobs.directory import user_names as read

    return read(acc, r)


def _is_manager(dept: Department, names: dict[int, str], uid: int | None) -> bool:
    return any(_same(names.get(uid, str(uid)), m) for m in dept.managers)


def department_view(r: redis.Redis, acc: Account, dept: Department, names: dict[int, str], today: date,
                    days: int) -> dict:
    zone = ZoneInfo(acc.timezone)
    labels = [today - timedelta(days=i) for i in range(days - 1, -1, -1)]
    start = datetime.combine(labels[0], datetime.min.time(), tzinfo=zone).timestamp()
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=zone).timestamp()
    found = [v for v in violations.between(r, acc.id, start, end) if _is_manager(dept, names, v.manager_id)]
    managers = list(dept.managers)
    ids = {m: next((i for i, n in names.items() if _same(n, m)), None) for m in managers}
    series = {m: [0] * days for m in managers}
    today_counts: dict[str, dict[str, int]] = {m: {} for m in managers}
    rules: set[str] = set()
    for v in found:
        day = datetime.fromtimestamp(v.at, zone).date()
        m = next((m for m in managers if ids[m] == v.manager_id or _same(m, names.get(v.manager_id))), None)
        if m is None:
            continue
        series[m][(day - labels[0]).days] += 1
        if day == today:
            today_counts[m][v.rule] = today_counts[m].get(v.rule, 0) + 1
            rules.add(v.rule)
    return {"days": labels, "series": series, "today": today_counts, "rules": sorted(rules),
            "totals": {m: sum(series[m]) for m in managers}}


def first_contact(r: redis.Redis, acc: Account, dept: Department, names: dict[int, str], start: datetime,
                  end: datetime) -> dict[str, dict]:
    """Per manager of the department: leads contacted first in [start, end), with the median
    and 90th percentile of the time it took (FIRST_CONTACT_SLA's record), as text."""
    from jobs.handlers.distribution import first_contact_stats
    from jobs.rules.first_contact import duration_text

    stats = first_contact_stats(acc.id, start, end, r=r)
    out = {}
    for m in dept.managers:
        uid = next((i for i, n in names.items() if _same(n, m)), None)
        if uid in stats:
            s = stats[uid]
            out[m] = {"count": s["count"], "median": duration_text(s["median"]), "p90": duration_text(s["p90"])}
    return out


def svg_chart(days: list[date], series: dict[str, list[int]], width: int = 760, height: int = 260) -> str:
    """Violations per manager per day: one polyline per manager, inline SVG."""
    left, right, top, bottom = 40, 10, 10, 40
    w, h = width - left - right, height - top - bottom
    peak = max([1] + [n for s in series.values() for n in s])
    step = w / max(len(days) - 1, 1)

    def xy(i: int, n: int) -> tuple[float, float]:
        return left + i * step, top + h - h * n / peak

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20 * len(series)}" '
           f'role="img" aria-label="Нарушения по менеджерам по дням" id="chart">']
    out.append(f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#888"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#888"/>')
    for k in range(0, peak + 1, max(1, peak // 4)):
        y = top + h - h * k / peak
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{k}</text>')
    for i, d in enumerate(days):
        x = left + i * step
        out.append(f'<text x="{x:.1f}" y="{top + h + 16}" font-size="10" text-anchor="middle">{d:%d.%m}</text>')
    for j, (name, counts) in enumerate(series.items()):
        color = COLORS[j % len(COLORS)]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, n) for i, n in enumerate(counts)))
        label = html.escape(name)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}" '
                   f'data-manager="{label}"><title>{label}</title></polyline>')
        for i, n in enumerate(counts):
            if n:
                x, y = xy(i, n)
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                           f'<title>{label}, {days[i]:%d.%m}: {n}</title></circle>')
        ly = height + 20 * j + 4
        out.append(f'<rect x="{left}" y="{ly}" width="12" height="12" fill="{color}"/>'
                   f'<text x="{left + 18}" y="{ly + 11}" font-size="12">{label}: {sum(counts)}</text>')
    out.append("</svg>")
    return "".join(out)


def current_breaches(r: redis.Redis, acc: Account, dept: Department, names: dict[int, str], since: datetime,
                     zone: ZoneInfo) -> list[dict]:
    found = violations.latest(r, acc.id, since.timestamp(), limit=200)
    return [{"at": datetime.fromtimestamp(v.at, zone).strftime("%d.%m %H:%M"), "rule": v.rule,
             "manager": names.get(v.manager_id, str(v.manager_id or "—")), "details": v.details,
             "link": v.link, "lead_id": v.lead_id}
            for v in found if _is_manager(dept, names, v.manager_id)]


def whatsapp_timers(r: redis.Redis, acc: Account, names: dict[int, str], now: datetime, zone: ZoneInfo,
                    limit: int = 50) -> list[dict]:
    """Chats waiting for our answer (WHATSAPP_SLA state hashes), whatever is there."""
    found = []
    try:
        for key in r.scan_iter(match=keys.key(acc.id, "sla", "chat", "*"), count=500):
            if r.type(key) != b"hash":
                continue
            raw = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}
            if not raw.get("message_id"):
                continue
            try:
                since = datetime.fromtimestamp(float(raw.get("since") or 0), timezone.utc)
            except ValueError:
                continue
            manager = raw.get("responsible_id")
            found.append({"chat": key.decode().split(":sla:chat:", 1)[-1],
                          "since": since.astimezone(zone).strftime("%d.%m %H:%M"),
                          "minutes": int((now - since).total_seconds() // 60),
                          "manager": names.get(int(manager), manager) if manager and str(manager).isdigit() else "—"})
            if len(found) >= limit:
                break
    except redis.RedisError:
        return []
    return sorted(found, key=lambda t: -t["minutes"])


def queue_health(r: redis.Redis) -> list[dict]:
    from rq import Queue

    from jobs import queues

    out = []
    for name in queues.QUEUES:
        try:
            q = Queue(name, connection=r)
            out.append({"name": name, "depth": q.count, "failed": q.failed_job_registry.count,
                        "scheduled": q.scheduled_job_registry.count})
        except Exception as e:  # noqa: BLE001
            out.append({"name": name, "depth": "?", "failed": "?", "scheduled": "?", "error": str(e)})
    return out
