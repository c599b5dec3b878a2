"""Messaging subcommands: the outbox of messages no channel carried."""

from __future__ import annotations

from datetime import datetime

import click

from reglament import config


@click.command()
@click.option("--config", "config_path", envvar=config.CONFIG_ENV, default=None,
              help=f"configuration file (or ${config.CONFIG_ENV})")
@click.option("--account", "account_id")
@click.option("--limit", type=int, default=20, show_default=True)
def outbox(config_path, account_id, limit):
    """List messages that went to the outbox (no provider configured), newest first."""
    # CONFIG_OPTION is not imported from reglament.cli: that module imports this one while loading.
    from connectors.outbox import Outbox, one_line
    from reglament.cli import _account, _redis, _settings

    settings = _settings(config_path)
    account = _account(settings, account_id)
    entries = Outbox(_redis(settings), account.id).entries(limit)
    if not entries:
        click.echo(f"[{account.id}] the outbox is empty")
    for e in entries:
        at = datetime.fromtimestamp(e.at).isoformat(sep=" ", timespec="seconds")
        text = f"{e.subject}: {e.text}" if e.subject else e.text
        click.echo(f"{at}  {e.kind:<6}  {e.recipient}  {one_line(text)}")


commands = [outbox]
