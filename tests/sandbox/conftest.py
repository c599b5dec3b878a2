"""Fixtures for the amoCRM sandbox tests: a running sandbox and a local webhook receiver.

The tests talk to the sandbox the way an outside client would: plain `requests` calls
written from the public API docs, never through the sandbox's Python objects, except
where a test sets up data (e.g. many generated leads).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from sandbox.amocrm import SandboxAccount, SandboxServer

TOKEN = "test-token-123"


class Receiver:
    """A tiny HTTP server recording every POST; `answers` lists the status codes to give, then 200."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.answers: list[int] = []
        self.delay = 0.0
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("ascii")
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._cond:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.posts.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                           "form": dict(parse_qsl(raw, keep_blank_values=True)), "answered": status})
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.posts) < count and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return list(self.posts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def amo():
    """A sandbox with the demo account and no rate limit (rate-limit tests start their own)."""
    with SandboxServer(token=TOKEN, rate_limit=0, webhook_retry_delays=(0.2, 0.2)) as server:
        yield server


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def demo() -> SandboxAccount:
    return SandboxAccount()
