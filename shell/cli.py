"""The `reglament` command line."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import click

from reglament import config

from shell.commands.common import CONFIG_OPTION, Group, load_settings, pick_account, redis_for


@click.group(cls=Group)
def main() -> None:
    """Reglament: makes a sales department follow its regulations inside its CRM."""


@main.command()
@CONFIG_OPTION
@click.option("--port", type=int, envvar="PORT", default=8000, show_default=True)
@click.option("--sandbox-port", type=int, default=8001, show_default=True,
              help="port of the local CRM sandbox started when no config is given")
@click.option("--data-dir", default=config.DATA_DIR, show_default=True)
@click.option("--crm", type=click.Choice(["amocrm", "bitrix24"]), default="amocrm", show_default=True,
              help="the CRM whose local sandbox serves as the demo account when no config is given")
def run(config_path, port, sandbox_port, data_dir, crm):
    """Start everything on this machine: Redis (embedded unless REDIS_URL), web, worker,
    scheduler; with no configuration, also a local amoCRM (or --crm bitrix24: Bitrix24)
    sandbox as the demo account."""
    from shell.runner import run as run_all

    sys.exit(run_all(config_path, port, sandbox_port, data_dir, crm))


@main.command()
@CONFIG_OPTION
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=int, envvar="PORT", default=8000, show_default=True)
@click.option("--workers", type=int, default=4, show_default=True)
def web(config_path, host, port, workers):
    """The webhook receiver (gunicorn)."""
    from shell.web import serve

    load_settings(config_path)
    serve(config_path, host, port, workers)


@main.command()
@CONFIG_OPTION
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
def worker(config_path, burst):
    """An RQ worker, with the dispatcher that turns webhook deliveries into jobs."""
    from jobs.worker import run as run_worker
    from reglament import runtime

    from jobs import context

    load_settings(config_path)
    settings, r = runtime.start(config_path)
    context.set_settings(settings, r)  # registers the rule handlers and warms what jobs use
    _log_name_problems(settings)
    run_worker(r, [a.id for a in settings.accounts], burst=burst)


def _log_name_problems(settings: config.Settings) -> None:
    """Names the rules use that the CRM lacks, logged once at the worker's start, beside it
    (a CRM slow to answer does not hold the worker up)."""
    import threading

    from jobs import names

    threading.Thread(target=names.log_problems, args=(settings,), name="check-names", daemon=True).start()


@main.command()
@CONFIG_OPTION
def scheduler(config_path):
    """RQ's cron scheduler for the periodic jobs (sweeps, digests)."""
    from jobs.scheduler import run as run_scheduler
    from reglament import runtime

    from jobs import context

    load_settings(config_path)
    settings, r = runtime.start(config_path)
    context.set_settings(settings, r)  # registers each account's periodic jobs
    run_scheduler(r)


@main.command()
@click.argument("path", default="reglament.yaml")
@click.option("--force", is_flag=True, help="overwrite an existing file")
@click.option("--crm", type=click.Choice(["amocrm", "bitrix24"]), default="amocrm", show_default=True,
              help="the CRM of the account the file starts with")
def init(path, force, crm):
    """Write a commented default configuration built from the regulations."""
    target = Path(path)
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; pass --force to overwrite it")
    from reglament.templates import default_config

    target.write_text(default_config(crm), encoding="utf-8")
    click.echo(f"Wrote {target}. Fill in the CRM account, then run: reglament check --config {target}")


@main.command()
@CONFIG_OPTION
@click.option("--crm/--no-crm", default=True, show_default=True,
              help="also look up the configured statuses, users, fields... in each account's CRM")
def check(config_path, crm):
    """Validate the configuration and print every problem with where it is."""
    try:
        settings = config.load(config_path)
    except config.ConfigError as e:
        click.echo(f"{e.path or 'configuration'}: {len(e.problems)} problem(s)")
        for problem in e.problems:
            click.echo(f"  - {problem}")
        sys.exit(1)
    found = _crm_problems(settings) if crm else []
    problems = [p for p in found if not getattr(p, "optional", False)]
    notes = [p for p in found if getattr(p, "optional", False)]
    if notes:
        click.echo(f"{config_path}: {len(notes)} optional name(s) the CRM lacks; the rules work without them")
        for note in notes:
            click.echo(f"  - {note}")
    if problems:
        click.echo(f"{config.locate(config_path)}: {len(problems)} problem(s) in the CRM names")
        for problem in problems:
            click.echo(f"  - {problem}")
        sys.exit(1)
    click.echo(f"OK: {len(settings.accounts)} account(s): {', '.join(a.id for a in settings.accounts)}")


