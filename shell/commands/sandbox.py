"""`reglament sandbox`: a local amoCRM account or Bitrix24 portal, alone.

Secrets never go on the command line, where `ps` shows them to every local user: the
amoCRM token comes from $REGLAMENT_SANDBOX_TOKEN (or --token, for a throwaway one), the
Bitrix24 webhook and application secrets from $B24_SANDBOX_* or an owner-only --secrets
file. Only a generated secret is printed: one given is known to whoever gave it, and under
`reglament run` the run's banner shows them."""

from __future__ import annotations

import os
import secrets
import stat
import sys

import click
import yaml

SANDBOX_TOKEN_ENV = "REGLAMENT_SANDBOX_TOKEN"
B24_ENV = "B24_SANDBOX_"  # + WEBHOOK ("<user>/<code>"), CLIENT_ID, CLIENT_SECRET, APPLICATION_TOKEN


@click.command()
@click.option("--crm", type=click.Choice(["amocrm", "bitrix24"]), default="amocrm", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8001, show_default=True)
@click.option("--token", envvar=SANDBOX_TOKEN_ENV, default=None,
              help=f"amoCRM: the Bearer token API clients must send (or ${SANDBOX_TOKEN_ENV}, which keeps it off the "
                   "process list; generated and printed if neither is given)")
@click.option("--secrets", "secrets_file", default=None,
              help=f"Bitrix24: an owner-only YAML file with webhook (\"<user>/<code>\"), client_id, client_secret, "
                   f"application_token (or ${B24_ENV}WEBHOOK, ...); whatever is missing is generated and printed")
@click.option("--rate-limit", type=float, default=None,
              help="requests per second; 0 = none [amoCRM: 7 in a sliding second; Bitrix24: 2, its leaky bucket]")
@click.option("--burst", type=int, default=50, show_default=True, help="Bitrix24: requests its bucket lets through at once")
@click.option("--seed", default=None, help="seed YAML (default: the demo account or portal)")
@click.option("--generate", type=int, default=0, help="add N generated leads (amoCRM) or deals (Bitrix24)")
def sandbox(crm, host, port, token, secrets_file, rate_limit, burst, seed, generate):
    """A local CRM: amoCRM's API v4 subset or Bitrix24's REST subset, real-format webhooks
    and a web page.

    It writes no access log (its requests carry our webhook URL, secret included);
    GET /_sandbox/requests lists the requests it answered."""
    if crm == "bitrix24":
        _bitrix24(host, port, secrets_file, 2.0 if rate_limit is None else rate_limit, burst, seed, generate)
        return
    from sandbox.amocrm import SandboxAccount, SandboxServer

    rate_limit = 7.0 if rate_limit is None else rate_limit
    account = SandboxAccount(seed)
    if generate:
        account.generate_leads(generate)
    said = "token given" if token else None
    token = token or secrets.token_urlsafe(18)
    server = SandboxServer(account, token=token, rate_limit=rate_limit, host=host, port=port, quiet=True)
    click.echo(f"amoCRM sandbox at {server.url}/ (API {server.url}/api/v4, {said or 'token ' + token}, "
               f"{rate_limit:g} req/s)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def _owner_only(path: str) -> None:
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise click.UsageError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")


def _bitrix24(host, port, secrets_file, rate, burst, seed, generate) -> None:
    from sandbox.bitrix24 import Portal, PortalServer
    from sandbox.bitrix24.__main__ import NAMES, credentials
    from sandbox.bitrix24.seed import generate_deals

    if secrets_file:
        _owner_only(secrets_file)
    try:
        creds = credentials(secrets_file)
    except (OSError, ValueError, yaml.YAMLError) as e:
        sys.exit(f"reglament sandbox: {e}")
    given = {n for n in NAMES if os.environ.get(B24_ENV + n.upper())}
    if secrets_file:
        with open(secrets_file, encoding="utf-8") as f:
            given |= set(yaml.safe_load(f) or {}) & set(NAMES)
    portal = Portal(seed)
    if generate:
        with portal.lock:
            generate_deals(portal, generate, 0.1, 0)
    server = PortalServer(portal, creds, rate=rate, burst=burst, host=host, port=port, quiet=True)
    shown = {"webhook": f"incoming webhook {server.webhook_url}", "client_id": f"client_id {creds.client_id}",
             "client_secret": f"client_secret {creds.client_secret}",
             "application_token": f"application token {creds.application_token}"}
    said = ", ".join(shown[n] if n not in given else f"{n.replace('_', ' ')} given" for n in NAMES)
    click.echo(f"Bitrix24 sandbox at {server.url}/ ({said}; {rate:g} req/s, burst {burst})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


commands = [sandbox]
