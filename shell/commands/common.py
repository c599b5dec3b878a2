"""What every subcommand shares: the --config and --account options, loading the settings
(refusing an invalid file with every problem listed), the account, Redis, and the job
context a command that runs rules needs. `shell.cli` uses these too."""

from __future__ import annotations

import sys

import click
import redis

from reglament import config

CONFIG_OPTION = click.option("--config", "config_path", envvar=config.CONFIG_ENV, default=None,
                             help=f"configuration file (or ${config.CONFIG_ENV})")
ACCOUNT_OPTION = click.option("--account", "account_id", help="account id (needed when there are several)")


def refuse(e: config.ConfigError) -> None:
    """A configuration problem as the admin reads it: one line, or the file's every problem."""
    if e.path is None and len(e.problems) == 1:
        click.echo(f"reglament: {e.problems[0]}", err=True)
    else:
        click.echo(f"Configuration is invalid ({e.path or 'no file'}):", err=True)
        for problem in e.problems:
            click.echo(f"  - {problem}", err=True)
    sys.exit(2)


class Group(click.Group):
    """The command group: a missing configuration or Redis ends a command in a clear line,
    never in a traceback, wherever in the command it shows."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except config.ConfigError as e:
            refuse(e)
        except redis.ConnectionError as e:
            click.echo(f"reglament: lost the connection to Redis ({type(e).__name__}); "
                       "is `reglament run` still running?", err=True)
            sys.exit(2)


def load_settings(config_path: str | None) -> config.Settings:
    try:
        return config.load(config_path)
    except config.ConfigError as e:
        refuse(e)


def redis_for(settings: config.Settings) -> redis.Redis:
    from reglament import runtime

    return runtime.connect(settings)


def pick_account(settings: config.Settings, account_id: str | None) -> config.Account:
    if account_id is None:
        if len(settings.accounts) == 1:
            return settings.accounts[0]
        raise click.UsageError(f"--account is required: one of {', '.join(a.id for a in settings.accounts)}")
    try:
        return settings.account(account_id)
    except KeyError:
        raise click.UsageError(f"no account {account_id!r}; configured: {', '.join(a.id for a in settings.accounts)}")


def job_context(config_path: str | None, account_id: str | None
                ) -> tuple[config.Settings, config.Account, redis.Redis]:
    """Settings, account and Redis, with logging and the job context set up as in a worker,
    for commands that run rules by hand."""
    from jobs import context
    from reglament import logs

    settings = load_settings(config_path)
    logs.setup(settings.log_format, settings.secrets(), stream=sys.stderr)
    account = pick_account(settings, account_id)
    r = redis_for(settings)
    context.set_settings(settings, r)
    return settings, account, r
