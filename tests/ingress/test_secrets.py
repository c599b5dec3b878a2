"""No token or webhook secret in a log line, an error body or /metrics."""

import io
import logging

import pytest

from reglament import logs
from tests.conftest import SECRET, TOKEN
from tests.fixtures import load

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def captured(settings):
    stream = io.StringIO()
    logs.setup("text", settings.secrets(), stream=stream)
    yield stream
    logs.setup()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secret_never_in_logs_errors_or_metrics(client, settings, captured, fmt):
    logs.setup(fmt, settings.secrets(), stream=captured, level=logging.DEBUG)
    bodies = []
    bodies.append(client.post(f"/hooks/amocrm/{SECRET}", data=load.amocrm("lead_added"), content_type=FORM))
    bodies.append(client.post(f"/hooks/amocrm/{SECRET}", data=b"junk", content_type=FORM))
    bodies.append(client.post(f"/hooks/amocrm/{SECRET}", data=b"{}", content_type="application/json"))
    bodies.append(client.post(f"/hooks/wazzup/{SECRET}", data=b"[", content_type="application/json"))
    bodies.append(client.post(f"/hooks/amocrm/{SECRET}x", data=b"", content_type=FORM))
    bodies.append(client.get("/metrics"))
    from tests.jobs_helpers import dispatch_all

    dispatch_all(client.application.extensions["reglament"].redis)  # it writes the line per event
    # Anything else that logs a secret by mistake is scrubbed at the handler.
    logging.getLogger("some.library").warning("calling with Authorization: Bearer %s on %s", TOKEN,
                                              f"/hooks/amocrm/{SECRET}")
    try:
        raise RuntimeError(f"token {TOKEN} rejected")
    except RuntimeError:
        logging.getLogger("some.library").exception("failed")
    out = captured.getvalue()
    assert "lead.added" in out and "/hooks/amocrm/***" in out
    for resp in bodies:
        text = resp.get_data(as_text=True)
        assert SECRET not in text and TOKEN not in text
    assert SECRET not in out and TOKEN not in out
    assert out.count("***") >= 5


def test_redact_path_keeps_the_rest():
    assert logs.redact_path(f"POST /hooks/wazzup/{SECRET}?x=1") == "POST /hooks/wazzup/***?x=1"
    assert logs.redact_path("/healthz") == "/healthz"
