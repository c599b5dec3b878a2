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


def load_settings(config_path: str | None) -> config.Settings:
    try:
        return config.load(config_path)
    except config.ConfigError as e:
        click.echo(f"Configuration is invalid ({e.path or 'no file'}):", err=True)
        for problem in e.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(2)


def redis_for(settings: config.Settings) -> redis.Redis:
    from reglament import runtime

    return redis.Redis.from_url(runtime.redis_url(settings))


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
