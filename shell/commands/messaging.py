"""Messaging subcommands: the outbox of messages no channel carried."""

from __future__ import annotations

from datetime import datetime

import click

from shell.commands.common import ACCOUNT_OPTION, CONFIG_OPTION, load_settings, pick_account, redis_for


@click.command()
@CONFIG_OPTION
@ACCOUNT_OPTION
@click.option("--limit", type=int, default=20, show_default=True)
def outbox(config_path, account_id, limit):
    """List messages that went to the outbox (no provider configured), newest first."""
    from connectors.outbox import Outbox, one_line

    settings = load_settings(config_path)
    account = pick_account(settings, account_id)
    entries = Outbox(redis_for(settings), account.id).entries(limit)
    if not entries:
        click.echo(f"[{account.id}] the outbox is empty")
    for e in entries:
        at = datetime.fromtimestamp(e.at).isoformat(sep=" ", timespec="seconds")
        text = f"{e.subject}: {e.text}" if e.subject else e.text
        click.echo(f"{at}  {e.kind:<6}  {e.recipient}  {one_line(text)}")


commands = [outbox]
