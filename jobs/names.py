"""Names the configuration uses and the CRM lacks, while the service runs.

- At the service's start (`reglament worker`) each account's names are resolved once, as
  `reglament check` resolves them (a few API calls per account), and every problem is
  logged: ERROR for a name a rule needs, WARNING for an optional one.
- A rule that meets an unknown name of its own while it acts (reglament.crm.UnknownName
  of a status, field, task type, user or loss reason, from the connector) says so at
  ERROR once an hour per account, rule and name, and only that rule's change on that lead
  is left undone: a retry cannot make the name exist, and a failing job would fail again
  on every webhook and every sweep. The executor catches it for every rule's actions.
- A name every rule needs (rules.pipeline) stops the whole account instead, its events
  kept until the name is fixed (jobs/deferral.py); a sweep meeting it says so here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping

import redis

from reglament import keys, metrics
from reglament.config import Settings
from reglament.crm import UnknownName
from reglament.names import USER, same_name

log = logging.getLogger("reglament.names")

REPORT_EVERY = 3600  # seconds between two reports of the same unknown name by the same rule


def report(r: redis.Redis, account: str, rule: str, error: UnknownName) -> bool:
    """Log the unknown name at ERROR unless it was reported within the hour; True when logged."""
    metrics.incr(r, account, "unknown_names_total", rule=rule)
    name = error.name or str(error)
    key = keys.key(account, "names", "reported", rule, hashlib.sha1(name.encode()).hexdigest()[:16])
    if not r.set(key, 1, nx=True, ex=REPORT_EVERY):
        return False
    log.error("%s cannot use a name: %s. Fix it in the configuration (reglament check lists the valid ones); "
              "said once an hour", rule, error, extra={"account": account, "rule": rule})
    return True


def report_missing_users(r: redis.Redis, account: str, rule: str, wanted: Iterable[str | None],
                         users: Mapping[int, str]) -> None:
    """Report each configured user name the CRM's users lack (a rule that picks people by
    name would otherwise just skip them, silently)."""
    for name in wanted:
        if name and not any(same_name(name, u) for u in users.values()):
            report(r, account, rule, UnknownName(f"user «{name}» not found", kind=USER, name=name))


def log_problems(settings: Settings) -> int:
    """Resolve every account's names once and log the problems; how many were found. A CRM
    that cannot be read now is a warning: the service starts anyway."""
    from connectors import registry
    from jobs import context

    found = 0
    for account in settings.accounts:
        if not registry.supported(account):
            continue
        extra = {"account": account.id}
        try:
            problems = context.crm_for(account.id).resolve_problems()
        except Exception as e:  # noqa: BLE001 — the service starts anyway; the rules report names as they meet them
            log.warning("could not read the CRM's names to check the configuration: %s", e, extra=extra)
            continue
        for p in problems:
            if getattr(p, "optional", False):
                log.warning("optional name the CRM lacks: %s", p, extra=extra)
            else:
                log.error("unknown name: %s", p, extra=extra)
                found += 1
    return found
