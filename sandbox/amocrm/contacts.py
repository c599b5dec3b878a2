"""Writing contacts (POST/PATCH /api/v4/contacts) and linking them to leads (/link, /unlink)."""

from __future__ import annotations

import copy
from typing import Any

from . import fields as cf
from .core import AccountCore, _known
from .model import CONTACTS, LEADS, Contact
from .problems import INVALID_TYPE, NOT_SUPPORTED_CHOICE, Problems


class ContactWrites(AccountCore):
    def _check_contact(self, item: dict, rid: str, problems: Problems) -> dict:
        plan: dict[str, Any] = {}
        for key in ("name", "first_name", "last_name"):
            if key in item:
                if not isinstance(item[key], str):
                    problems.add(rid, key, INVALID_TYPE, type="string")
                else:
                    plan[key] = item[key].strip()
        self._take_ints_and_responsible(item, ("created_at", "updated_at"), rid, problems, plan)
        plan["custom_fields"] = cf.parse(self.fields[CONTACTS], item.get("custom_fields_values"), rid, problems,
                                         self.info.timezone)
        embedded = item.get("_embedded") if isinstance(item.get("_embedded"), dict) else {}
        plan["tags"] = self._check_tags(embedded.get("tags"), "_embedded.tags", rid, problems)
        return plan

    @staticmethod
    def _contact_name(plan: dict, contact: Contact | None) -> None:
        if "name" not in plan and ("first_name" in plan or "last_name" in plan):
            first = plan.get("first_name", contact.first_name if contact else "")
            last = plan.get("last_name", contact.last_name if contact else "")
            plan["name"] = f"{first} {last}".strip()

    def add_contacts(self, items: Any, actor: int) -> list[tuple[Contact, str]]:
        with self.changes(), self.lock:
            checked = self._check_items(items)
            problems = Problems()
            plans = [(rid, self._check_contact(item, rid, problems)) for rid, item in checked]
            problems.raise_if_any()
            created = []
            for rid, plan in plans:
                self._contact_name(plan, None)
                now = self.now()
                contact = self._insert_contact(
                    name=plan.get("name", ""), first_name=plan.get("first_name", ""),
                    last_name=plan.get("last_name", ""),
                    responsible_user_id=plan.get("responsible_user_id", actor), created_by=actor, updated_by=actor,
                    created_at=plan.get("created_at", now), updated_at=plan.get("updated_at", now),
                    custom_fields=cf.merge([], plan["custom_fields"]), tag_ids=self._tag_ids(plan["tags"] or []),
                )
                self._event("contact_added", "contact", contact.id, actor)
                self._emit("add_contact", "contacts", "add", contact)
                created.append((contact, rid))
            return created

    def update_contacts(self, items: Any, actor: int) -> list[tuple[Contact, str]]:
        return self._update_each(self.contacts, items,
                                 lambda item, rid, problems, contact: self._check_contact(item, rid, problems),
                                 lambda contact, plan: self._apply_contact(contact, plan, actor))

    def _apply_contact(self, contact: Contact, plan: dict, actor: int) -> Contact:
        before = copy.deepcopy(contact)
        self._contact_name(plan, contact)
        for key in ("name", "first_name", "last_name", "responsible_user_id", "created_at"):
            if key in plan:
                setattr(contact, key, plan[key])
        contact.custom_fields = cf.merge(contact.custom_fields, plan["custom_fields"])
        if plan["tags"] is not None:
            contact.tag_ids = self._tag_ids(plan["tags"])
        if contact != before:
            contact.updated_at = plan.get("updated_at", self.now())
            contact.updated_by = actor
            if before.responsible_user_id != contact.responsible_user_id:
                self._event("entity_responsible_changed", "contact", contact.id, actor,
                            before=[{"responsible_user": {"id": before.responsible_user_id}}],
                            after=[{"responsible_user": {"id": contact.responsible_user_id}}])
            self._emit("update_contact", "contacts", "update", contact)
        return contact

    def link(self, entity_type: str, items: Any, actor: int, entity_id: int | None = None,
             unlink: bool = False) -> list[dict]:
        """POST /api/v4/{leads|contacts}[/{id}]/link|unlink with [{entity_id?, to_entity_id, to_entity_type}]."""
        other = CONTACTS if entity_type == LEADS else LEADS
        with self.changes(), self.lock:
            checked = self._check_items(items)
            problems = Problems()
            pairs = []
            for rid, item in checked:
                main_id = entity_id if entity_id is not None else item.get("entity_id")
                store = self.leads if entity_type == LEADS else self.contacts
                if not _known(store, main_id):
                    problems.add(rid, "entity_id", NOT_SUPPORTED_CHOICE)
                    continue
                if item.get("to_entity_type") != other:
                    problems.add(rid, "to_entity_type", NOT_SUPPORTED_CHOICE)
                    continue
                to_store = self.contacts if other == CONTACTS else self.leads
                if not _known(to_store, item.get("to_entity_id")):
                    problems.add(rid, "to_entity_id", NOT_SUPPORTED_CHOICE)
                    continue
                meta = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
                is_main = bool(meta.get("is_main") or meta.get("main_contact"))
                pairs.append((main_id, item["to_entity_id"], is_main))
            problems.raise_if_any()
            result = []
            for main_id, to_id, is_main in pairs:
                lead_id, contact_id = (main_id, to_id) if entity_type == LEADS else (to_id, main_id)
                lead, contact = self.leads[lead_id], self.contacts[contact_id]
                if unlink:
                    self._unlink(lead, contact)
                else:
                    self._link(lead, contact, main=is_main or not lead.contact_ids)
                is_main_now = bool(lead.contact_ids) and lead.contact_ids[0] == contact_id
                result.append({"entity_id": main_id, "entity_type": entity_type, "to_entity_id": to_id,
                               "to_entity_type": other, "metadata": {"main_contact": is_main_now}})
            return result
