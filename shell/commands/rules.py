"""`reglament sweep` and `reglament audit`: the task rules' sweep by hand, and its dry run."""

from __future__ import annotations

from pathlib import Path

import click

from shell.commands.common import ACCOUNT_OPTION as ACCOUNT
from shell.commands.common import CONFIG_OPTION as CONFIG
from shell.commands.common import job_context


def _setup(config_path: str | None, account_id: str | None):
    from jobs import context

    _, account, _ = job_context(config_path, account_id)
    from connectors import registry

    if not registry.supported(account):
        raise click.UsageError(f"account {account.id}: crm {account.crm} has no connector in this version")
    return account, context.executor_for(account.id), context.crm_for(account.id)


def _said(result) -> str:
    s = result.summary()
    return (f"Проверено активных сделок: {s['checked']}; исправлено: {s['fixed']}; "
            f"оставлено их заданиям (сделка занята или изменилась): {s['skipped']}; {s['seconds']} с.")


@click.command()
@CONFIG
@ACCOUNT
def sweep(config_path, account_id):
    """Give every active lead without an open task its next task now (what the periodic sweep does)."""
    from jobs.sweep import run

    _, executor, crm = _setup(config_path, account_id)
    click.echo(_said(run(executor, crm)))


@click.command()
@CONFIG
@ACCOUNT
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="write the list here, not to stdout")
@click.option("--apply", "do_apply", is_flag=True, help="then fix the listed leads (as the sweep would)")
def audit(config_path, account_id, fmt, output, do_apply):
    """List every lead that breaks NEXT_TASK, STATUS_TASKS or REDIAL and what Reglament would do."""
    from jobs import audit as audit_mod

    account, executor, crm = _setup(config_path, account_id)
    found = audit_mod.run(executor, crm)
    text = audit_mod.render(found.findings, fmt)
    if output:
        Path(output).write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")  # BOM: Excel reads UTF-8
    else:
        click.echo(text, nl=False)
    click.echo(f"[{account.id}] Проверено активных сделок: {found.checked}; с нарушениями: {len(found.findings)}.",
               err=not output and fmt != "table")
    if do_apply and found.plans:
        click.echo(_said(audit_mod.apply(executor, found)), err=not output and fmt != "table")


commands = [sweep, audit]
