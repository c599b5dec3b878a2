"""Installing the Bitrix24 application end to end, on the Bitrix24 sandbox with real Redis:
the portal posts ONAPPINSTALL to our hook URL (POST /_sandbox/install), the receiver keeps
the install, the connector seeds its OAuth pair from it and calls the portal, events carry
the installed application token; an uninstall stops the calls and a reinstall repairs them."""

from __future__ import annotations

import logging

import pytest
import requests
import yaml
from click.testing import CliRunner

from app import create_app
from jobs import context, events
from connectors.bitrix24 import AuthError, Bitrix24Client
from reglament import bitrix24_install, keys
from reglament.config import Settings
from reglament.logs import Redactor
from sandbox.serving import BackgroundServer
from shell.cli import main
from tests.connectors.bitrix24.conftest import ACCOUNT, SANDBOX_CREDS
from tests.jobs_helpers import dispatch_all, queued_events

SECRET = "b24-install-hook-secret-0123456789"


def account_doc(portal) -> dict:
    return {"id": ACCOUNT, "crm": "bitrix24", "webhook_secret": SECRET, "bitrix24": {
        "portal": portal.url, "rate_limit": 1000, "catchup_seconds": 0,
        "oauth": {"client_id": SANDBOX_CREDS.client_id, "client_secret": SANDBOX_CREDS.client_secret,
                  "token_url": portal.url + "/oauth/token/"}}}


@pytest.fixture
def settings(portal):
    return Settings.model_validate({"public_url": "http://127.0.0.1", "accounts": [account_doc(portal)]})


@pytest.fixture
def receiver(settings, r):
    with BackgroundServer(create_app(settings, r), name="reglament-receiver") as server:
        server.hook = f"{server.url}/hooks/bitrix24/{SECRET}"
        yield server


def client_for(settings, r) -> Bitrix24Client:
    return Bitrix24Client(ACCOUNT, settings.accounts[0].bitrix24, r, backoff_base=0.001, backoff_max=0.004)


def dispatched(r) -> list[dict]:
    """The events of the inbox as the dispatcher enqueues them."""
    dispatch_all(r, [ACCOUNT])
    return queued_events(r)


def install(portal, receiver, what="install") -> dict:
    return requests.post(f"{portal.url}/_sandbox/{what}", json={"handler": receiver.hook}, timeout=10).json()


def granted(portal) -> int:
    return requests.get(portal.url + "/_sandbox/oauth", timeout=5).json()["granted"]["refresh_token"]


def portal_calls(portal) -> int:
    return len(requests.get(portal.url + "/_sandbox/requests", timeout=5).json())


def sent_tokens(portal) -> list[str]:
    """Every token the portal handed over in its install bodies."""
    from urllib.parse import parse_qsl

    found = []
    for e in requests.get(portal.url + "/_sandbox/events", timeout=5).json():
        if e["event"] != "ONAPPINSTALL":
            continue
        form = dict(parse_qsl(e["body"]))
        found += [form[k] for k in ("auth[access_token]", "auth[refresh_token]", "auth[application_token]") if k in form]
    return found


