"""Writing leads: POST/PATCH /api/v4/leads, with status, responsible and custom field rules."""

from __future__ import annotations

import copy
from typing import Any

from . import fields as cf
from .core import AccountCore, _is_int, _known
from .model import CLOSED, LEADS, LOST, Lead
from .problems import FIELD_MISSING, INVALID_TYPE, NOT_SUPPORTED_CHOICE, Problems


class LeadWrites(AccountCore):
    def _check_lead(self, item: dict, rid: str, problems: Problems, current: Lead | None) -> dict:
        plan: dict[str, Any] = {}
        if "name" in item:
            if not isinstance(item["name"], str):
                problems.add(rid, "name", INVALID_TYPE, type="string")
            else:
                plan["name"] = item["name"]
        self._take_ints_and_responsible(item, ("price", "created_at", "updated_at", "closed_at"), rid, problems, plan)
        if "loss_reason_id" in item:
            value = item["loss_reason_id"]
            if value is not None and (not _is_int(value) or value not in self.loss_reasons):
                problems.add(rid, "loss_reason_id", NOT_SUPPORTED_CHOICE)
            else:
                plan["loss_reason_id"] = value
        self._check_lead_status(item, rid, problems, current, plan)
        plan["custom_fields"] = cf.parse(self.fields[LEADS], item.get("custom_fields_values"), rid, problems,
                                         self.info.timezone)
        embedded = item.get("_embedded") or {}
        if not isinstance(embedded, dict):
            problems.add(rid, "_embedded", INVALID_TYPE, type="object")
            embedded = {}
        plan["tags"] = self._check_tags(embedded.get("tags"), "_embedded.tags", rid, problems)
        plan["tags_to_add"] = self._check_tags(item.get("tags_to_add"), "tags_to_add", rid, problems)
        plan["tags_to_delete"] = self._check_tags(item.get("tags_to_delete"), "tags_to_delete", rid, problems)
        contacts = embedded.get("contacts")
        if contacts is not None:
            plan["contacts"] = []
            for i, c in enumerate(contacts if isinstance(contacts, list) else []):
                if not isinstance(c, dict) or not _known(self.contacts, c.get("id")):
                    problems.add(rid, f"_embedded.contacts.{i}.id", NOT_SUPPORTED_CHOICE)
                else:
                    plan["contacts"].append((c["id"], bool(c.get("is_main"))))
        return plan

    def _check_lead_status(self, item: dict, rid: str, problems: Problems, current: Lead | None, plan: dict) -> None:
        status_id, pipeline_id = item.get("status_id"), item.get("pipeline_id")
        pipeline = None
        if pipeline_id is not None:
            pipeline = self.pipelines.get(pipeline_id) if _is_int(pipeline_id) else None
            if pipeline is None:
                problems.add(rid, "pipeline_id", NOT_SUPPORTED_CHOICE)
                return
        if status_id is None:
            if pipeline is not None and (current is None or current.pipeline_id != pipeline.id):
                plan["pipeline_id"], plan["status_id"] = pipeline.id, self.first_status(pipeline).id
            elif current is None:
                main = self.main_pipeline()
                plan["pipeline_id"], plan["status_id"] = main.id, self.first_status(main).id
            return
        if not _is_int(status_id):
            problems.add(rid, "status_id", INVALID_TYPE, type="int")
            return
        if status_id in CLOSED and pipeline is None:
            # 142/143 exist in every pipeline, so amoCRM needs to be told which one.
            problems.add(rid, "pipeline_id", FIELD_MISSING)
            return
        if pipeline is None:
            home = self.pipelines.get(current.pipeline_id) if current else self.main_pipeline()
            if home and home.status(status_id):
                pipeline = home
            else:
                pipeline = next((p for p in self.pipelines.values() if p.status(status_id)), None)
        if pipeline is None or pipeline.status(status_id) is None:
            problems.add(rid, "status_id", NOT_SUPPORTED_CHOICE)
            return
        plan["pipeline_id"], plan["status_id"] = pipeline.id, status_id

    def add_leads(self, items: Any, actor: int) -> list[tuple[Lead, str]]:
        with self.changes(), self.lock:
            checked = self._check_items(items)
            problems = Problems()
            plans = [(rid, self._check_lead(item, rid, problems, None)) for rid, item in checked]
            problems.raise_if_any()
            created = []
            for rid, plan in plans:
                now = self.now()
                lead = self._insert_lead(
                    name=plan.get("name", ""), price=plan.get("price", 0),
                    responsible_user_id=plan.get("responsible_user_id", actor),
                    status_id=plan["status_id"], pipeline_id=plan["pipeline_id"],
                    created_by=actor, updated_by=actor,
                    created_at=plan.get("created_at", now), updated_at=plan.get("updated_at", now),
                    loss_reason_id=plan.get("loss_reason_id"), closed_at=plan.get("closed_at"),
                    custom_fields=cf.merge([], plan["custom_fields"]),
                    tag_ids=self._tag_ids((plan["tags"] or []) + (plan["tags_to_add"] or [])),
                )
                if not lead.name:
                    lead.name = f"Сделка #{lead.id}"  # what amoCRM shows for an unnamed lead (UNCONFIRMED)
                for contact_id, is_main in plan.get("contacts", []):
                    self._link(lead, self.contacts[contact_id], main=is_main or not lead.contact_ids)
                self._event("lead_added", "lead", lead.id, actor)
                self._emit("add_lead", "leads", "add", lead)
                created.append((lead, rid))
            return created

    def update_leads(self, items: Any, actor: int) -> list[tuple[Lead, str]]:
        return self._update_each(self.leads, items, self._check_lead,
                                 lambda lead, plan: self._apply_lead(lead, plan, actor))

    def _apply_lead(self, lead: Lead, plan: dict, actor: int) -> Lead:
        before = copy.deepcopy(lead)
        for key in ("name", "price", "responsible_user_id", "status_id", "pipeline_id", "loss_reason_id",
                    "created_at", "closed_at"):
            if key in plan:
                setattr(lead, key, plan[key])
        lead.custom_fields = cf.merge(lead.custom_fields, plan["custom_fields"])
        if plan["tags"] is not None:
            lead.tag_ids = self._tag_ids(plan["tags"])
        if plan["tags_to_add"]:
            lead.tag_ids = list(dict.fromkeys(lead.tag_ids + self._tag_ids(plan["tags_to_add"])))
        if plan["tags_to_delete"]:
            drop = set(self._tag_ids(plan["tags_to_delete"]))
            lead.tag_ids = [t for t in lead.tag_ids if t not in drop]
        for contact_id, is_main in plan.get("contacts", []):
            self._link(lead, self.contacts[contact_id], main=is_main)
        status_changed = (before.status_id, before.pipeline_id) != (lead.status_id, lead.pipeline_id)
        now = self.now()
        if status_changed and "closed_at" not in plan:
            lead.closed_at = now if lead.status_id in CLOSED else None
        if status_changed and lead.status_id != LOST and "loss_reason_id" not in plan:
            lead.loss_reason_id = None
        if lead == before:
            return lead  # nothing changed: no update, no event, no webhook
        lead.updated_at = plan.get("updated_at", now)
        lead.updated_by = actor
        if status_changed:
            self._event("lead_status_changed", "lead", lead.id, actor,
                        before=[{"lead_status": {"id": before.status_id, "pipeline_id": before.pipeline_id}}],
                        after=[{"lead_status": {"id": lead.status_id, "pipeline_id": lead.pipeline_id}}])
        if before.responsible_user_id != lead.responsible_user_id:
            self._event("entity_responsible_changed", "lead", lead.id, actor,
                        before=[{"responsible_user": {"id": before.responsible_user_id}}],
                        after=[{"responsible_user": {"id": lead.responsible_user_id}}])
        old_status = {"old_status_id": before.status_id, "old_pipeline_id": before.pipeline_id} if status_changed else {}
        if status_changed:
            self._emit("status_lead", "leads", "status", lead, **old_status)
        if before.responsible_user_id != lead.responsible_user_id:
            self._emit("responsible_lead", "leads", "responsible", lead,
                       old_responsible_user_id=before.responsible_user_id)
        self._emit("update_lead", "leads", "update", lead, **old_status)
        return lead
