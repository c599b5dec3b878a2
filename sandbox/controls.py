"""The /_sandbox controls both sandboxes have: their request log and their webhook log over HTTP.

GET    /_sandbox/requests?since=N        the API requests answered (what each holds is the sandbox's own)
DELETE /_sandbox/requests                forget them
GET    /_sandbox/<deliveries>?since=N    webhook delivery attempts
DELETE /_sandbox/<deliveries>            forget them
POST   /_sandbox/<deliveries>/wait?timeout=5   wait until every queued delivery is done -> {"idle": bool}
POST   /_sandbox/faults {"statuses": [429, 503], "seconds": 120, "block_after": 0, "block_seconds": 60}
                                         answer every API request with these statuses in turn for a while
                                         (sandbox/faults.py; each sandbox gives them its own error bodies)
GET    /_sandbox/faults                  what is injected, and how many requests each status answered

The rest of /_sandbox is each sandbox's own (sandbox/amocrm/admin.py, sandbox/bitrix24/admin.py).
"""

from __future__ import annotations

from typing import Callable

from flask import Blueprint, Response, jsonify, request

from sandbox.faults import Faults
from sandbox.indexed_log import IndexedLog
from sandbox.outbox import Outbox


def arg(name: str, default, kind=float):
    """A number from the query string; the default when it is absent or not a number."""
    try:
        return kind(request.args.get(name, default))
    except ValueError:
        return default


def add_logs(bp: Blueprint, requests: Callable[[], IndexedLog], deliveries_path: str,
             deliveries: Callable[[], Outbox]) -> None:
    """Route the two logs on `bp` (mounted at /_sandbox); the callables find this app's logs."""

    @bp.get("/requests")
    def requests_log():
        return jsonify(requests().since(arg("since", 0, int)))

    @bp.delete("/requests")
    def requests_clear():
        requests().clear()
        return Response(status=204)

    @bp.get(f"/{deliveries_path}")
    def deliveries_log():
        return jsonify(deliveries().log(arg("since", 0, int)))

    @bp.delete(f"/{deliveries_path}")
    def deliveries_clear():
        deliveries().clear_log()
        return Response(status=204)

    @bp.post(f"/{deliveries_path}/wait")
    def deliveries_wait():
        return jsonify({"idle": deliveries().wait_idle(min(arg("timeout", 5.0), 60.0))})


def add_faults(bp: Blueprint, faults: Callable[[], Faults]) -> None:
    """Route /faults on `bp` (mounted at /_sandbox); the callable finds this app's Faults."""

    @bp.post("/faults")
    def faults_set():
        data = request.get_json(silent=True, force=True) or {}
        try:
            statuses = [int(s) for s in data.get("statuses", [])]
            if any(not 400 <= s <= 599 for s in statuses):
                raise ValueError
            faults().inject(statuses, float(data.get("seconds", 60)))
            if "block_after" in data:
                faults().set_block(int(data["block_after"]), float(data.get("block_seconds", 60)))
        except (TypeError, ValueError, AttributeError):
            return jsonify({"error": 'give {"statuses": [4xx or 5xx, ...], "seconds": n}'}), 400
        return jsonify(faults().state())

    @bp.get("/faults")
    def faults_state():
        return jsonify(faults().state())