def test_install_then_calls_with_the_installed_pair_and_events_with_its_token(portal, receiver, settings, r,
                                                                            redis_url, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(Redactor(settings.secrets()))
    assert install(portal, receiver)["status"] == 200
    installed = bitrix24_install.read(r, ACCOUNT)
    assert installed.state == "installed" and installed.domain == f"127.0.0.1:{portal.port}"
    client = client_for(settings, r)
    assert client.call("user.current")["ID"] == "1"         # the installed refresh token, spent once
    assert granted(portal) == 1
    assert client_for(settings, r).call("crm.deal.get", {"id": 101})["ID"] == "101"
    assert granted(portal) == 1                               # the pair is shared, not seeded again

    # The install's job binds our hook to the portal's events (as register-webhooks would).
    context.set_settings(settings, r)
    [installed_event] = dispatched(r)
    assert installed_event["kind"] == "app.installed"
    assert events.handle_event(installed_event)["rules"] == ["subscribe"]
    bound = {b["event"] for b in client.call("event.get") if b["handler"] == settings.hook_url(settings.accounts[0])}
    assert {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMACTIVITYADD", "ONVOXIMPLANTCALLEND"} <= bound
    # This test's receiver listens on its own port, not at public_url: bind it too.
    assert client.call("event.bind", {"event": "ONCRMDEALADD", "handler": receiver.hook}) is True
    requests.post(portal.webhook_url + "crm.deal.add", json={"fields": {"TITLE": "Установка"}}, timeout=10)
    assert portal.wait_events(5)
    [event] = [e for e in requests.get(portal.url + "/_sandbox/events", timeout=5).json()
               if e["event"] == "ONCRMDEALADD" and e["handler"] == receiver.hook]
    assert event["status"] == 200
    stored = [f for _, f in r.xrange(keys.inbox(ACCOUNT))]
    assert [f[b"new"] for f in stored] == [b"1", b"1"]        # the install's event, then the deal's
    wrong = requests.post(receiver.hook, data=event["body"].replace(SANDBOX_CREDS.application_token, "x" * 22),
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=5)
    assert wrong.status_code == 403 and "installed application_token" in wrong.json()["error"]

    # No token the install handed over is in any copy we keep or any command's output.
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"redis_url": redis_url,
                                      "public_url": "http://127.0.0.1", "accounts": [account_doc(portal)]}))
    outputs = [CliRunner().invoke(main, [*command, "--config", str(config)]).output
               for command in (["rejected", "--body"], ["replay", "--since", "2000-01-01"], ["audit"], ["queue"])]
    assert "Re-enqueued 2 event(s) from 2 delivery(ies)." in outputs[1]
    assert "Проверено активных сделок" in outputs[2]
    tokens = sent_tokens(portal)
    assert len(tokens) == 3
    kept = [f[b"body"].decode() for f in stored] + [f[b"body"].decode() for _, f in r.xrange(keys.rejected(ACCOUNT))]
    for text in kept + outputs + [caplog.text]:
        for token in tokens[:2]:                               # the access and refresh tokens
            assert token not in text
    assert SANDBOX_CREDS.application_token not in stored[0][b"body"].decode() + caplog.text


def test_an_uninstall_stops_the_calls_and_a_reinstall_repairs_them(portal, receiver, settings, r):
    install(portal, receiver)
    client = client_for(settings, r)
    assert client.call("user.current")["ID"] == "1"
    assert install(portal, receiver, "uninstall")["status"] == 200
    assert bitrix24_install.read(r, ACCOUNT).uninstalled
    before = portal_calls(portal)
    with pytest.raises(AuthError) as refused:
        client.call("crm.deal.get", {"id": 101})
    assert "uninstalled from the portal" in str(refused.value) and "install the Bitrix24 application again" in \
        str(refused.value)
    assert portal_calls(portal) == before                      # nothing was sent to the portal
    assert install(portal, receiver)["status"] == 200          # the admin installs it again
    assert client.call("crm.deal.get", {"id": 101})["ID"] == "101"
    assert granted(portal) == 2


def test_a_reinstall_replaces_a_pair_that_still_works(portal, receiver, settings, r):
    install(portal, receiver)
    client = client_for(settings, r)
    client.call("user.current")
    first = r.hget(f"rg:{ACCOUNT}:bitrix24:oauth", "refresh_token")
    install(portal, receiver)
    assert client.call("user.current")["ID"] == "1"
    assert granted(portal) == 2 and r.hget(f"rg:{ACCOUNT}:bitrix24:oauth", "refresh_token") != first


def test_without_an_install_the_connector_says_what_to_do(portal, settings, r):
    with pytest.raises(AuthError) as refused:
        client_for(settings, r).call("user.current")
    assert "no OAuth token pair" in str(refused.value) and "handler URL" in str(refused.value)
    assert portal_calls(portal) == 0
