"""The Bitrix24 application's install and uninstall at /hooks/bitrix24/<secret>: the trust
rule (app/bitrix24/install.py), the record in Redis, and no token in any copy we keep."""

import logging
from urllib.parse import urlencode

import pytest

from app import create_app
from app.bitrix24 import parser
from reglament import bitrix24_install, keys
from tests.conftest import B24_ACCOUNT, B24_SECRET, make_settings
from tests.fixtures import load
from tests.jobs_helpers import dispatch_all, queued_events

FORM = "application/x-www-form-urlencoded"
PATH = f"/hooks/bitrix24/{B24_SECRET}"
DOC = dict(load.amocrm_pairs("app_installed", "bitrix24"))
APP_TOKEN, REFRESH, ACCESS = DOC["auth[application_token]"], DOC["auth[refresh_token]"], DOC["auth[access_token]"]
MEMBER = DOC["auth[member_id]"]
OAUTH = {"webhook_url": None, "portal": "some-domain.bitrix24.com", "application_token": None, "member_id": None,
         "oauth": {"client_id": "local.1", "client_secret": "app-secret-0123456789"}}


def app_for(r, **bitrix24):
    settings = make_settings(accounts=[B24_ACCOUNT | {"bitrix24": B24_ACCOUNT["bitrix24"] | OAUTH | bitrix24}])
    return create_app(settings, r).test_client()


@pytest.fixture
def b24(r):
    return app_for(r)


def body(name, **changed):
    pairs = dict(load.amocrm_pairs(name, "bitrix24"))
    return urlencode({k: v for k, v in (pairs | changed).items() if v is not None}).encode()


def post(client, data):
    return client.post(PATH, data=data, content_type=FORM)


def deal_added(token=APP_TOKEN, member=MEMBER):
    return body("deal_added_application", **{"auth[application_token]": token, "auth[member_id]": member})


def record(r):
    return bitrix24_install.read(r, "b24")


def no_token_in(text) -> None:
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    for secret in (APP_TOKEN, REFRESH, ACCESS, "fresh-refresh-0002", "fresh-app-token-0002"):
        assert secret not in text


@pytest.mark.parametrize("name, version, language", [("app_installed", "1.0.0", "de"),
                                                      ("app_installed_callback", "1", "ru")])
def test_an_install_parses_field_by_field(name, version, language):
    parsed = parser.parse(load.bitrix24(name), "b24")
    assert (parsed.ignored, parsed.lifecycle) == ([], "ONAPPINSTALL")
    [installed] = parsed.events                     # its job binds our handler to the portal's events
    assert (installed.kind, installed.entity_id) == ("app.installed", MEMBER)
    assert installed.fields == {"member_id": MEMBER, "domain": "some-domain.bitrix24.com", "at": installed.fields["at"]}
    assert (parsed.domain, parsed.member_id) == ("some-domain.bitrix24.com", MEMBER)
    assert (parsed.application_token, parsed.refresh_token) == (APP_TOKEN, REFRESH)
    assert (parsed.version, parsed.language_id) == (version, language)
    no_token_in(repr(parsed))


def test_an_uninstall_parses_field_by_field():
    parsed = parser.parse(load.bitrix24("app_uninstalled"), "b24")
    assert (parsed.events, parsed.ignored, parsed.lifecycle) == ([], [], "ONAPPUNINSTALL")
    assert (parsed.domain, parsed.member_id, parsed.application_token, parsed.refresh_token) == \
        ("some-domain.bitrix24.com", MEMBER, APP_TOKEN, None)


@pytest.mark.parametrize("name", ["app_installed", "app_installed_callback"])
def test_the_first_install_is_stored_and_its_token_then_admits_events(b24, r, name, caplog):
    caplog.set_level(logging.DEBUG)
    resp = post(b24, load.bitrix24(name))
    assert resp.status_code == 200 and resp.json["installed"] is True
    found = record(r)
    assert (found.state, found.member_id, found.domain) == ("installed", MEMBER, "some-domain.bitrix24.com")
    assert (found.application_token, found.refresh_token) == (APP_TOKEN, REFRESH)
    assert post(b24, deal_added()).json["accepted"] == 1
    wrong = post(b24, deal_added(token=APP_TOKEN[:-1] + "x"))
    assert wrong.status_code == 403
    assert wrong.json["error"] == "auth[application_token] does not match the installed application_token"
    other = post(b24, deal_added(member="d897063e1ce7c5eb9f04b9751eef5915"))
    assert other.status_code == 403 and other.json["error"].endswith("not the installed one")
    no_token_in(resp.get_data() + wrong.get_data() + caplog.text.encode())
    assert "Bitrix24 application installed in some-domain.bitrix24.com" in caplog.text


def test_no_copy_of_an_install_keeps_a_token(b24, r, caplog):
    """The inbox entry, the rejected bodies, the dispatcher's pass and the log."""
    caplog.set_level(logging.DEBUG)
    post(b24, load.bitrix24("app_installed"))
    refused = body("app_installed", **{"auth[member_id]": "another-member",
                                       "auth[refresh_token]": "fresh-refresh-0002",
                                       "auth[application_token]": "fresh-app-token-0002"})
    assert post(b24, refused).status_code == 403
    as_json = b'{"event": "ONAPPINSTALL", "auth": {"refresh_token": "fresh-refresh-0002"}}'
    assert b24.post(PATH, data=as_json, content_type="application/json").status_code == 415
    [(_, kept)] = r.xrange(keys.inbox("b24"))
    for name in (b"access_token", b"refresh_token", b"application_token"):
        assert b"auth%5B" + name + b"%5D=***" in kept[b"body"]
    rejected = r.xrange(keys.rejected("b24"))
    assert len(rejected) == 2 and b"***" in rejected[1][1][b"body"]
    dispatch_all(r, ["b24"])
    [installed] = queued_events(r)                   # the job that binds our handler, with no token
    assert installed["kind"] == "app.installed"
    assert not any(k.startswith(b"job_failures_total") for k in r.hgetall(keys.metrics("b24")))
    for text in [kept[b"body"], caplog.text, str(installed).encode()] + [f[b"body"] for _, f in rejected]:
        no_token_in(text)


