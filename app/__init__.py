"""The webhook receiver: a Flask application factory with one blueprint per source."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from flask import Flask, g, jsonify, request

from app.ingress import Ingress
from app.receive import Accounts
from reglament.config import Settings
from reglament.logs import redact_path

access_log = logging.getLogger("reglament.access")


@dataclass
class Context:
    settings: Settings
    redis: redis.Redis
    accounts: Accounts
    ingress: Ingress


def connect(url: str) -> redis.Redis:
    # Short timeouts: a webhook must be answered (with 503 if need be) within amoCRM's 2 s.
    return redis.Redis.from_url(url, socket_timeout=1.5, socket_connect_timeout=1.0, health_check_interval=30)


def create_app(settings: Settings, r: redis.Redis) -> Flask:
    from app.amocrm.views import bp as amocrm_bp
    from app.bitrix24.views import bp as bitrix24_bp
    from app.dashboard import bp as dashboard_bp
    from app.health import bp as health_bp
    from app.telephony.views import bp as telephony_bp
    from app.wazzup.views import bp as wazzup_bp

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False
    app.extensions["reglament"] = Context(
        settings=settings,
        redis=r,
        accounts=Accounts(settings.accounts),
        ingress=Ingress(r, settings.dedupe_ttl_seconds, settings.raw_retention_hours,
                        settings.rejected_keep, settings.rejected_ttl_hours),
    )
    for bp in (amocrm_bp, bitrix24_bp, wazzup_bp, telephony_bp, health_bp, dashboard_bp):
        app.register_blueprint(bp)

    @app.before_request
    def _start():
        g.started = time.perf_counter()

    @app.after_request
    def _access(response):
        # Our own access line, with the secret part of hook paths redacted. Debug level: each
        # webhook already logs one line per event or rejection.
        access_log.debug("%s %s %s %.1fms", request.method, redact_path(request.path), response.status_code,
                        (time.perf_counter() - g.get("started", time.perf_counter())) * 1000)
        return response

    @app.errorhandler(404)
    def _not_found(e):
        return jsonify({"error": "not found"}), 404

    @app.errorhandler(405)
    def _method(e):
        return jsonify({"error": "method not allowed"}), 405

    @app.errorhandler(413)
    def _too_large(e):
        return jsonify({"error": "body too large"}), 413

    @app.errorhandler(400)
    def _bad(e):
        return jsonify({"error": "bad request"}), 400

    return app
