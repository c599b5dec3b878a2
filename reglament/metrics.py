"""Counters kept in Redis, so the web, worker and scheduler processes add to the same numbers.

A counter is a field of the account's metrics hash: the metric name and its labels,
tab-separated ("webhooks_total\tsource=amocrm\tkind=lead.added\toutcome=accepted").
/metrics renders them in the Prometheus text format through prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from reglament import keys

HELP = {
    "webhooks_total": "Webhook events received, by source, kind and outcome (accepted, duplicate, ignored)",
    "webhook_rejections_total": "Webhook deliveries answered 4xx, by source and reason",
    "job_failures_total": "Jobs (or calls of a batch job) that raised, by kind and outcome (retried, gave_up)",
    "api_calls_total": "Calls to outside APIs, by system and HTTP status",
    "rule_actions_total": "Actions the rules applied in the CRM, by rule and action",
    "unknown_names_total": "Actions or events a rule left undone because a name it uses is unknown to the CRM, by rule",
    "sweep_runs_total": "Sweeps run",
    "sweep_leads_fixed_total": "Leads the sweep gave their missing task",
    "deferrals_total": "Calls that went back to RQ instead of waiting, by reason (budget, 429, 5xx, network, auth, config)",
    "messages_total": "Outgoing messages, by provider and outcome (sent, duplicate, unknown, failed, stored)",
}


def field(name: str, **labels: object) -> str:
    return "\t".join([name, *(f"{k}={v}" for k, v in sorted(labels.items()))])


def incr(r: redis.Redis, account: str, name: str, amount: int = 1, **labels: object) -> None:
    r.hincrby(keys.metrics(account), field(name, **labels), amount)


def job_failure(r: redis.Redis, meta: dict, outcome: str) -> None:
    """A job, or one call of a batch job, raised: `retried` when it runs again, `gave_up` when not."""
    incr(r, meta.get("account") or keys.GLOBAL, "job_failures_total", kind=meta.get("kind", "job"), outcome=outcome)


def _parse(raw: str) -> tuple[str, dict[str, str]]:
    name, *pairs = raw.split("\t")
    return name, dict(p.split("=", 1) for p in pairs)


class RedisCollector:
    """Collects the counters of the given accounts, plus gauges supplied by the caller."""

    def __init__(self, r: redis.Redis, accounts: Iterable[str], gauges: Mapping[str, Iterable[tuple[dict, float]]] | None = None):
        self.r = r
        self.accounts = [*accounts, keys.GLOBAL]
        self.gauges = gauges or {}

    def collect(self):
        with self.r.pipeline(transaction=False) as pipe:
            for account in self.accounts:
                pipe.hgetall(keys.metrics(account))
            hashes = pipe.execute()
        families: dict[str, list[tuple[dict[str, str], int]]] = {}
        for account, counters in zip(self.accounts, hashes):
            for raw, value in counters.items():
                name, labels = _parse(raw.decode() if isinstance(raw, bytes) else raw)
                if account != keys.GLOBAL:
                    labels["account"] = account
                families.setdefault(name, []).append((labels, int(value)))
        for name in sorted(set(families) | set(HELP)):
            samples = families.get(name, [])
            label_names = sorted({k for labels, _ in samples for k in labels})
            family = CounterMetricFamily(f"reglament_{name.removesuffix('_total')}", HELP.get(name, name), labels=label_names)
            for labels, value in samples:
                family.add_metric([labels.get(k, "") for k in label_names], value)
            yield family
        for name, samples in self.gauges.items():
            samples = list(samples)
            label_names = sorted({k for labels, _ in samples for k in labels})
            family = GaugeMetricFamily(f"reglament_{name}", name.replace("_", " "), labels=label_names)
            for labels, value in samples:
                family.add_metric([labels.get(k, "") for k in label_names], value)
            yield family


def render(r: redis.Redis, accounts: Iterable[str], gauges=None) -> bytes:
    from prometheus_client import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(r, accounts, gauges))
    return generate_latest(registry)
