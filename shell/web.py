"""`reglament web`: the Flask receiver under gunicorn."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from app import connect, create_app
from reglament import runtime


class _Gunicorn(BaseApplication):
    def __init__(self, load_app, options: dict):
        self.load_app = load_app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.load_app()


def app_from_config(config_path: str | None):
    settings, _ = runtime.start(config_path)  # also routes gunicorn's loggers through the redactor
    return create_app(settings, connect(runtime.redis_url(settings)))


def gunicorn_options(host: str, port: int, workers: int) -> dict:
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "sync",
        "accesslog": None,  # the app writes its own access line, with secrets redacted
        "errorlog": "-",
        "loglevel": "warning",
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 5,
    }


def serve(config_path: str | None, host: str, port: int, workers: int) -> None:
    _Gunicorn(lambda: app_from_config(config_path), gunicorn_options(host, port, workers)).run()
