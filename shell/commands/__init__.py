"""Subcommands contributed by features. Each module here defines `commands`, a list of
click commands; `shell.cli` adds them all."""

from __future__ import annotations

import importlib
import pkgutil

import click


def register_all(group: click.Group) -> None:
    for module in pkgutil.iter_modules(__path__):
        for command in getattr(importlib.import_module(f"{__name__}.{module.name}"), "commands", []):
            group.add_command(command)
