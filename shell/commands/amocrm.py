"""amoCRM subcommands: the local sandbox and the webhook subscription."""

from __future__ import annotations

import secrets

import click

from reglament import config
from shell.commands.common import ACCOUNT_OPTION, CONFIG_OPTION, load_settings, pick_account, redis_for


SANDBOX_TOKEN_ENV = "REGLAMENT_SANDBOX_TOKEN"


def hook_url(settings: config.Settings, account: config.Account) -> str:
    return f"{settings.public_url.rstrip('/')}/hooks/amocrm/{account.webhook_secret}"


def register_webhooks(settings: config.Settings, account: config.Account) -> str:
    from connectors import registry

    return registry.kind(account).register_webhooks(account, redis_for(settings), hook_url(settings, account))


def _accounts(settings: config.Settings, account_id: str | None) -> list[config.Account]:
    from connectors import registry

    if account_id:
        return [pick_account(settings, account_id)]
    return [a for a in settings.accounts if registry.supported(a)]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8001, show_default=True)
@click.option("--token", envvar=SANDBOX_TOKEN_ENV, default=None,
              help=f"the Bearer token API clients must send (or ${SANDBOX_TOKEN_ENV}, which keeps it off the "
                   "process list; generated and printed if neither is given)")
@click.option("--rate-limit", type=float, default=7.0, show_default=True, help="requests per sliding second; 0 = none")
@click.option("--seed", default=None, help="seed YAML of the account (default: the demo account)")
@click.option("--generate", type=int, default=0, help="add N generated leads")
def sandbox(host, port, token, rate_limit, seed, generate):
    """A local amoCRM account: API v4 subset, real-format webhooks and a web page.

    It writes no access log (its requests carry our webhook URL, secret included);
    GET /_sandbox/requests lists the requests it answered."""
    from sandbox.amocrm import SandboxAccount, SandboxServer

    account = SandboxAccount(seed)
    if generate:
        account.generate_leads(generate)
    # A token given is known to whoever gave it: only a generated one is printed (this line is
    # the standalone sandbox's banner; under `reglament run` the run's banner shows it).
    said = "token given" if token else None
    token = token or secrets.token_urlsafe(18)
    server = SandboxServer(account, token=token, rate_limit=rate_limit, host=host, port=port, quiet=True)
    click.echo(f"amoCRM sandbox at {server.url}/ (API {server.url}/api/v4, {said or 'token ' + token}, "
               f"{rate_limit:g} req/s)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@click.command("register-webhooks")
@CONFIG_OPTION
@ACCOUNT_OPTION
def register_webhooks_cmd(config_path, account_id):
    """Subscribe our webhook URL to the amoCRM events the rules need (idempotent)."""
    settings = load_settings(config_path)
    for account in _accounts(settings, account_id):
        click.echo(f"[{account.id}] {register_webhooks(settings, account)}")


@click.command("unregister-webhooks")
@CONFIG_OPTION
@ACCOUNT_OPTION
def unregister_webhooks_cmd(config_path, account_id):
    """Remove our webhook subscription from amoCRM."""
    from connectors import registry

    settings = load_settings(config_path)
    for account in _accounts(settings, account_id):
        done = registry.kind(account).unregister_webhooks(account, redis_for(settings), hook_url(settings, account))
        click.echo(f"[{account.id}] {done}")


commands = [sandbox, register_webhooks_cmd, unregister_webhooks_cmd]
