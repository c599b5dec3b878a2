"""The heads' read-only dashboard (`/dashboard`), in Russian: violations per manager per day
(server-rendered inline SVG), the current breaches with links into the CRM, open WhatsApp
timers, and queue health.

Login: the head's `dashboard_token` from the account's `departments`, compared in constant
time; the session cookie then names the account and department. A visitor without it is
sent to the login page; nothing else is served to them. After LOGIN_FAILURES wrong tokens
from one address within LOGIN_WINDOW seconds, logins from it get 429 until the window ends.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import redis
from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for

from app.dashboard import data
from reglament import keys
from reglament.config import CRM_NAMES

log = logging.getLogger("reglament.dashboard")
bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates")
SESSION_KEY = "dashboard"
DAYS = 14
# Wrong tokens a client address may try per window before it is told to wait. The tokens are
# long random strings, so this is not what keeps them safe; it keeps guessing loud and slow.
LOGIN_FAILURES, LOGIN_WINDOW = 10, 600


@bp.record_once
def _setup(state) -> None:
    app = state.app
    ctx = app.extensions.get("reglament")
    if not app.secret_key and ctx is not None:
        # Stable across web workers and restarts: derived from the configuration's secrets.
        secrets = [a.webhook_secret for a in ctx.settings.accounts]
        secrets += [d.dashboard_token or "" for a in ctx.settings.accounts for d in a.departments]
        app.secret_key = hashlib.sha256(("reglament-dashboard\0" + "\0".join(secrets)).encode()).hexdigest()
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config["SESSION_COOKIE_HTTPONLY"] = True


def _ctx():
    return current_app.extensions["reglament"]


def _find(token: str):
    """(account, department) whose dashboard_token equals token; every token is compared."""
    found = None
    given = token.encode()
    for acc in _ctx().settings.accounts:
        for dept in acc.departments:
            if dept.dashboard_token and hmac.compare_digest(given, dept.dashboard_token.encode()) and found is None:
                found = (acc, dept)
    return found


def _current():
    who = session.get(SESSION_KEY)
    if not isinstance(who, dict):
        return None
    try:
        acc = _ctx().settings.account(who.get("account"))
    except KeyError:
        return None
    dept = next((d for d in acc.departments if d.name == who.get("department") and d.dashboard_token), None)
    # A token changed in the configuration ends the sessions made with the old one.
    if dept is None or not hmac.compare_digest(str(who.get("check", "")), _check(dept.dashboard_token)):
        return None
    return acc, dept


def _check(token: str) -> str:
    return hashlib.sha256(("dashboard-session\0" + token).encode()).hexdigest()[:16]


@bp.get("/login")
def login_form():
    return render_template("dashboard/login.html", error=None)


def _failures_key() -> str:
    return keys.key(keys.GLOBAL, "dashboard", "login_failures", request.remote_addr or "-")


@bp.post("/login")
def login():
    r = _ctx().redis
    failures = int(r.get(_failures_key()) or 0)
    if failures >= LOGIN_FAILURES:
        log.warning("dashboard: logins refused for %s after %d wrong tokens", request.remote_addr, failures)
        page = render_template("dashboard/login.html", error="Слишком много попыток входа. Попробуйте позже.")
        return page, 429, {"Retry-After": str(max(1, r.ttl(_failures_key())))}
    token = (request.form.get("token") or "").strip()
    found = _find(token) if token else None
    if found is None:
        with r.pipeline(transaction=True) as p:
            p.set(_failures_key(), 0, nx=True, ex=LOGIN_WINDOW)  # the window starts at the first failure
            p.incr(_failures_key())
            p.execute()
        return render_template("dashboard/login.html", error="Неверный токен"), 401
    acc, dept = found
    session.clear()
    session[SESSION_KEY] = {"account": acc.id, "department": dept.name, "check": _check(dept.dashboard_token)}
    return redirect(url_for("dashboard.index"))


@bp.post("/logout")
def logout():
    session.pop(SESSION_KEY, None)
    return redirect(url_for("dashboard.login_form"))


@bp.get("/")
def index():
    who = _current()
    if who is None:
        return redirect(url_for("dashboard.login_form"))
    acc, dept = who
    r = _ctx().redis
    zone = ZoneInfo(acc.timezone)
    now = datetime.now(timezone.utc)
    names = data.user_names(acc, r)
    view = data.department_view(r, acc, dept, names, now.astimezone(zone).date(), DAYS)
    return render_template(
        "dashboard/index.html", account=acc, department=dept, view=view,
        chart=data.svg_chart(view["days"], view["series"]),
        current=data.current_breaches(r, acc, dept, names, now - timedelta(hours=24), zone),
        timers=data.whatsapp_timers(r, acc, names, now, zone), queues=data.queue_health(r),
        crm=_crm_health(r, acc), crm_name=CRM_NAMES[acc.crm],
        first_contact=data.first_contact(r, acc, dept, names, now - timedelta(days=DAYS), now),
        titles=data.titles(acc))


def _crm_health(r, account):
    from jobs import account_health

    try:
        return account_health.health(r, [account])[0]
    except redis.RedisError:
        return None


@bp.errorhandler(403)
def _forbidden(e):
    return redirect(url_for("dashboard.login_form"))


__all__ = ["bp", "abort"]
