"""The commented default configuration written by `reglament init`: the file's own
settings, then each rule family's defaults (built from ../shared/REGULATIONS.md) under
the account's `rules:` key."""

from __future__ import annotations

from importlib import resources


def default_config() -> str:
    from reglament.rule_settings import defaults_yaml

    base = resources.files("reglament").joinpath("default_config.yaml").read_text(encoding="utf-8")
    return base.rstrip("\n") + "\n    rules:\n" + defaults_yaml(indent=3)
