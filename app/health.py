"""Liveness, readiness and metrics."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, current_app, jsonify
from rq import Queue, Worker
from rq.registry import FailedJobRegistry

from reglament import metrics

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    r = current_app.extensions["reglament"].redis
    problems = []
    try:
        r.ping()
        if Worker.count(connection=r) == 0:
            problems.append("no worker is running")
    except redis.RedisError:
        problems.append("Redis is unreachable")
    if problems:
        return jsonify({"status": "not ready", "problems": problems}), 503
    return jsonify({"status": "ready"})


@bp.get("/metrics")
def metrics_view():
    from jobs import account_health, timers
    from jobs.queues import QUEUES

    ctx = current_app.extensions["reglament"]
    r = ctx.redis
    try:
        depth = [({"queue": name}, Queue(name, connection=r).count) for name in QUEUES]
        failed = [({"queue": name}, FailedJobRegistry(name, connection=r).count) for name in QUEUES]
        waiting, late = timers.lag(r)
        accounts = [a.id for a in ctx.settings.accounts]
        body = metrics.render(r, accounts,
                              {"queue_depth": depth, "failed_jobs": failed,
                               "timers_waiting": [({}, waiting)], "timers_overdue_seconds": [({}, late)],
                               **account_health.gauges(r, ctx.settings.accounts)})
    except redis.RedisError:
        return jsonify({"error": "Redis is unreachable"}), 503
    return Response(body, mimetype="text/plain; version=0.0.4")
