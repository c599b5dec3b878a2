"""The commented default configuration written by `reglament init`: the file's own
settings, an account on amoCRM or Bitrix24, then each rule family's defaults (built from
../shared/REGULATIONS.md) under the account's `rules:` key."""

from __future__ import annotations

from importlib import resources


def default_config(crm: str = "amocrm") -> str:
    """The file for an account on `crm`: the amoCRM block of default_config.yaml, or for
    "bitrix24" the block of default_bitrix24.yaml in its place."""
    from reglament.rule_settings import defaults_yaml

    files = resources.files("reglament")
    base = files.joinpath("default_config.yaml").read_text(encoding="utf-8")
    if crm == "bitrix24":
        start, end = base.index("    crm: amocrm\n"), base.index("    # wazzup:\n")
        base = base[:start] + files.joinpath("default_bitrix24.yaml").read_text(encoding="utf-8") + base[end:]
    return base.rstrip("\n") + "\n    rules:\n" + defaults_yaml(indent=3)
