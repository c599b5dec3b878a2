"""COMMENT_CODES (seed 003): callback and refusal reasons use the canonical short codes.

Where the reason lives: for a refusal («Отказ», or amoCRM's own lost stage) it is the loss
reason; for «Просил перезвонить» the configured lead field, else the lead's latest text note.
A reason may go on after its code («Другое: уехали», «пн 18:00»), not before it.
"""

from __future__ import annotations

from datetime import datetime

from reglament.discipline_settings import Alert, DisciplineSettings, Outcome
from reglament.names import norm, same_name
from reglament.violations import Violation

RULE = "COMMENT_CODES"


def kind_of(status: str, lost: bool, settings: DisciplineSettings) -> str | None:
    """"callback", "refusal" or None for a status this rule does not look at."""
    s = settings.comment_codes
    if same_name(status, s.callback_status):
        return "callback"
    if lost or any(same_name(status, x) for x in s.refusal_statuses):
        return "refusal"
    return None


def matches(reason: str | None, codes: list[str]) -> bool:
    r = norm(reason or "")
    if not r:
        return False
    for code in codes:
        c = norm(code)
        if r == c:
            return True
        if r.startswith(c) and (not c[-1].isalnum() or not r[len(c)].isalnum()):
            return True
    return False


def decide(lead_id: int, status: str, lost: bool, reason: str | None, manager: int | None, changed_at: datetime,
           settings: DisciplineSettings, link: str = "") -> Outcome:
    s = settings.comment_codes
    kind = kind_of(status, lost, settings)
    if not s.enabled or kind is None or not manager or manager in settings.ignore_users:
        return Outcome()
    codes = s.callback_codes if kind == "callback" else s.refusal_codes
    if matches(reason, codes):
        return Outcome()
    key = f"{RULE}:{lead_id}:{kind}:{int(changed_at.timestamp())}"
    shown = reason or "не указана"
    v = Violation(rule=RULE, key=key, at=changed_at.timestamp(), manager_id=manager, lead_id=lead_id, link=link,
                  details=f"«{status}»: причина «{shown}» не по кодам", extra={"reason": reason, "kind": kind})
    text = s.text.format(status=status, reason=shown, codes=", ".join(f"«{c}»" for c in codes), link=link)
    return Outcome(violations=(v,), alerts=(Alert("manager", manager, s.subject, text, key, lead_id),))
