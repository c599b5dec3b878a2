"""Sandbox-only controls under /_sandbox (plain JSON, no token, no rate limit: the sandbox is a local tool).

GET    /_sandbox/requests?since=N   API requests answered: index, time, method, path, query, status, duration_ms
DELETE /_sandbox/requests           forget them
GET    /_sandbox/webhooks?since=N   webhook delivery attempts: destination, settings, sections, attempt, status, body
DELETE /_sandbox/webhooks           forget them
POST   /_sandbox/webhooks/wait?timeout=5   wait until every queued delivery is done -> {"idle": bool}
POST   /_sandbox/reset?keep_webhooks=1&generate=0&without_task_share=0.1   reload the seed
POST   /_sandbox/generate?n=100&without_task_share=0.1   add generated leads (silently)
GET    /_sandbox/clock, POST /_sandbox/clock {"shift": seconds} | {"now": unix ts}   move the sandbox's time
POST   /_sandbox/oauth/code         a new authorization code (as if a user allowed access) -> {code, referer, ...}
POST   /_sandbox/oauth/expire       every OAuth access token expires now -> {"expired": n}
GET    /_sandbox/oauth              the integration and counts of grants and live tokens (no token values)
POST   /_sandbox/faults {"statuses": [429, 503], "seconds": 120, "block_after": 0, "block_seconds": 60}
                                    answer API requests with these statuses in turn for a while; optionally
                                    block (403) a client causing more than block_after 429s a minute (sandbox/faults.py)
GET    /_sandbox/faults             what is injected, and how many requests each status answered
"""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from sandbox.controls import add_faults, add_logs, arg

from .context import current
from .oauth import CODE_TTL

bp = Blueprint("amocrm_sandbox_admin", __name__, url_prefix="/_sandbox")


add_logs(bp, lambda: current().requests, "webhooks", lambda: current().dispatcher)
add_faults(bp, lambda: current().faults)


@bp.post("/reset")
def reset():
    acc = current().account
    acc.reset(keep_webhooks=request.args.get("keep_webhooks", "1") not in ("0", "false"))
    n = arg("generate", 0, int)
    if n > 0:
        acc.generate_leads(n, arg("without_task_share", 0.1))
    with acc.lock:
        return jsonify({"leads": len(acc.leads), "contacts": len(acc.contacts), "tasks": len(acc.tasks),
                        "webhooks": len(acc.webhooks)})


@bp.post("/generate")
def generate():
    acc = current().account
    ids = acc.generate_leads(arg("n", 100, int), arg("without_task_share", 0.1),
                             seed_value=arg("seed", int(time.time()), int))
    return jsonify({"created": len(ids), "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None})


@bp.get("/clock")
def clock():
    acc = current().account
    return jsonify({"now": acc.now(), "shift": acc.clock_shift})


@bp.post("/clock")
def clock_set():
    acc = current().account
    data = request.get_json(silent=True, force=True) or {}
    try:
        acc.set_clock(now=float(data["now"]) if "now" in data else None,
                      shift=float(data["shift"]) if "shift" in data else None)
    except (TypeError, ValueError):
        return jsonify({"error": "give {\"now\": unix time} or {\"shift\": seconds}"}), 400
    return jsonify({"now": acc.now(), "shift": acc.clock_shift})


@bp.post("/oauth/code")
def oauth_code():
    sandbox = current()
    i = sandbox.oauth.integration
    with sandbox.account.lock:
        referer = sandbox.account.info.base_link.split("://")[-1]
    # What amoCRM's redirect to redirect_uri would carry (referer: the account's domain).
    return jsonify({"code": sandbox.oauth.new_code(), "expires_in": CODE_TTL, "client_id": i.client_id,
                    "redirect_uri": i.redirect_uri, "referer": referer})


@bp.post("/oauth/expire")
def oauth_expire():
    return jsonify({"expired": current().oauth.expire_access_tokens()})


@bp.get("/oauth")
def oauth_state():
    return jsonify(current().oauth.summary())
