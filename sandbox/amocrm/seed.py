"""Filling a SandboxAccount from its YAML seed, and generating many leads for benchmarks.

Seeded and generated data is inserted silently: it is "what the account already held",
so it produces no events and no webhooks.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sandbox.seeds import seconds

from .model import CLOSED, CONTACTS, LEADS, AccountInfo, CustomField, LossReason, Pipeline, Status, TaskType, User

if TYPE_CHECKING:
    from .state import SandboxAccount


def populate(acc: "SandboxAccount", spec: dict) -> None:
    now = acc.now()
    a = spec["account"]
    acc._ids.update(spec.get("ids", {}))
    for u in spec["users"]:
        acc.users[u["id"]] = User(u["id"], u["name"], u["email"], bool(u.get("is_admin")), u.get("group_id", 0))
    current = next(u.id for u in acc.users.values() if u.name == a["current_user"])
    acc.info = AccountInfo(
        id=a["id"], name=a["name"], subdomain=a["subdomain"], base_link=a["base_link"].rstrip("/"),
        timezone=a.get("timezone", "Europe/Moscow"), country=a.get("country", "RU"),
        currency=a.get("currency", "RUB"), currency_symbol=a.get("currency_symbol", "₽"),
        current_user_id=current, created_at=now - 365 * 86400, amojo_id=a.get("amojo_id", ""),
    )
    acc.user_groups = list(spec.get("user_groups", [{"id": 0, "name": "Отдел продаж"}]))
    for t in spec["task_types"]:
        acc.task_types[t["id"]] = TaskType(t["id"], t["name"], t.get("code"), t.get("color"), t.get("icon_id"))
    for p_index, p in enumerate(spec["pipelines"]):
        statuses = []
        for index, s in enumerate(p["statuses"]):
            sort = {142: 10000, 143: 11000}.get(s["id"], (index + 1) * 10)
            statuses.append(Status(s["id"], s["name"], sort, p["id"], s.get("color", "#99ccff"),
                                   is_editable=s["id"] not in CLOSED, terminal=bool(s.get("terminal")),
                                   task_text=s.get("task")))
        acc.pipelines[p["id"]] = Pipeline(p["id"], p["name"], (p_index + 1) * 10, bool(p.get("is_main")), statuses)
    for index, r in enumerate(spec.get("loss_reasons", [])):
        acc.loss_reasons[r["id"]] = LossReason(r["id"], r["name"], (index + 1) * 10, now - 300 * 86400,
                                               now - 300 * 86400)
    for entity_type in (LEADS, CONTACTS):
        for index, f in enumerate(spec.get("custom_fields", {}).get(entity_type, [])):
            enums = None
            if f.get("enums"):
                enums = [{"id": f["id"] * 10 + k + 1, "value": v, "sort": (k + 1) * 2}
                         for k, v in enumerate(f["enums"])]
            acc.fields[entity_type][f["id"]] = CustomField(f["id"], f["name"], f["type"], entity_type,
                                                           f.get("code"), (index + 1) * 10, enums)
    for item in spec.get("leads", []):
        _seed_lead(acc, item, now)


def _field_values(acc: "SandboxAccount", entity_type: str, values: dict, now: int) -> list[dict]:
    result = []
    for name, value in (values or {}).items():
        fdef = acc.field_by_name(entity_type, name)
        if isinstance(value, dict) and "in" in value:
            value = now + seconds(value["in"])
            if fdef.type == "date":  # a date field holds local midnight of its day
                day = datetime.fromtimestamp(value, ZoneInfo(acc.info.timezone)).date()
                value = int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(acc.info.timezone)).timestamp())
        result.append({"field_id": fdef.id, "values": [{"value": value}]})
    return result


def _phone_values(acc: "SandboxAccount", phone: str) -> list[dict]:
    fdef = next(f for f in acc.fields[CONTACTS].values() if f.code == "PHONE")
    work = fdef.enums[0]
    return [{"field_id": fdef.id, "values": [{"value": phone, "enum_id": work["id"], "enum_code": work["value"]}]}]


def _seed_lead(acc: "SandboxAccount", item: dict, now: int) -> None:
    pipeline = acc.main_pipeline()
    status = acc.status_by_name(item["status"], pipeline) if "status" in item else acc.first_status(pipeline)
    responsible = acc.user_by_name(item["responsible"]).id
    created = now - seconds(item.get("created_ago", 0))
    by = acc.info.current_user_id
    lead = acc._insert_lead(
        name=item["name"], price=item.get("price", 0), responsible_user_id=responsible, status_id=status.id,
        pipeline_id=pipeline.id, created_by=by, updated_by=by, created_at=created, updated_at=created,
        loss_reason_id=next((r.id for r in acc.loss_reasons.values() if r.name == item.get("loss_reason")), None),
        custom_fields=_field_values(acc, LEADS, item.get("fields"), now),
        tag_ids=acc._tag_ids([{"name": t} for t in item.get("tags", [])]),
    )
    if "contact" in item:
        c = item["contact"]
        first, _, last = c["name"].partition(" ")
        contact = acc._insert_contact(
            name=c["name"], first_name=first, last_name=last, responsible_user_id=responsible, created_by=by,
            updated_by=by, created_at=created, updated_at=created,
            custom_fields=_phone_values(acc, c["phone"]) if c.get("phone") else [],
        )
        acc._link(lead, contact, main=True)
    if "task" in item:
        t = item["task"]
        task_type = next(tt.id for tt in acc.task_types.values() if tt.name == t.get("type", "Звонок"))
        task_created = now - seconds(t.get("created_ago", 0))
        acc._insert_task(text=t["text"], complete_till=now + seconds(t["due_in"]), responsible_user_id=responsible,
                         task_type_id=task_type, created_by=responsible, updated_by=responsible,
                         created_at=task_created, updated_at=task_created, entity_id=lead.id, entity_type=LEADS)


FIRST_NAMES = [("Александр", "м"), ("Максим", "м"), ("Артём", "м"), ("Михаил", "м"), ("Андрей", "м"),
               ("Павел", "м"), ("Игорь", "м"), ("Елена", "ж"), ("Ирина", "ж"), ("Светлана", "ж"),
               ("Татьяна", "ж"), ("Юлия", "ж"), ("Анастасия", "ж"), ("Ксения", "ж")]
LAST_NAMES = ["Кузнецов", "Попов", "Васильев", "Смирнов", "Зайцев", "Павлов", "Семёнов", "Голубев",
              "Виноградов", "Богданов", "Воробьёв", "Фёдоров", "Михайлов", "Беляев", "Тарасов", "Белов"]
SOURCES = ["Сайт", "Instagram", "ВКонтакте", "Рекомендация", "Авито"]


def generate_leads(acc: "SandboxAccount", n: int, without_task_share: float, seed_value: int) -> list[int]:
    rng = random.Random(seed_value)
    now = acc.now()
    pipeline = acc.main_pipeline()
    active = [s for s in pipeline.statuses if not s.terminal]
    terminal = [s for s in pipeline.statuses if s.terminal and s.id not in CLOSED]
    managers = [u.id for u in acc.users.values() if not u.is_admin] or list(acc.users)
    by = acc.info.current_user_id
    fields = {f.name: f.id for f in acc.fields[LEADS].values()}
    call_type = 1 if 1 in acc.task_types else next(iter(acc.task_types))
    start = len(acc.leads)
    ids = []
    for i in range(n):
        number = start + i + 1
        first, gender = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES) + ("а" if gender == "ж" else "")
        name = f"{first} {last}"
        status = rng.choice(terminal) if terminal and rng.random() < 0.1 else rng.choice(active)
        responsible = rng.choice(managers)
        created = now - rng.randint(600, 60 * 86400)
        values = [{"field_id": fields["Источник"], "values": [{"value": rng.choice(SOURCES)}]}] \
            if "Источник" in fields else []
        if status.name == "Недозвон" and "Попытка дозвона" in fields:
            values.append({"field_id": fields["Попытка дозвона"], "values": [{"value": f"Н{rng.randint(1, 6)}"}]})
        lead = acc._insert_lead(name=name, price=0, responsible_user_id=responsible, status_id=status.id,
                                pipeline_id=pipeline.id, created_by=by, updated_by=by, created_at=created,
                                updated_at=min(now, created + rng.randint(0, 3600)), custom_fields=values)
        # 10-digit numbers 950 000 00 01 and up never collide with the demo phones.
        phone_digits = f"{9500000000 + number}"
        phone = f"+7 {phone_digits[:3]} {phone_digits[3:6]}-{phone_digits[6:8]}-{phone_digits[8:]}"
        contact = acc._insert_contact(name=name, first_name=first, last_name=last, responsible_user_id=responsible,
                                      created_by=by, updated_by=by, created_at=created, updated_at=created,
                                      custom_fields=_phone_values(acc, phone))
        acc._link(lead, contact, main=True)
        if not status.terminal and rng.random() >= without_task_share:
            due = now + rng.randint(-2 * 86400, 7 * 86400)
            acc._insert_task(text=status.task_text or "Позвонить клиенту", complete_till=due,
                             responsible_user_id=responsible, task_type_id=call_type, created_by=responsible,
                             updated_by=responsible, created_at=min(due, now) - 3600,
                             updated_at=min(due, now) - 3600, entity_id=lead.id, entity_type=LEADS)
        ids.append(lead.id)
    return ids

