"""The bitrix24: section of an account: one way to authenticate, clear problems, secrets known to the log filter."""

from __future__ import annotations

import pytest

from reglament.config import ConfigError, parse

DOC = """
accounts:
  - id: school
    crm: bitrix24
    webhook_secret: s3cret-webhook-path-0123456789
    bitrix24:
{section}
"""


def load(section: str):
    return parse(DOC.format(section="\n".join("      " + line for line in section.strip().splitlines())))


def test_a_webhook_from_the_environment(monkeypatch):
    monkeypatch.setenv("B24_HOOK", "https://school.bitrix24.ru/rest/1/h0oKc0de42x/")
    monkeypatch.setenv("B24_APP", "jvh9y1ulvt2m6k5or90v9mg8nn32ozas")
    b24 = load("webhook_url: ${B24_HOOK}\napplication_token: ${B24_APP}").accounts[0].bitrix24
    assert (b24.portal_url, b24.rate_limit, b24.burst, b24.entity, b24.next_step) == \
        ("https://school.bitrix24.ru", 2.0, 50, "deals", "todo")


def test_oauth_needs_the_portal_and_knows_its_secrets():
    settings = load("portal: school.bitrix24.ru\noauth:\n  client_id: local.1\n  client_secret: cl1ent-s3cret\n"
                    "  refresh_token: r3fresh-t0ken\nentity: leads\nnext_step: task")
    b24 = settings.accounts[0].bitrix24
    assert b24.portal_url == "https://school.bitrix24.ru" and b24.oauth.token_url.endswith("/oauth/token/")
    assert {"cl1ent-s3cret", "r3fresh-t0ken"} <= set(settings.secrets())
    with pytest.raises(ConfigError, match="oauth needs portal"):
        load("oauth:\n  client_id: local.1\n  client_secret: x")


def test_the_webhook_code_alone_is_a_secret_too():
    settings = load("webhook_url: https://school.bitrix24.ru/rest/7/h0oKc0de42x")
    assert settings.accounts[0].bitrix24.webhook_url.endswith("/h0oKc0de42x/")
    assert "h0oKc0de42x" in settings.secrets()


@pytest.mark.parametrize("section, problem", [
    ("rate_limit: 2", "exactly one of webhook_url or oauth"),
    ("webhook_url: https://school.bitrix24.ru/rest/crm.deal.list", "must look like https://<portal>/rest/<user id>/<code>/"),
    ("webhook_url: https://school.bitrix24.ru/rest/1/abc/\nentity: contacts", "bitrix24.entity"),
    ("webhook_url: https://school.bitrix24.ru/rest/1/abc/\nburst: 0", "bitrix24.burst"),
])
def test_problems_say_where_and_what(section, problem):
    with pytest.raises(ConfigError) as caught:
        load(section)
    assert problem in str(caught.value) and "line " in str(caught.value)
