"""Filling a Portal from its YAML seed, and generating many deals for benchmarks.

Seeded data is what the portal already held: it is inserted silently (no events).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from sandbox.seeds import seconds

if TYPE_CHECKING:
    from .portal import Portal

SEMANTICS = {None: "process", "S": "success", "F": "failure"}


def populate(portal: "Portal", spec: dict) -> None:
    from zoneinfo import ZoneInfo

    info = spec["portal"]
    portal.info = {"name": info["name"], "domain": info.get("domain"), "member_id": info["member_id"],
                   "currency": info.get("currency", "RUB"), "timezone": info.get("timezone", "Europe/Moscow")}
    portal.tz = ZoneInfo(portal.info["timezone"])
    portal.ids.update(spec["ids"])
    heads = {d["head"]: d["id"] for d in spec.get("departments", [])}
    for u in spec["users"]:
        full = f"{u['name']} {u['last_name']}"
        portal.users[u["id"]] = {
            "ID": str(u["id"]), "ACTIVE": True, "NAME": u["name"], "LAST_NAME": u["last_name"], "SECOND_NAME": "",
            "EMAIL": u["email"], "LAST_LOGIN": portal.iso(portal.now() - 3600), "DATE_REGISTER": portal.iso(
                portal.now() - 400 * 86400), "TIME_ZONE": "", "IS_ONLINE": "N", "PERSONAL_GENDER": "",
            "PERSONAL_MOBILE": "", "WORK_PHONE": "", "WORK_POSITION": u.get("position", ""),
            "UF_EMPLOYMENT_DATE": "", "UF_DEPARTMENT": [u.get("department", 1)],
            "UF_PHONE_INNER": str(u.get("phone_inner", "")), "USER_TYPE": "employee",
            "IS_ADMIN": bool(u.get("admin")), "IS_HEAD": full in heads,
        }
    for d in spec.get("departments", []):
        head = portal.user_by_name(d["head"])["ID"]
        portal.departments[d["id"]] = {"ID": str(d["id"]), "NAME": d["name"], "SORT": 500, "UF_HEAD": head}
    status_id = 100
    for c in spec["categories"]:
        portal.categories[c["id"]] = {"id": c["id"], "name": c["name"], "sort": c.get("sort", 100),
                                      "entityTypeId": 2, "isDefault": "Y" if c["id"] == 0 else "N"}
        for index, s in enumerate(c["stages"]):
            status_id += 1
            portal.statuses.append(_status(status_id, portal.stage_entity(c["id"]), s, (index + 1) * 10,
                                           None if c["id"] == 0 else str(c["id"])))
    for entity, items in (("STATUS", spec.get("lead_statuses", [])), ("SOURCE", spec.get("sources", []))):
        for index, s in enumerate(items):
            status_id += 1
            portal.statuses.append(_status(status_id, entity, s, (index + 1) * 10, None))
    for index, f in enumerate(spec.get("deal_fields", [])):
        portal.userfields["CRM_DEAL"].append(_userfield(f, "CRM_DEAL", (index + 1) * 100))
    _seed_items(portal, spec)


def _status(number: int, entity: str, s: dict, sort: int, category: str | None) -> dict:
    semantics = s.get("semantics")
    color = s.get("color", "#39A8EF")
    return {"ID": str(number), "ENTITY_ID": entity, "STATUS_ID": s["id"], "NAME": s["name"], "NAME_INIT": s["name"],
            "SORT": str(s.get("sort", sort)), "SYSTEM": "Y" if s["id"].split(":")[-1] in ("NEW", "WON", "LOSE") else "N",
            "CATEGORY_ID": category, "COLOR": color, "SEMANTICS": semantics,
            "EXTRA": {"SEMANTICS": SEMANTICS[semantics], "COLOR": color},
            # sandbox-only, not answered: the next step generated deals get here, and stages without one
            "_task": s.get("task"), "_terminal": bool(s.get("terminal")) or semantics is not None}


def _userfield(f: dict, entity: str, sort: int) -> dict:
    field = {"ID": str(f["id"]), "ENTITY_ID": entity, "FIELD_NAME": f["code"], "USER_TYPE_ID": f["type"],
             "XML_ID": None, "SORT": str(sort), "MULTIPLE": "Y" if f.get("multiple") else "N",
             "MANDATORY": "N", "SHOW_FILTER": "E", "SHOW_IN_LIST": "Y", "EDIT_IN_LIST": "Y", "IS_SEARCHABLE": "N",
             "SETTINGS": {}, "EDIT_FORM_LABEL": f["name"], "LIST_COLUMN_LABEL": f["name"],
             "LIST_FILTER_LABEL": f["name"], "ERROR_MESSAGE": None, "HELP_MESSAGE": None}
    if f["type"] == "enumeration":
        field["SETTINGS"] = {"DISPLAY": "LIST", "LIST_HEIGHT": 1, "CAPTION_NO_VALUE": "", "SHOW_NO_VALUE": "Y"}
        field["LIST"] = [{"ID": str(f["id"] * 10 + k + 1), "SORT": str((k + 1) * 10), "VALUE": v, "DEF": "N",
                          "XML_ID": f"{f['code']}_{k + 1}"} for k, v in enumerate(f["values"])]
    return field


def _uf_values(portal: "Portal", values: dict | None, now: float) -> dict:
    out = {}
    for label, value in (values or {}).items():
        uf = portal.userfield_by_label("CRM_DEAL", label)
        if isinstance(value, dict) and "in" in value:
            value = portal.iso(now + seconds(value["in"]))
        elif uf["USER_TYPE_ID"] == "enumeration":
            value = next(item["ID"] for item in uf["LIST"] if item["VALUE"] == value)
        out[uf["FIELD_NAME"]] = value
    return out


def _seed_items(portal: "Portal", spec: dict) -> None:
    from . import activities, crm, tasks
    from .portal import Caller

    now = portal.now()
    head = Caller(next(u for u, d in portal.users.items() if d["IS_ADMIN"]), "page")
    for item in spec.get("deals", []):
        created = now - seconds(item.get("created_ago", 0))
        responsible = int(portal.user_by_name(item["responsible"])["ID"])
        category = item.get("category", 0)
        fields = {"TITLE": item["title"], "ASSIGNED_BY_ID": responsible, "CATEGORY_ID": category,
                  "STAGE_ID": portal.stage_by_name(item["stage"], category)["STATUS_ID"],
                  "SOURCE_ID": item.get("source"), "OPPORTUNITY": item.get("amount", 0),
                  **_uf_values(portal, item.get("fields"), now)}
        if "contact" in item:
            first, _, last = item["contact"]["name"].partition(" ")
            fields["CONTACT_ID"] = crm.add(portal, crm.CONTACT, {
                "NAME": first, "LAST_NAME": last, "ASSIGNED_BY_ID": responsible, "SOURCE_ID": item.get("source"),
                "PHONE": [{"VALUE": item["contact"]["phone"], "VALUE_TYPE": "WORK"}]}, head, silent=True,
                created=created)
        deal_id = crm.add(portal, crm.DEAL, fields, head, silent=True, created=created)
        manager = Caller(responsible, "page")
        if "todo" in item:
            t = item["todo"]
            activities.add(portal, 2, deal_id, activities.TODO, manager, subject=t["title"],
                           deadline=now + seconds(t["due_in"]), responsible=responsible, silent=True,
                           created=now - seconds(t.get("created_ago", 0)))
        if "task" in item:
            t = item["task"]
            tasks.add(portal, {"TITLE": t["title"], "RESPONSIBLE_ID": responsible, "UF_CRM_TASK": [f"D_{deal_id}"],
                               "DEADLINE": portal.iso(now + seconds(t["due_in"]))}, manager, silent=True,
                      created=now - seconds(t.get("created_ago", 0)))
    for item in spec.get("leads", []):
        responsible = int(portal.user_by_name(item["responsible"])["ID"])
        crm.add(portal, crm.LEAD, {"TITLE": item["title"], "NAME": item.get("name"), "LAST_NAME": item.get("last_name"),
                                   "STATUS_ID": item.get("status", "NEW"), "ASSIGNED_BY_ID": responsible,
                                   "PHONE": [{"VALUE": item["phone"], "VALUE_TYPE": "WORK"}] if item.get("phone") else []},
                head, silent=True, created=now - seconds(item.get("created_ago", 0)))


FIRST_NAMES = ["Александр", "Максим", "Артём", "Михаил", "Андрей", "Павел", "Игорь", "Елена", "Ирина", "Светлана"]
LAST_NAMES = ["Кузнецов", "Попов", "Васильев", "Смирнов", "Зайцев", "Павлов", "Семёнов", "Голубев", "Белов"]


def generate_deals(portal: "Portal", n: int, without_todo_share: float, seed_value: int) -> list[int]:
    """n deals in the default pipeline, each with a contact; active ones get one open to-do except a share."""
    from . import activities, crm
    from .portal import Caller

    rng = random.Random(seed_value)
    now = portal.now()
    stages = portal.stages(0)
    active = [s for s in stages if not s["_terminal"]]
    closed = [s for s in stages if s["_terminal"]]
    managers = [u for u, d in portal.users.items() if not d["IS_ADMIN"]] or list(portal.users)
    ids = []
    for i in range(n):
        stage = rng.choice(closed) if closed and rng.random() < 0.1 else rng.choice(active)
        responsible = rng.choice(managers)
        caller = Caller(responsible, "page")
        created = now - rng.randint(600, 60 * 86400)
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        digits = f"{9500000000 + len(portal.contacts) + 1}"
        contact = crm.add(portal, crm.CONTACT, {"NAME": name.split()[0], "LAST_NAME": name.split()[1],
                                                "ASSIGNED_BY_ID": responsible,
                                                "PHONE": [{"VALUE": f"+7{digits}", "VALUE_TYPE": "WORK"}]},
                          caller, silent=True, created=created)
        deal = crm.add(portal, crm.DEAL, {"TITLE": name, "STAGE_ID": stage["STATUS_ID"], "ASSIGNED_BY_ID": responsible,
                                          "CONTACT_ID": contact}, caller, silent=True,
                       created=min(now, created + rng.randint(0, 3600)))
        if not stage["_terminal"] and rng.random() >= without_todo_share:
            activities.add(portal, 2, deal, activities.TODO, caller, subject=stage["_task"] or "Позвонить клиенту",
                           deadline=now + rng.randint(-2 * 86400, 7 * 86400), responsible=responsible, silent=True,
                           created=created)
        ids.append(deal)
    return ids

