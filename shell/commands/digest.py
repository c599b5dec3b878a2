"""`reglament digest`: the heads' digest of violations (DIGEST) for any day, printed or sent."""

from __future__ import annotations

import click

from shell.commands.common import ACCOUNT_OPTION, CONFIG_OPTION, job_context


@click.command()
@CONFIG_OPTION
@ACCOUNT_OPTION
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d", "%d.%m.%Y"]), default=None,
              help="the day (default: the previous working day)")
@click.option("--send", is_flag=True, help="also send it to the heads (Telegram, e-mail)")
@click.option("--html", is_flag=True, help="print the HTML version")
def digest(config_path, account_id, day, send, html):
    """Violations per manager and rule for one day, with the change and the worst cases."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from jobs import context
    from jobs import digest as digests

    _, account, _ = job_context(config_path, account_id)
    if day is None:
        today = datetime.now(ZoneInfo(account.timezone)).date()
        day = digests.previous_working_day(context.calendar(account.id), today)
    else:
        day = day.date()
    found = digests.build(account.id, day, all_managers=True)
    if not found:
        click.echo(f"{day:%d.%m.%Y}: no departments configured and no violations.")
    for d in found:
        click.echo(digests.render_html(d) if html else digests.render_text(d))
        click.echo("")
    if send:
        click.echo(digests.send(account.id, day))


commands = [digest]