def test_a_reinstall_from_the_same_portal_replaces_the_tokens_at_once(b24, r):
    assert post(b24, load.bitrix24("app_installed")).status_code == 200
    assert post(b24, deal_added()).status_code == 200          # the installed token, now cached
    again = body("app_installed", **{"auth[refresh_token]": "fresh-refresh-0002",
                                     "auth[application_token]": "fresh-app-token-0002"})
    assert post(b24, again).status_code == 200
    assert (record(r).refresh_token, record(r).application_token) == ("fresh-refresh-0002", "fresh-app-token-0002")
    assert post(b24, deal_added("fresh-app-token-0002")).status_code == 200
    # Another receiver process, whose cache still holds the old token, takes the new one too.
    assert post(app_for(r), deal_added("fresh-app-token-0002")).status_code == 200
    assert post(b24, deal_added()).status_code == 403


def test_an_install_from_another_portal_or_member_is_403(b24, r):
    assert post(b24, body("app_installed", **{"auth[domain]": "evil.bitrix24.com"})).json["error"] == \
        "install is from portal 'evil.bitrix24.com', not some-domain.bitrix24.com"
    assert record(r) is None
    assert post(b24, load.bitrix24("app_installed")).status_code == 200
    other = post(b24, body("app_installed", **{"auth[member_id]": "another-member"}))
    assert other.status_code == 403
    assert other.json["error"] == (f"install is from portal member_id 'another-member', but the application is "
                                   f"installed in member_id '{MEMBER}'")
    assert record(r).member_id == MEMBER and record(r).refresh_token == REFRESH
    assert [f[b"code"] for _, f in r.xrange(keys.rejected("b24"))] == [b"account_mismatch"] * 2


def test_a_configured_token_needs_a_configured_member_id_to_accept_a_reinstall(r):
    unknown = post(app_for(r, application_token=APP_TOKEN), load.bitrix24("app_installed"))
    assert unknown.status_code == 403 and "configure bitrix24.member_id" in unknown.json["error"]
    same = post(app_for(r, application_token=APP_TOKEN, member_id=MEMBER), load.bitrix24("app_installed"))
    assert same.status_code == 200 and record(r).refresh_token == REFRESH
    other = post(app_for(r, application_token=APP_TOKEN, member_id="d897063e1ce7c5eb9f04b9751eef5915"),
                 load.bitrix24("app_installed"))
    assert other.status_code == 403 and "installed in member_id 'd897063e1ce7c5eb9f04b9751eef5915'" in other.json["error"]


def test_an_incoming_webhook_account_takes_no_install(r):
    client = create_app(make_settings(accounts=[B24_ACCOUNT]), r).test_client()
    for name in ("app_installed", "app_uninstalled"):
        resp = post(client, body(name, **{"auth[application_token]": B24_ACCOUNT["bitrix24"]["application_token"],
                                          "auth[member_id]": B24_ACCOUNT["bitrix24"]["member_id"]}))
        assert resp.status_code == 403 and "incoming webhook" in resp.json["error"]
    assert record(r) is None


@pytest.mark.parametrize("missing", ["member_id", "application_token", "refresh_token"])
def test_an_install_without_what_it_must_hand_over_is_400(b24, r, missing):
    resp = post(b24, body("app_installed", **{f"auth[{missing}]": None}))
    assert resp.status_code == 400 and resp.json["error"] == f"ONAPPINSTALL has no auth[{missing}]"
    assert record(r) is None


def test_an_uninstall_is_checked_against_the_installed_token_and_marks_the_record(b24, r, caplog):
    caplog.set_level(logging.INFO)
    assert post(b24, load.bitrix24("app_uninstalled")).status_code == 403        # nothing installed: no token known
    post(b24, load.bitrix24("app_installed"))
    wrong = post(b24, body("app_uninstalled", **{"auth[application_token]": "x" * 32}))
    assert wrong.status_code == 403 and record(r).state == "installed"
    resp = post(b24, load.bitrix24("app_uninstalled"))
    assert resp.status_code == 200 and resp.json["uninstalled"] is True
    found = record(r)
    assert (found.state, found.refresh_token, found.member_id) == ("uninstalled", None, MEMBER)
    assert found.uninstalled_at and found.installed_at
    assert caplog.text.count("Bitrix24 application uninstalled from the portal") == 1
    # A reinstall from the same portal is accepted and installs it again.
    assert post(b24, load.bitrix24("app_installed")).status_code == 200 and record(r).state == "installed"


def test_a_configured_token_is_never_looked_up_and_an_installed_one_once_a_minute(r):
    configured = app_for(r, application_token=APP_TOKEN, member_id=MEMBER)
    r.config_resetstat()
    for ts in range(3):
        assert post(configured, deal_added() + f"&ts={ts}".encode()).status_code == 200
    assert "cmdstat_hgetall" not in r.info("commandstats")
    installed = app_for(r)
    post(installed, load.bitrix24("app_installed"))
    fresh = app_for(r)                   # another process: reads once, then from its cache
    r.config_resetstat()
    for ts in range(3):
        assert post(fresh, deal_added() + f"&ts={ts}".encode()).status_code == 200
    assert r.info("commandstats")["cmdstat_hgetall"]["calls"] == 1
