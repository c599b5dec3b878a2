"""The commented default configuration written by `reglament init`."""

from __future__ import annotations

from importlib import resources


def default_config() -> str:
    return resources.files("reglament").joinpath("default_config.yaml").read_text(encoding="utf-8")
