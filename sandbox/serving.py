"""Running a sandbox's WSGI app: on a background thread (tests, benchmarks, the demo run) or in the foreground.

Generic: it knows nothing of the system the app imitates. Request lines are not logged by
default (sandboxes keep their own request logs); `log_line` lets a caller print its own,
e.g. with secrets in the path masked.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable, Self

from werkzeug.serving import WSGIRequestHandler, make_server


def _handler(log_line: Callable[[str, str, int], str | None] | None) -> type[WSGIRequestHandler]:
    class Handler(WSGIRequestHandler):
        def log_request(self, code="-", size="-") -> None:
            if log_line is None:
                return
            line = log_line(self.command, self.path, int(code) if str(code).isdigit() else 0)
            if line:
                print(line, file=sys.stderr, flush=True)

        def log_error(self, *args) -> None:  # e.g. a client that hung up; not worth a traceback here
            pass

    return Handler


class BackgroundServer:
    """A threaded werkzeug server for `app` on host:port (port 0 picks a free one).

        server = BackgroundServer(app).start()   # server.url is "http://127.0.0.1:<port>"
        ...
        server.stop()                            # or: with BackgroundServer(app) as server: ...

    Each sandbox's server subclasses it, adding what tests and benchmarks reach for.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, name: str = "sandbox",
                 log_line: Callable[[str, str, int], str | None] | None = None,
                 on_stop: Callable[[], None] | None = None):
        self._server = make_server(host, port, app, threaded=True, request_handler=_handler(log_line))
        self.host, self.port = host, self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self.name = name
        self._on_stop = on_stop   # e.g. stop the app's own sender threads once it serves no more
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._thread is None:
            # A short poll interval makes stop() quick; tests start and stop many servers.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=self.name, daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            if self._on_stop is not None:
                self._on_stop()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        if self._on_stop is not None:
            self._on_stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
