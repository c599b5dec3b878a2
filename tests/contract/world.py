"""The one amoCRM account both contract backends hold: the mock renders it, the sandbox is seeded with it.

Ids and names come from the reference (/work/shared/reference/amocrm.md) where it has them:
account 30896271 "devteam" (§3.8), pipeline 3643927 with status 35573056 (§3.1 filter example),
142/143 won/lost (§3.2), loss reason 4711 (§3.1 PATCH example), task types 1 and 2 (§3.4, §3.8),
lead fields 629233 / 629165 (§4.3 update capture), users 321123 / 123123 (§3.1, §3.4 examples).
"""

from __future__ import annotations

from pathlib import Path

import yaml

TOKEN = "contract-long-lived-token-0001"

ACCOUNT_ID = 30896271
ACCOUNT_NAME = "Developers Team"
SUBDOMAIN = "devteam"

ADMIN, ANNA, BORIS = 8375357, 321123, 123123
USERS = [(ADMIN, "Admin Devteam", "admin@devteam.example", True),
         (ANNA, "Анна Смирнова", "anna@devteam.example", False),
         (BORIS, "Борис Иванов", "boris@devteam.example", False)]

TASK_TYPES = [(1, "Follow-up", "FOLLOW_UP"), (2, "Meeting", "MEETING")]

PIPELINE = 3643927
NEW, TALKS, DECIDING = 35573056, 35573059, 35573062
WON, LOST = 142, 143
STATUSES = [(NEW, "Первичный контакт"), (TALKS, "Переговоры"), (DECIDING, "Принимают решение"),
            (WON, "Успешно реализовано"), (LOST, "Закрыто и не реализовано")]

LOSS_REASONS = [(4711, "Дорого"), (4712, "Не дозвонились")]

SERVICES, YCLIENTS_ID = 629233, 629165
LEAD_FIELDS = [(SERVICES, "Услуги", "text"), (YCLIENTS_ID, "ID записи, Yclients", "text")]

PHONE_FIELD = 3  # as in tests/connectors/amo_bodies.CONTACT
PHONE_ENUMS = ["WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"]

# First ids handed out (the mock and the sandbox both count up from here).
FIRST_IDS = {"lead": 17657, "contact": 10971463, "task": 56981, "note": 213313359, "webhook": 1056949}


def phone_enums() -> list[dict]:
    """The PHONE field's enums, numbered like the sandbox seed does (field id * 10 + position)."""
    return [{"id": PHONE_FIELD * 10 + k + 1, "value": v, "sort": (k + 1) * 2} for k, v in enumerate(PHONE_ENUMS)]


def write_seed(path: Path) -> Path:
    """This world as a sandbox seed file (see sandbox/amocrm/demo_account.yaml), with no leads."""
    name = {uid: n for uid, n, _, _ in USERS}
    spec = {
        "account": {"id": ACCOUNT_ID, "name": ACCOUNT_NAME, "subdomain": SUBDOMAIN,
                    "base_link": f"https://{SUBDOMAIN}.amocrm.ru", "timezone": "Europe/Moscow",
                    "current_user": name[ADMIN]},
        "ids": {kind: first - 1 for kind, first in FIRST_IDS.items()},
        "user_groups": [{"id": 0, "name": "Отдел продаж"}],
        "users": [{"id": uid, "name": n, "email": e, "is_admin": a} for uid, n, e, a in USERS],
        "task_types": [{"id": tid, "name": n, "code": code} for tid, n, code in TASK_TYPES],
        "pipelines": [{"id": PIPELINE, "name": "Воронка", "is_main": True,
                       "statuses": [{"id": sid, "name": n} for sid, n in STATUSES]}],
        "loss_reasons": [{"id": rid, "name": n} for rid, n in LOSS_REASONS],
        "custom_fields": {
            "leads": [{"id": fid, "name": n, "type": t} for fid, n, t in LEAD_FIELDS],
            "contacts": [{"id": PHONE_FIELD, "name": "Телефон", "type": "multitext", "code": "PHONE",
                          "enums": PHONE_ENUMS}],
        },
        "leads": [],
    }
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
