"""How names written in the configuration meet names in the CRM: «Принимает  Решение» is
«принимает решение», «ё» is «е»."""

from __future__ import annotations


def norm(name: str) -> str:
    return " ".join(name.casefold().replace("ё", "е").split())


def same_name(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and norm(a) == norm(b)
