"""`reglament digest`: the heads' digest of violations (DIGEST) for any day, or since the last
one, printed or sent."""

from __future__ import annotations

import click

from shell.commands.common import ACCOUNT_OPTION, CONFIG_OPTION, job_context


@click.command()
@CONFIG_OPTION
@ACCOUNT_OPTION
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d", "%d.%m.%Y"]), default=None,
              help="one day (default: everything since the last digest sent, as the next one will cover)")
@click.option("--send", is_flag=True, help="also send it to the heads (Telegram, e-mail)")
@click.option("--html", is_flag=True, help="print the HTML version")
def digest(config_path, account_id, day, send, html):
    """Violations per manager and rule, with the change and the worst cases: for one day, or
    since the last digest (what the next scheduled one covers)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from jobs import digest as digests

    _, account, _ = job_context(config_path, account_id)
    if day is None:
        period, previous = digests.due_periods(account.id, datetime.now(ZoneInfo(account.timezone)).date())
    else:
        period, previous = digests.one_day(account.id, day.date())
    if period.start >= period.end:
        if digests.last_period(account.id) is None:
            click.echo("Reglament следит за аккаунтом с сегодняшнего дня: первый дайджест будет в следующий "
                       "рабочий день (за любой день: --date).")
        else:
            click.echo(f"Сегодняшний дайджест уже отправлен; следующий покроет время с {period.start:%d.%m.%Y}.")
        return
    found = digests.build(account.id, period, previous)
    if not found:
        click.echo(f"{period.label}: отделы не настроены, нарушений нет.")
    for d in found:
        click.echo(digests.render_html(d) if html else digests.render_text(d))
        click.echo("")
    if send:
        click.echo(digests.send(account.id, period, previous))


commands = [digest]
