"""Redis key names. Every key that belongs to an account starts with rg:<account>:."""

PREFIX = "rg"
GLOBAL = "_global"  # pseudo-account for what has no account yet (e.g. an unknown webhook secret)


def key(account: str, *parts: object) -> str:
    return ":".join((PREFIX, account, *(str(p) for p in parts)))


def inbox(account: str) -> str:
    """Stream of raw webhook deliveries with their parsed events (kept for the retention period)."""
    return key(account, "inbox")


def rejected(account: str) -> str:
    """Stream of bodies answered 4xx, kept bounded for `reglament rejected`."""
    return key(account, "rejected")


def dedupe(account: str, event_key: str) -> str:
    return key(account, "seen", event_key)


def metrics(account: str) -> str:
    return key(account, "metrics")
