"""`reglament absent` and `reglament queue`: a manager's absence (DISTRIBUTION skips them),
and each manager's untouched new leads in shift-start order (FIRST_CONTACT_SLA)."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, timezone

import click

from shell.commands.common import ACCOUNT_OPTION as ACCOUNT
from shell.commands.common import CONFIG_OPTION as CONFIG
from reglament.names import norm
from shell.commands.common import job_context


def _setup(config_path: str | None, account_id: str | None):
    _, account, r = job_context(config_path, account_id)
    return account, r


MOMENT = click.DateTime(["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S",
                         "%d.%m.%Y", "%d.%m.%Y %H:%M"])


def _when(t: datetime, tz) -> str:
    return t.astimezone(tz).strftime("%d.%m.%Y %H:%M")


@click.command()
@CONFIG
@ACCOUNT
@click.argument("manager", required=False)
@click.option("--from", "start", type=MOMENT,
              help="the absence starts then (the account's local time; default now), e.g. 2025-03-03")
@click.option("--until", "until", type=MOMENT,
              help="the absence ends then (the account's local time), e.g. 2025-03-10 or '2025-03-10 14:00'")
@click.option("--clear", is_flag=True, help="the manager is back: remove the absence")
@click.option("--list", "show", is_flag=True, help="show the absences and change nothing")
@click.option("--reassign", is_flag=True,
              help="also hand the manager's active leads and their open tasks to the managers on shift now")
def absent(config_path, account_id, manager, start, until, clear, show, reassign):
    """Mark a manager absent from a moment (default now) until a moment: new leads skip them
    then (DISTRIBUTION). Setting it again replaces the manager's absence. With --reassign
    (alone, or with --until), their active leads go round-robin to the managers on shift."""
    from jobs import context
    from reglament import shifts

    account, r = _setup(config_path, account_id)
    group = context.rules(account.id).distribution.managers
    tz = context.calendar(account.id).tz
    if show:
        if manager or start or until or clear or reassign:
            raise click.UsageError("--list takes no manager and no other option")
        _list(shifts.absences(r, account.id), group, tz)
        return
    if manager is None:
        raise click.UsageError("give a manager (or --list)")
    known = next((m.name for m in group if norm(m.name) == norm(manager)), None)
    if known is None:
        raise click.UsageError(f"«{manager}» is not in rules.distribution.managers; the group: "
                               + (", ".join(m.name for m in group) or "(empty)"))
    if clear:
        if reassign:
            raise click.UsageError("--clear and --reassign do not go together")
        click.echo(f"{known}: отсутствие снято." if shifts.clear_absent(r, account.id, known)
                   else f"{known}: отсутствие не было задано.")
        return
    if until is None and not reassign:
        raise click.UsageError("give --until (or --clear, or --reassign)")
    now = datetime.now(timezone.utc)
    if until is not None:
        moment = until.replace(tzinfo=tz)
        begin = start.replace(tzinfo=tz) if start else now
        if moment <= now:
            raise click.UsageError("--until is in the past")
        if moment <= begin:
            raise click.UsageError("--until must be after --from")
        if reassign and begin > now:
            raise click.UsageError("--reassign hands the leads over now: run it when the absence starts")
        shifts.set_absent(r, account.id, known, moment, begin)
        if start is None:
            click.echo(f"{known}: отсутствует до {_when(moment, tz)} — новые заявки его пропускают.")
        else:
            click.echo(f"{known}: отсутствует с {_when(begin, tz)} до {_when(moment, tz)} — "
                       "в это время новые заявки его пропускают.")
    elif start is not None:
        raise click.UsageError("--from needs --until")
    if reassign:
        _reassign(account.id, known)


def _reassign(account: str, manager: str) -> None:
    from jobs import context
    from jobs import reassign as handing

    try:
        done = handing.reassign(account, manager)
    except handing.NobodyOnShift:
        click.echo("Некому передать сделки: никого из группы нет на смене, а резервный пользователь "
                   "(rules.distribution.fallback_user) не задан.")
        sys.exit(1)
    except ValueError as e:
        raise click.UsageError(str(e))
    if not done.handed and not done.busy and not done.kept:
        click.echo(f"У менеджера {manager} нет активных сделок — передавать нечего.")
        return
    crm = context.crm_for(account)
    click.echo(f"Передано сделок: {len(done.handed)}, задач: {done.tasks}.")
    for h in done.handed:
        tasks = f" (задач: {h.tasks})" if h.tasks else ""
        click.echo(f"  Сделка {h.lead_id} «{h.name}» → {crm.user_name(h.to)}{tasks}")
    share = Counter(crm.user_name(h.to) for h in done.handed)
    if share:
        click.echo("Кому: " + ", ".join(f"{name} — {n}" for name, n in share.most_common()) + ".")
    if done.kept:
        click.echo(f"Оставлены у менеджера (их уже передавали, а вернул человек): {', '.join(map(str, done.kept))}.")
    if done.busy:
        click.echo(f"Заняты другим заданием, не переданы: {', '.join(map(str, done.busy))} — "
                   "запустите команду ещё раз.")


def _list(absent, group, tz) -> None:
    from reglament import shifts

    if not absent:
        click.echo("Отсутствий нет.")
        return
    names = {norm(m.name): m.name for m in group}
    now = datetime.now(timezone.utc)
    for key, a in sorted(absent.items(), key=lambda kv: kv[1]):
        # A manager since removed from the group still shows, by the normalised name.
        line = f"{names.get(key, key)}: "
        line += f"отсутствует до {_when(a.end, tz)}" if a.start == shifts.EPOCH \
            else f"отсутствует с {_when(a.start, tz)} до {_when(a.end, tz)}"
        if a.end <= now:
            line += " (закончилось)"
        click.echo(line + ".")


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
