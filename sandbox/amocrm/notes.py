"""Writing notes (POST /api/v4/{leads|contacts}/notes) and calls (POST /api/v4/calls)."""

from __future__ import annotations

from typing import Any

from .core import AccountCore, _known
from .model import CONTACTS, LEADS, Note
from .problems import FIELD_MISSING, INVALID_TYPE, NOT_SUPPORTED_CHOICE, Problems

NOTE_TYPES = ("common", "call_in", "call_out", "service_message")
NOTE_EVENTS = {"common": "common_note_added", "call_in": "incoming_call", "call_out": "outgoing_call"}
EVENT_ENTITY = {LEADS: "lead", CONTACTS: "contact"}


class NoteWrites(AccountCore):
    def _check_note(self, entity_type: str, item: dict, rid: str, problems: Problems, parent_id: int | None) -> dict:
        store = self.leads if entity_type == LEADS else self.contacts
        entity_id = parent_id if parent_id is not None else item.get("entity_id")
        plan: dict[str, Any] = {"entity_id": entity_id}
        if entity_id is None:
            problems.add(rid, "entity_id", FIELD_MISSING)
        elif not _known(store, entity_id):
            problems.add(rid, "entity_id", NOT_SUPPORTED_CHOICE)
        note_type = item.get("note_type")
        if note_type not in NOTE_TYPES:
            problems.add(rid, "note_type", NOT_SUPPORTED_CHOICE)
            return plan
        plan["note_type"] = note_type
        params = item.get("params")
        if not isinstance(params, dict):
            problems.add(rid, "params", FIELD_MISSING if params is None else INVALID_TYPE, type="object")
            return plan
        required = {"common": ("text",), "call_in": ("phone",), "call_out": ("phone",),
                    "service_message": ("service", "text")}[note_type]
        for key in required:
            if params.get(key) in (None, ""):
                problems.add(rid, f"params.{key}", FIELD_MISSING)
        plan["params"] = dict(params)
        for key in ("created_by", "responsible_user_id"):
            if key in item:
                # 0 is allowed: amoCRM's "robot" author
                plan[key] = 0 if item[key] == 0 else self._check_user(item, key, rid, problems)
        if item.get("created_at") is not None:
            plan["created_at"] = self._check_int(item, "created_at", rid, problems)
        return plan

    def add_notes(self, entity_type: str, items: Any, actor: int, parent_id: int | None = None) -> list[tuple[Note, str]]:
        with self.changes(), self.lock:
            checked = self._check_items(items)
            problems = Problems()
            plans = [(rid, self._check_note(entity_type, item, rid, problems, parent_id)) for rid, item in checked]
            problems.raise_if_any()
            return [(self._insert_note(entity_type, plan, actor), rid) for rid, plan in plans]

    def _insert_note(self, entity_type: str, plan: dict, actor: int) -> Note:
        entity = (self.leads if entity_type == LEADS else self.contacts)[plan["entity_id"]]
        created_by = plan.get("created_by")
        created_by = actor if created_by is None else created_by
        now = self.now()
        params = plan["params"]
        if plan["note_type"] in ("call_in", "call_out"):
            params = {"uniq": params.get("uniq") or self._ulid.new(), "duration": params.get("duration", 0),
                      "source": params.get("source", ""), "link": params.get("link", ""),
                      "phone": params.get("phone", ""), "call_result": params.get("call_result", ""),
                      "call_status": params.get("call_status"),
                      **({"call_responsible": params["call_responsible"]} if "call_responsible" in params else {})}
        note = Note(id=self._new_id("note"), entity_id=entity.id, entity_type=entity_type,
                    note_type=plan["note_type"], params=params, created_by=created_by, updated_by=created_by,
                    created_at=plan.get("created_at") or now, updated_at=plan.get("created_at") or now,
                    responsible_user_id=plan.get("responsible_user_id") or entity.responsible_user_id)
        self.notes[note.id] = note
        event = NOTE_EVENTS.get(note.note_type)
        if event:
            self._event(event, EVENT_ENTITY[entity_type], entity.id, created_by, after=[{"note": {"id": note.id}}])
        setting = "note_lead" if entity_type == LEADS else "note_contact"
        self._emit(setting, entity_type, "note", note)
        return note

    def add_calls(self, items: Any, actor: int) -> tuple[list[tuple[Note, str]], list[dict]]:
        """POST /api/v4/calls: attach each call to the single active lead of the contact with that phone.

        Calls whose phone matches no contact are not added; they come back as error items.
        """
        with self.changes(), self.lock:
            checked = self._check_items(items)
            problems = Problems()
            for rid, item in checked:
                if item.get("direction") not in ("inbound", "outbound"):
                    problems.add(rid, "direction", FIELD_MISSING if "direction" not in item else NOT_SUPPORTED_CHOICE)
                if item.get("duration") is None:
                    problems.add(rid, "duration", FIELD_MISSING)
                else:
                    self._check_int(item, "duration", rid, problems)
                for key in ("source", "phone"):
                    if not isinstance(item.get(key), str) or not item[key].strip():
                        problems.add(rid, key, FIELD_MISSING)
                if "call_status" in item and item["call_status"] not in range(1, 9):
                    problems.add(rid, "call_status", NOT_SUPPORTED_CHOICE)
                for key in ("responsible_user_id", "created_by"):
                    if key in item:
                        self._check_user(item, key, rid, problems)
            problems.raise_if_any()
            added, errors = [], []
            for rid, item in checked:
                contacts = self.contacts_by_phone(item["phone"])
                if not contacts:
                    errors.append({"request_id": rid, "status": 404, "title": "Not Found",
                                   "detail": "Entity with this phone number was not found"})
                    continue
                active = [lead for c in contacts for lead in self.active_leads(c)]
                active = list({lead.id: lead for lead in active}.values())
                entity_type, entity = (LEADS, active[0]) if len(active) == 1 else (CONTACTS, contacts[0])
                plan = {"entity_id": entity.id, "note_type": "call_in" if item["direction"] == "inbound" else "call_out",
                        "params": {"uniq": item.get("uniq"), "duration": item["duration"], "source": item["source"],
                                   "link": item.get("link", ""), "phone": item["phone"],
                                   "call_result": item.get("call_result", ""), "call_status": item.get("call_status"),
                                   **({"call_responsible": item["responsible_user_id"]}
                                      if "responsible_user_id" in item else {})},
                        # Without created_by amoCRM attributes the call to a robot (CONFIRMED in the calls docs).
                        "created_by": item.get("created_by", 0),
                        "responsible_user_id": item.get("responsible_user_id"),
                        "created_at": item.get("created_at")}
                added.append((self._insert_note(entity_type, plan, actor), rid))
            return added, errors
