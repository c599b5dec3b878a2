"""The `backend` fixture: every contract test runs once against the reference-shaped mock and once
against the running sandbox, through the same AmoCRMClient.

Both backends expose what the tests need and nothing about their insides:
- `client(**opts)`: an AmoCRMClient for that backend (fast retries unless a test asks otherwise);
- `mark()` / `tally()`: the API requests the backend answered since the mark, as
  {(method, path with ids replaced by {id}): count}; `statuses()` the same by HTTP status;
- `limit_to(rate)`: the backend answers 429 beyond `rate` requests in any sliding second;
- `sent`: what the client put on the wire (method, path, query pairs, JSON body), recorded
  client-side so batch sizes and page sizes can be checked on either backend.
"""

from __future__ import annotations

import collections
import contextlib
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from connectors.amocrm import AmoCRMClient
from sandbox.amocrm import SandboxAccount, SandboxServer
from sandbox.amocrm.ratelimit import SlidingWindowLimiter
from reglament.config import AmoCRMSettings
from tests.connectors import amo_bodies
from tests.contract import world
from tests.contract.mock_amo import MockAmo

ACCOUNT = "contract"
FAST = 100_000  # requests per second: "no limit" for the tests that are not about the limit


def template(path: str) -> str:
    return re.sub(r"/\d+(?=/|$)", "/{id}", path)


class RecordingSession(requests.Session):
    """A requests.Session that remembers every request the client sends."""

    def __init__(self, sent: list):
        super().__init__()
        self._sent = sent

    def request(self, method, url, params=None, json=None, **kw):
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query) + [(k, str(v)) for k, v in (params or [])]
        self._sent.append((method.upper(), template(parts.path), pairs, json))
        return super().request(method, url, params=params, json=json, **kw)


class Backend:
    name: str
    base_url: str
    token = world.TOKEN

    def __init__(self, r):
        self.r = r
        self.sent: list[tuple[str, str, list, object]] = []
        self._mark = 0

    def client(self, *, rate_limit: float = FAST, **opts) -> AmoCRMClient:
        kw = dict(backoff_base=0.01, backoff_max=0.05, max_attempts=4,
                  session=RecordingSession(self.sent))
        kw.update(opts)
        settings = AmoCRMSettings(base_url=self.base_url, long_lived_token=self.token, rate_limit=rate_limit)
        return AmoCRMClient(ACCOUNT, settings, self.r, **kw)

    def answered(self) -> list[tuple[str, str, int]]:
        raise NotImplementedError

    def mark(self) -> None:
        self._mark = len(self.answered())
        self.sent.clear()

    def since_mark(self) -> list[tuple[str, str, int]]:
        return self.answered()[self._mark:]

    def tally(self) -> dict[tuple[str, str], int]:
        return dict(collections.Counter((m, template(p)) for m, p, _ in self.since_mark()))

    def statuses(self) -> dict[int, int]:
        return dict(collections.Counter(s for _, _, s in self.since_mark()))

    def bodies(self, method: str, path: str) -> list:
        return [body for m, p, _, body in self.sent if (m, p) == (method, path)]

    def queries(self, method: str, path: str) -> list[list[tuple[str, str]]]:
        return [pairs for m, p, pairs, _ in self.sent if (m, p) == (method, path)]

    def __repr__(self) -> str:
        return self.name


class MockBackend(Backend):
    name = "mock"
    base_url = amo_bodies.BASE

    def __init__(self, r, rsps: responses.RequestsMock):
        super().__init__(r)
        self.amo = MockAmo(rsps, self.base_url, self.token)

    def answered(self):
        return list(self.amo.log)

    @contextlib.contextmanager
    def limit_to(self, rate: float):
        self.amo.rate = rate
        try:
            yield
        finally:
            self.amo.rate = 0


class SandboxBackend(Backend):
    name = "sandbox"

    def __init__(self, r, server: SandboxServer):
        super().__init__(r)
        self.server = server
        self.base_url = server.url

    def answered(self):
        log = requests.get(f"{self.server.url}/_sandbox/requests", timeout=10).json()
        return [(e["method"], e["path"], e["status"]) for e in log]

    @contextlib.contextmanager
    def limit_to(self, rate: float):
        sandbox = self.server.sandbox
        saved, sandbox.limiter = sandbox.limiter, SlidingWindowLimiter(rate)
        try:
            yield
        finally:
            sandbox.limiter = saved


@pytest.fixture(params=["mock", "sandbox"])
def backend(request, r, tmp_path):
    if request.param == "mock":
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            yield MockBackend(r, rsps)
    else:
        account = SandboxAccount(world.write_seed(tmp_path / "contract_account.yaml"))
        with SandboxServer(account, token=world.TOKEN, rate_limit=FAST) as server:
            yield SandboxBackend(r, server)


@pytest.fixture
def client(backend) -> AmoCRMClient:
    return backend.client()
