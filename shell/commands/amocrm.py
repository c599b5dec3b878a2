"""amoCRM subcommands: the webhook subscription."""

from __future__ import annotations

import click

from reglament import config
from shell.commands.common import ACCOUNT_OPTION, CONFIG_OPTION, load_settings, pick_account, redis_for


def register_webhooks(settings: config.Settings, account: config.Account) -> str:
    from connectors import registry

    return registry.kind(account).register_webhooks(account, redis_for(settings), settings.hook_url(account))


def _accounts(settings: config.Settings, account_id: str | None) -> list[config.Account]:
    from connectors import registry

    if account_id:
        return [pick_account(settings, account_id)]
    return [a for a in settings.accounts if registry.supported(a)]


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
        done = registry.kind(account).unregister_webhooks(account, redis_for(settings), settings.hook_url(account))
        click.echo(f"[{account.id}] {done}")


commands = [register_webhooks_cmd, unregister_webhooks_cmd]
