"""The REST entry points: /rest/<user>/<code>/<method>[.json] and /rest/<method>?auth=..., and the token endpoint.

Parameters come from the query string and the body (JSON, or form with PHP-style keys),
the body winning. The answer is {"result", "total"?, "next"?, "time"} with 200, or
{"error", "error_description"} with the status Bitrix24 uses. The order of checks:
authorisation, an injected fault (/_sandbox/faults), the leaky bucket, then the method. Every call is recorded in the request
log with the webhook code masked; token requests are logged without their query.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, request

from . import errors, methods
from .auth import OAuthError, SCOPE
from .context import current, elapsed_ms
from .errors import ApiError
from .params import BadParams, Params, from_query_string, nest, split_command

bp = Blueprint("bitrix24_rest", __name__)


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json; charset=utf-8")


def _params() -> dict:
    data = from_query_string(request.query_string.decode("latin-1"))
    raw = request.get_data(cache=True)
    if request.mimetype == "application/json" or (raw[:1] in (b"{", b"[") and not request.form):
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise BadParams("Request body is not valid JSON.") from None
            if not isinstance(body, dict):
                raise BadParams("Request body must be a JSON object.")
            data.update(body)
    elif request.form:
        data.update(nest(request.form.items(multi=True)))
    return data


def masked(path: str) -> str:
    """/rest/1/<code>/crm.deal.list -> /rest/1/***/crm.deal.list (the code is a secret)."""
    parts = path.split("/")
    if len(parts) >= 5 and parts[1] == "rest" and parts[2].isdigit():
        parts[3] = "***"
    return "/".join(parts)


@bp.route("/rest/<path:rest>", methods=["GET", "POST"])
def rest(rest: str) -> Response:
    sandbox = current()
    started_at, started = sandbox.portal.now(), time.perf_counter()
    parts = [p for p in rest.split("/") if p]
    name, caller, commands = (parts[-1] if parts else ""), None, None
    try:
        data = _params()
        token = data.pop("auth", None)
        if len(parts) == 3:
            caller = sandbox.auth.webhook(parts[0], parts[1])
        elif len(parts) == 1:
            caller = sandbox.auth.token(token)
        else:
            raise errors.method_not_found(rest)
        fault = sandbox.faults.answer()
        if fault:
            raise errors.injected(fault)
        if not sandbox.bucket.allow():
            raise errors.query_limit()
        name = name.removesuffix(".json")
        if name.lower() == "batch":
            cmd = data.get("cmd")
            listed = cmd.values() if isinstance(cmd, dict) else (cmd if isinstance(cmd, list) else [])
            commands = [split_command(c)[0] for c in listed]
        answer = methods.call(sandbox, name, Params(data), caller)
        body = {"result": answer.result}
        if answer.next is not None:
            body["next"] = answer.next
        if answer.total is not None:
            body["total"] = answer.total
        body["time"] = methods.time_block(sandbox, started_at, started, name)
        status = 200
    except BadParams as e:
        body, status = errors.from_bad_params(e).body(), 400
    except ApiError as e:
        body, status = e.body(), e.status
    sandbox.requests.add({"time": started_at, "http_method": request.method, "path": masked(request.path),
                          "method": name, "auth": caller.kind if caller else None,
                          "user_id": caller.user_id if caller else None, "status": status,
                          "error": body.get("error") if status != 200 else None, "commands": commands,
                          "duration_ms": elapsed_ms(started)})
    return _json(body, status)


@bp.route("/oauth/token/", methods=["GET", "POST"])
@bp.route("/oauth/token", methods=["GET", "POST"])
def token() -> Response:
    sandbox = current()
    started = time.perf_counter()
    args = {**request.args.to_dict(), **request.form.to_dict()}
    try:
        pair = sandbox.auth.grant(args)
        p = sandbox.portal
        body = {"access_token": pair["access_token"], "expires": pair["expires"], "expires_in": pair["expires_in"],
                "scope": SCOPE, "domain": "oauth.bitrix.info", "server_endpoint": p.base_url.rstrip("/") + "/rest/",
                "status": "L", "client_endpoint": p.client_endpoint, "member_id": p.info["member_id"],
                "user_id": pair["user_id"], "refresh_token": pair["refresh_token"]}
        status = 200
    except OAuthError as e:
        body, status = {"error": e.code, "error_description": e.description}, 400
    sandbox.requests.add({"time": sandbox.portal.now(), "http_method": request.method, "path": request.path,
                          "method": "oauth.token", "auth": None, "user_id": None, "status": status,
                          "error": body.get("error"), "commands": None, "duration_ms": elapsed_ms(started)})
    return _json(body, status)
