"""Bitrix24 answer bodies for `responses` mocks, built from ../shared/reference/bitrix24.md's
CONFIRMED shapes (and the official docs' examples it cites)."""

from __future__ import annotations

import copy

from reglament.config import Bitrix24OAuth, Bitrix24Settings

PORTAL = "https://example.bitrix24.com"
CODE = "xk29fj3kd8slq0ab"                       # the webhook's secret code
WEBHOOK = f"{PORTAL}/rest/1/{CODE}/"
TOKEN_URL = "https://oauth.bitrix24.tech/oauth/token/"
CLIENT_SECRET = "LJSl0lNB76B5YY6u0YVQ3AW0DrVADcRTwVr4y99PXU1BWQybWK"
OLD_ACCESS, OLD_REFRESH = "s1morf609228iwyjjpvfv6wsvuja4p8u", "4f9k4jpmg13usmybzuqknt2v9fh0q6rl"
NEW_ACCESS, NEW_REFRESH = "ydtj8pho532wydb5ixk78ol7uqlb7sch", "3s6lr4kr3cv2od4v853gvrchb875bwxb"

# reference §3.3 (limits.md)
TIME = {"start": 1778747192.910734, "finish": 1778747193.530359, "duration": 0.6196250915527344,
        "processing": 0.032338857650756836, "date_start": "2026-05-14T10:26:32+02:00",
        "date_finish": "2026-05-14T10:26:33+02:00", "operating_reset_at": 1778747792,
        "operating": 3.3076241016387939}

# reference §3.6 / _includes/system-errors.md
QUERY_LIMIT = {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
TIME_LIMIT = {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit"}
EXPIRED = {"error": "expired_token", "error_description": "The access token provided has expired"}
INVALID_CREDENTIALS = {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}
NO_AUTH = {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}
METHOD_NOT_FOUND = {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
INSUFFICIENT_SCOPE = {"error": "insufficient_scope",
                      "error_description": "The request requires higher privileges than provided by the webhook token"}
INTERNAL = {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
NOT_FOUND = {"error": "", "error_description": "Not found"}
INVALID_GRANT = {"error": "invalid_grant", "error_description": "Invalid grant"}

# reference §4.4 / crm-deal-get.md (abridged: every value a string)
DEAL = {"ID": "7405", "TITLE": "Мария Соколова", "STAGE_ID": "UC_CAME", "CATEGORY_ID": "0",
        "STAGE_SEMANTIC_ID": "P", "CLOSED": "N", "ASSIGNED_BY_ID": "2", "DATE_CREATE": "2026-11-20T10:00:00+03:00",
        "DATE_MODIFY": "2026-11-23T12:00:00+03:00", "MOVED_TIME": "2026-11-23T12:00:00+03:00"}

# reference §4.5: an open to-do
TODO = {"ID": "999", "OWNER_TYPE_ID": "2", "OWNER_ID": "7405", "TYPE_ID": "6", "PROVIDER_ID": "CRM_TODO",
        "SUBJECT": "Продать", "COMPLETED": "N", "STATUS": "1", "DEADLINE": "2026-11-24T12:00:00+03:00",
        "RESPONSIBLE_ID": "2"}


def answer(result, **extra) -> dict:
    """{"result", "total"?, "next"?, "time"} (reference §3.4)."""
    return {"result": result, **extra, "time": dict(TIME)}


def deals(first: int, n: int) -> list[dict]:
    rows = []
    for i in range(first, first + n):
        d = copy.deepcopy(DEAL)
        d["ID"] = str(i)
        rows.append(d)
    return rows


def batch_answer(results: dict, errors: dict | None = None, totals: dict | None = None,
                 nexts: dict | None = None) -> dict:
    """batch.md's shape, with PHP's [] where a part is empty."""
    return {"result": {"result": results or [], "result_error": errors or [], "result_total": totals or [],
                       "result_next": nexts or [], "result_time": {k: dict(TIME) for k in results} or []},
            "time": dict(TIME)}


def token_pair(access=NEW_ACCESS, refresh=NEW_REFRESH) -> dict:
    """auto-renewal.md's answer."""
    return {"access_token": access, "client_endpoint": f"{PORTAL}/rest/", "domain": "oauth.bitrix24.tech",
            "expires": 1780319382, "expires_in": 3600, "member_id": "a223c6b3710f85df22e9377d6c4f7553",
            "refresh_token": refresh, "scope": "crm,entity,im,task",
            "server_endpoint": "https://oauth.bitrix24.tech/rest/", "status": "F", "user_id": 1}


def webhook_settings(**kw) -> Bitrix24Settings:
    return Bitrix24Settings(webhook_url=WEBHOOK, rate_limit=1000, **kw)


def oauth_settings(refresh_token: str | None = OLD_REFRESH, **kw) -> Bitrix24Settings:
    return Bitrix24Settings(portal=PORTAL, rate_limit=1000, oauth=Bitrix24OAuth(
        client_id="app.573ad8a0346747.09223434", client_secret=CLIENT_SECRET, refresh_token=refresh_token,
        token_url=TOKEN_URL), **kw)
