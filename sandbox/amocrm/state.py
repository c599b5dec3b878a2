"""`SandboxAccount`: one amoCRM account in memory, assembled from one module per kind of write.

See core.py for how writes validate, record events and notify listeners (the webhook sender).
"""

from __future__ import annotations

from .contacts import ContactWrites
from .core import DEFAULT_SEED, DELIVERED_SETTINGS, KNOWN_SETTINGS, Change
from .leads import LeadWrites
from .notes import NoteWrites
from .subscriptions import Subscriptions
from .tasks import TaskWrites


class SandboxAccount(LeadWrites, ContactWrites, TaskWrites, NoteWrites, Subscriptions):
    """One amoCRM account: SandboxAccount(seed_path=None, *, clock=time.time) loads demo_account.yaml by default."""


__all__ = ["SandboxAccount", "Change", "DEFAULT_SEED", "DELIVERED_SETTINGS", "KNOWN_SETTINGS"]
