"""`reglament absent` and `reglament queue`: a manager's absence (DISTRIBUTION skips them),
and each manager's untouched new leads in shift-start order (FIRST_CONTACT_SLA)."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from reglament.commands.common import ACCOUNT_OPTION as ACCOUNT
from reglament.commands.common import CONFIG_OPTION as CONFIG
from reglament.commands.common import job_context


def _setup(config_path: str | None, account_id: str | None):
    _, account, r = job_context(config_path, account_id)
    return account, r


@click.command()
@CONFIG
@ACCOUNT
@click.argument("manager")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S",
                                                         "%d.%m.%Y", "%d.%m.%Y %H:%M"]),
              help="the absence ends then (the account's local time), e.g. 2025-03-10 or '2025-03-10 14:00'")
@click.option("--clear", is_flag=True, help="the manager is back: remove the absence")
def absent(config_path, account_id, manager, until, clear):
    """Mark a manager absent until a moment: new leads skip them (DISTRIBUTION)."""
    from jobs import context
    from reglament import shifts

    account, r = _setup(config_path, account_id)
    group = context.rules(account.id).distribution.managers
    known = next((m.name for m in group if shifts.norm(m.name) == shifts.norm(manager)), None)
    if known is None:
        raise click.UsageError(f"«{manager}» is not in rules.distribution.managers; the group: "
                               + (", ".join(m.name for m in group) or "(empty)"))
    if clear:
        click.echo(f"{known}: отсутствие снято." if shifts.clear_absent(r, account.id, known)
                   else f"{known}: отсутствие не было задано.")
        return
    if until is None:
        raise click.UsageError("give --until (or --clear)")
    tz = context.calendar(account.id).tz
    moment = until.replace(tzinfo=tz)
    if moment <= datetime.now(timezone.utc):
        raise click.UsageError("--until is in the past")
    shifts.set_absent(r, account.id, known, moment)
    click.echo(f"{known}: отсутствует до {moment.strftime('%d.%m.%Y %H:%M')} — новые заявки его пропускают.")


@click.command()
@CONFIG
@ACCOUNT
def queue(config_path, account_id):
    """Each manager's untouched new leads in priority order (new first, by source priority, oldest first)."""
    from jobs import context
    from jobs.handlers import distribution as handler
    from jobs.rules import first_contact as fc

    account, _ = _setup(config_path, account_id)
    found = handler.untouched(account.id)
    if not found:
        click.echo("Необработанных заявок нет.")
        return
    crm = context.crm_for(account.id)
    tz = context.calendar(account.id).tz
    for manager, items in sorted(found.items(), key=lambda kv: crm.user_name(kv[0]) or ""):
        click.echo(f"{crm.user_name(manager) or 'Без ответственного'} — {len(items)}:")
        for n, item in enumerate(items, 1):
            click.echo("  " + fc.queue_line(n, item, tz))


commands = [absent, queue]
