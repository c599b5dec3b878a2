"""Sandbox-only controls under /_sandbox (plain JSON, no auth, no bucket: the sandbox is a local tool).

GET    /_sandbox/requests?since=N   REST calls answered: index, time, http_method, path (code masked), method,
                                    auth, user_id, status, error, commands (of a batch), duration_ms
DELETE /_sandbox/requests           forget them
GET    /_sandbox/events?since=N     outgoing event deliveries: event, handler, event_handler_id, kind, status, ok,
                                    error, body (the form-encoded body as sent)
DELETE /_sandbox/events             forget them
POST   /_sandbox/events/wait?timeout=5   until every queued delivery is done -> {"idle": bool}
GET    /_sandbox/handlers           handlers bound with event.bind and outgoing webhooks (no tokens)
POST   /_sandbox/webhooks/outgoing  {"handler": url, "events": [...]} -> the new outgoing webhook with its
                                    application_token (shown once, as the portal's page does; a demo set up by
                                    a script may give its own as "application_token")
DELETE /_sandbox/webhooks/outgoing/<id>
POST   /_sandbox/install {"handler": url}     install the application: ONAPPINSTALL with a fresh token pair and
                                    the application token, posted once to url -> the delivery (status, ok, error)
POST   /_sandbox/uninstall {"handler": url}   uninstall it: its tokens and event.bind handlers go, ONAPPUNINSTALL
                                    is posted once to url -> the delivery
POST   /_sandbox/reset?generate=0   reload the seed (handlers and tokens stay)
POST   /_sandbox/generate?n=100&without_todo_share=0.1   add generated deals (silently)
GET    /_sandbox/clock, POST /_sandbox/clock {"shift": s} | {"now": ts} | {"advance": s}   the portal's time
GET    /_sandbox/bucket, POST /_sandbox/bucket {"rate": r, "burst": b}   the leaky bucket
POST   /_sandbox/block {"method": "crm.deal.list", "seconds": 600}   that method answers 429 OPERATION_TIME_LIMIT
POST   /_sandbox/faults {"statuses": [503, 500], "seconds": 120}   every REST call answers these statuses in turn
                                    for a while, with Bitrix24's bodies (503 QUERY_LIMIT_EXCEEDED, 429
                                    OPERATION_TIME_LIMIT, 5xx INTERNAL_SERVER_ERROR); GET: how many each answered
POST   /_sandbox/oauth/code         an authorization code for the application (lives 30 s)
POST   /_sandbox/oauth/expire       every access token expires now -> {"expired": n}
GET    /_sandbox/oauth              grants and live token counts (no token values)
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from sandbox.controls import add_faults, add_logs, arg

from .context import current
from .seed import generate_deals

bp = Blueprint("bitrix24_sandbox_admin", __name__, url_prefix="/_sandbox")


def _body() -> dict:
    data = request.get_json(silent=True, force=True)
    return data if isinstance(data, dict) else {}


add_logs(bp, lambda: current().requests, "events", lambda: current().events)
add_faults(bp, lambda: current().faults)


@bp.get("/handlers")
def handlers():
    events = current().events
    with events._lock:
        return jsonify({"bound": events.bound(), "outgoing_webhooks": list(events.webhooks.values())})


@bp.post("/webhooks/outgoing")
def outgoing_add():
    data = _body()
    events = data.get("events")
    try:
        token = data.get("application_token")
        made = current().events.add_webhook(str(data.get("handler", "")), events if isinstance(events, list) else [],
                                            token if isinstance(token, str) and token else None)
    except ValueError as e:
        return jsonify({"error": str(e)}), 400
    return jsonify(made), 201


@bp.delete("/webhooks/outgoing/<int:webhook_id>")
def outgoing_remove(webhook_id: int):
    if not current().events.remove_webhook(webhook_id):
        return jsonify({"error": "no such outgoing webhook"}), 404
    return Response(status=204)


@bp.post("/install")
@bp.post("/uninstall")
def lifecycle():
    events = current().events
    send = events.install if request.path.endswith("/install") else events.uninstall
    try:
        return jsonify(send(str(_body().get("handler", ""))))
    except ValueError as e:
        return jsonify({"error": str(e)}), 400


@bp.post("/reset")
def reset():
    portal = current().portal
    portal.reset()
    n = arg("generate", 0, int)
    if n > 0:
        with portal.lock:
            generate_deals(portal, n, arg("without_todo_share", 0.1), 0)
    with portal.lock:
        return jsonify({"deals": len(portal.deals), "contacts": len(portal.contacts),
                        "activities": len(portal.activities), "tasks": len(portal.tasks)})


@bp.post("/generate")
def generate():
    portal = current().portal
    with portal.lock:
        ids = generate_deals(portal, arg("n", 100, int), arg("without_todo_share", 0.1), arg("seed", 0, int))
    return jsonify({"created": len(ids), "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None})


@bp.get("/clock")
def clock():
    portal = current().portal
    return jsonify({"now": portal.now(), "shift": portal.clock_shift})


@bp.post("/clock")
def clock_set():
    portal = current().portal
    data = _body()
    try:
        portal.set_clock(**{k: float(data[k]) for k in ("now", "shift", "advance") if k in data})
    except (TypeError, ValueError):
        return jsonify({"error": 'give {"now": unix time}, {"shift": seconds} or {"advance": seconds}'}), 400
    return jsonify({"now": portal.now(), "shift": portal.clock_shift})


@bp.get("/bucket")
def bucket():
    b = current().bucket
    return jsonify({"rate": b.rate, "burst": b.burst, "level": b.level()})


@bp.post("/bucket")
def bucket_set():
    b = current().bucket
    data = _body()
    try:
        b.rate = float(data.get("rate", b.rate))
        b.burst = int(data.get("burst", b.burst))
    except (TypeError, ValueError):
        return jsonify({"error": 'give {"rate": per second, "burst": requests}'}), 400
    return jsonify({"rate": b.rate, "burst": b.burst, "level": b.level()})


@bp.post("/block")
def block():
    data = _body()
    name = str(data.get("method") or "").strip()
    try:
        seconds = float(data.get("seconds", 600))
    except (TypeError, ValueError):
        seconds = -1
    if not name or seconds < 0:
        return jsonify({"error": 'give {"method": name, "seconds": how long}'}), 400
    return jsonify({"method": name.lower(), "until": current().block(name, seconds)})


@bp.post("/oauth/code")
def oauth_code():
    sandbox = current()
    p = sandbox.portal
    return jsonify({"code": sandbox.auth.new_code(), "domain": p.domain, "member_id": p.info["member_id"],
                    "scope": "crm,task,telephony,user", "server_domain": "oauth.bitrix.info"})


@bp.post("/oauth/expire")
def oauth_expire():
    return jsonify({"expired": current().auth.expire_access_tokens()})


@bp.get("/oauth")
def oauth_state():
    return jsonify(current().auth.summary())