def _crm_problems(settings: config.Settings) -> list:
    """Names the rules use that an account's CRM lacks, each with the names it has
    (reglament.names.NameProblem: an optional one is a notice, not an error)."""
    from contextlib import ExitStack

    import redis

    from connectors import registry
    from connectors.http import ConnectorError
    from reglament.names import NameProblem
    from shell.redis_server import RedisServer

    problems = []
    with ExitStack() as stack:
        url = os.environ.get("REDIS_URL") or settings.redis_url
        if not url:  # the connector keeps tokens and its rate limit in Redis: lend it a private one
            import tempfile

            url = stack.enter_context(RedisServer(stack.enter_context(tempfile.TemporaryDirectory()), fsync="no")).url
        r = redis.Redis.from_url(url)
        for account in settings.accounts:
            try:
                found = registry.connector(account, r, max_attempts=2).resolve_problems()
                problems += [NameProblem(f"accounts ({account.id}).{p}", p.optional) for p in found]
            except (ConnectorError, redis.RedisError, OSError) as e:
                problems.append(f"accounts ({account.id}): could not read the CRM's names: {e}")
    return problems


@main.command()
@CONFIG_OPTION
@click.option("--account", "account_id")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--body/--no-body", default=False, help="print the stored bodies too")
def rejected(config_path, account_id, limit, body):
    """List webhook bodies that were refused (4xx), newest first."""
    from reglament import keys

    settings = load_settings(config_path)
    account = pick_account(settings, account_id)
    r = redis_for(settings)
    for entry_id, f in r.xrevrange(keys.rejected(account.id), count=limit):
        f = {k.decode(): v.decode(errors="replace") for k, v in f.items()}
        at = datetime.fromtimestamp(int(f["at"]) / 1000).isoformat(timespec="seconds")
        click.echo(f"{entry_id.decode()}  {at}  {f['source']}  {f['status']} {f['code']}: {f['reason']}")
        if body:
            click.echo(f"    {f['body'][:2000]}")


@main.command()
@CONFIG_OPTION
@click.option("--account", "account_id")
@click.option("--id", "ids", multiple=True, help="inbox entry id (repeatable)")
@click.option("--since", type=click.DateTime(), help="replay deliveries received from this time (local)")
@click.option("--until", type=click.DateTime(), help="... up to this time (local)")
def replay(config_path, account_id, ids, since, until):
    """Re-enqueue stored raw deliveries, by id or by time range."""
    from jobs.replay import entries, replay as replay_entries

    if not ids and not since:
        raise click.UsageError("give --id or --since")
    settings = load_settings(config_path)
    account = pick_account(settings, account_id)
    r = redis_for(settings)
    ms = lambda dt: int(dt.timestamp() * 1000) if dt else None  # noqa: E731
    found = entries(r, account.id, list(ids), ms(since), ms(until))
    n = replay_entries(r, account.id, found)
    click.echo(f"Re-enqueued {n} event(s) from {len(found)} delivery(ies).")


@main.command()
@CONFIG_OPTION
def urls(config_path):
    """Print the webhook URLs to paste into amoCRM or Bitrix24 and Wazzup (they contain the secret)."""
    settings = load_settings(config_path)
    for account in settings.accounts:
        for line in webhook_urls(settings, account):
            click.echo(line)


def webhook_urls(settings: config.Settings, account: config.Account) -> list[str]:
    crm = config.CRM_NAMES[account.crm]
    return [f"[{account.id}] {crm} webhook: {settings.hook_url(account)}",
            f"[{account.id}] Wazzup webhook: {settings.hook_url(account, 'wazzup')}"]


from shell.commands import register_all  # noqa: E402

register_all(main)

if __name__ == "__main__":
    main()
