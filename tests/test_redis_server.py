"""The embedded redis-server: one per directory, its address published there."""

from reglament.runtime import published
from shell.redis_server import RedisServer, stale_pid


def test_a_server_left_on_the_directory_is_stopped_before_a_new_one_starts(tmp_path):
    left = RedisServer(tmp_path / "redis", fsync="no").start()  # as if its run had been killed elsewhere
    assert stale_pid(tmp_path / "redis") == left.process.pid
    assert published(tmp_path / "redis") == left.url
    new = RedisServer(tmp_path / "redis", fsync="no").start()
    try:
        assert left.process.wait(5) == 0  # SIGTERM: it flushed its file and exited
        assert stale_pid(tmp_path / "redis") == new.process.pid
        assert published(tmp_path / "redis") == new.url
    finally:
        new.stop()
    assert published(tmp_path / "redis") is None and stale_pid(tmp_path / "redis") is None
