"""HTTP answers in amoCRM's media types: application/hal+json on success, application/problem+json on error."""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import urlencode

from flask import Response, request

HAL = "application/hal+json"
PROBLEM = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          429: "Too Many Requests", 500: "Internal Server Error"}


def base() -> str:
    """The sandbox's own root URL, so `_links` point back at it and clients can follow them."""
    return request.host_url.rstrip("/")


def _json(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def hal(body: Any, status: int = 200) -> Response:
    return Response(_json(body), status=status, content_type=HAL)


def no_content() -> Response:
    # Empty lists and missing entities answer 204 with an empty body (CONFIRMED for lists).
    return Response(status=204)


def problem(status: int, detail: str, **extra: Any) -> Response:
    body = {"title": TITLES.get(status, "Error"), "type": f"https://httpstatus.es/{status}", "status": status,
            "detail": detail}
    body.update(extra)
    return Response(_json(body), status=status, content_type=PROBLEM)


def validation_problem(errors: list[dict]) -> Response:
    body = {"validation-errors": errors, "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400,
            "detail": "Request validation failed"}
    return Response(_json(body), status=400, content_type=PROBLEM)


def page_url(page: int, limit: int) -> str:
    """This request's URL with page/limit replaced, every other parameter kept as sent."""
    pairs = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "limit")]
    pairs += [("page", str(page)), ("limit", str(limit))]
    return f"{request.base_url}?{urlencode(pairs)}"


def listing(key: str, items: list, page: int, limit: int, render: Callable[[Any], dict],
            extra: dict | None = None) -> Response:
    """One page of a list: _page, _links.self/next (next only when more remain), _embedded[key]; 204 if empty."""
    start = (page - 1) * limit
    chunk = items[start:start + limit]
    if not chunk:
        return no_content()
    links = {"self": {"href": page_url(page, limit)}}
    if start + limit < len(items):
        links["next"] = {"href": page_url(page + 1, limit)}
    if page > 1:
        links["first"] = {"href": page_url(1, limit)}
        links["prev"] = {"href": page_url(page - 1, limit)}
    body = dict(extra or {})
    body.update({"_page": page, "_links": links, "_embedded": {key: [render(item) for item in chunk]}})
    return hal(body)
