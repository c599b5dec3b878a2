"""`reglament sweep` and `reglament audit`: every periodic rule once, by hand, and the task
sweep's dry run."""

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


SKIPPED = {"already running": "проверка уже идёт (её запустил планировщик) — пропущена.",
           "unknown name": "не выполнена: в настройках имя, которого нет в CRM (см. журнал и reglament check)."}


def _said(s: dict) -> str:
    """The task sweep's summary (jobs.sweep.SweepResult.summary) in the managers' words."""
    return (f"Проверено активных сделок: {s['checked']}; исправлено: {s['fixed']}; "
            f"оставлено их заданиям (сделка занята или изменилась): {s['skipped']}; {s['seconds']} с.")


def _said_discipline(s: dict) -> str:
    return (f"Открытых задач: {s['tasks']}, активных сделок: {s['leads']}; новых нарушений: {s['violations']}; "
            f"действий в CRM: {s['actions']}; напоминаний: {s['alerts']}.")


@click.command()
@CONFIG
@ACCOUNT
def sweep(config_path, account_id):
    """Run every periodic rule once, now: the task sweep (an active lead without an open task
    gets its next task) and the discipline sweep (OVERDUE, INCUBATOR, UNPAID_INVOICE)."""
    from jobs import sweep as task_sweep
    from jobs.handlers import discipline

    account, _, _ = _setup(config_path, account_id)
    for title, job, said in (("Задачи (NEXT_TASK, STATUS_TASKS, REDIAL)", task_sweep.sweep_job, _said),
                             ("Дисциплина (OVERDUE, INCUBATOR, UNPAID_INVOICE)", discipline.sweep_job,
                              _said_discipline)):
        done = job(account.id)
        click.echo(f"{title}: " + (SKIPPED.get(done["skipped"], done["skipped"]) if isinstance(done.get("skipped"), str)
                                   else said(done)))


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
        click.echo(_said(audit_mod.apply(executor, found).summary()), err=not output and fmt != "table")


commands = [sweep, audit]
