"""Request and answer shapes of the REST methods, field by field against the docs' examples."""

from __future__ import annotations

import re

import requests

from .conftest import hook, result

# Keys of crm.deal.get's documented example (without its portal-specific PARENT_ID_1220 / UF_CRM_1721244482250).
DEAL_KEYS = {"ID", "TITLE", "TYPE_ID", "STAGE_ID", "PROBABILITY", "CURRENCY_ID", "OPPORTUNITY", "IS_MANUAL_OPPORTUNITY",
             "TAX_VALUE", "LEAD_ID", "COMPANY_ID", "CONTACT_ID", "QUOTE_ID", "BEGINDATE", "CLOSEDATE", "ASSIGNED_BY_ID",
             "CREATED_BY_ID", "MODIFY_BY_ID", "DATE_CREATE", "DATE_MODIFY", "OPENED", "CLOSED", "COMMENTS",
             "ADDITIONAL_INFO", "LOCATION_ID", "CATEGORY_ID", "STAGE_SEMANTIC_ID", "IS_NEW", "IS_RECURRING",
             "IS_RETURN_CUSTOMER", "IS_REPEATED_APPROACH", "SOURCE_ID", "SOURCE_DESCRIPTION", "ORIGINATOR_ID",
             "ORIGIN_ID", "MOVED_BY_ID", "MOVED_TIME", "LAST_ACTIVITY_TIME", "UTM_SOURCE", "UTM_MEDIUM",
             "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM", "LAST_ACTIVITY_BY"}
TIME_KEYS = {"start", "finish", "duration", "processing", "date_start", "date_finish", "operating_reset_at", "operating"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")
STAGES = ["Новая заявка", "Недозвон", "Просил перезвонить", "Записался на пробное", "Не пришел на пробное",
          "Пришел на пробное", "Принимает решение", "Клиент", "Инкубатор", "Отказ", "Расторгнут договор", "Завершил"]


def test_deal_add_get_update_delete_in_the_documented_shapes(b24):
    r = hook(b24, "crm.deal.add", {"fields": {"TITLE": "Пробное занятие", "ASSIGNED_BY_ID": 2, "OPPORTUNITY": 1500,
                                              "UF_CRM_REDIAL_ATTEMPT": "Н2", "NO_SUCH_FIELD": "ignored"}})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"result", "time"} and isinstance(body["result"], int)
    assert TIME_KEYS <= set(body["time"])
    deal = result(b24, "crm.deal.get", {"id": body["result"]})
    assert DEAL_KEYS <= set(deal) and "NO_SUCH_FIELD" not in deal
    assert deal["ID"] == str(body["result"]) and deal["ASSIGNED_BY_ID"] == "2" and deal["OPPORTUNITY"] == "1500.00"
    assert deal["STAGE_ID"] == "NEW" and deal["CATEGORY_ID"] == "0" and deal["STAGE_SEMANTIC_ID"] == "P"
    assert deal["CLOSED"] == "N" and deal["CREATED_BY_ID"] == "1" and deal["UF_CRM_REDIAL_ATTEMPT"] == "Н2"
    assert ISO.match(deal["DATE_CREATE"]) and ISO.match(deal["MOVED_TIME"]) and deal["LEAD_ID"] is None
    # crm.deal.update's own example sends upper-case ID/FIELDS/PARAMS
    r = hook(b24, "crm.deal.update", {"ID": deal["ID"], "FIELDS": {"STAGE_ID": "WON"}, "PARAMS": {"REGISTER_SONET_EVENT": "N"}})
    assert r.json()["result"] is True
    won = result(b24, "crm.deal.get", {"id": deal["ID"]})
    assert (won["STAGE_ID"], won["STAGE_SEMANTIC_ID"], won["CLOSED"], won["IS_NEW"]) == ("WON", "S", "Y", "N")
    assert result(b24, "crm.deal.delete", {"id": deal["ID"]}) is True
    gone = hook(b24, "crm.deal.get", {"id": deal["ID"]})
    assert gone.status_code == 400 and gone.json() == {"error": "", "error_description": "Not found"}


def test_form_and_query_parameters_with_php_keys_and_the_json_suffix(b24):
    r = requests.post(b24.webhook_url + "crm.deal.add.json",
                      data={"fields[TITLE]": "Из формы", "fields[ASSIGNED_BY_ID]": "3", "fields[CATEGORY_ID]": "1"},
                      timeout=5)
    new_id = r.json()["result"]
    r = requests.get(b24.webhook_url + "crm.deal.list", params={
        "filter[ID]": new_id, "select[]": ["ID", "TITLE", "STAGE_ID", "CATEGORY_ID"]}, timeout=5)
    assert r.json()["result"] == [{"ID": str(new_id), "TITLE": "Из формы", "STAGE_ID": "C1:NEW", "CATEGORY_ID": "1"}]
    # method names are case-insensitive, as in telephony.externalCall.register
    assert requests.get(b24.webhook_url + "CRM.Deal.Get", params={"ID": new_id}, timeout=5).json()["result"]["TITLE"] \
        == "Из формы"


def test_a_stage_outside_the_deals_pipeline_is_refused(b24):
    r = hook(b24, "crm.deal.add", {"fields": {"TITLE": "x", "CATEGORY_ID": 1, "STAGE_ID": "NEW"}})
    assert r.status_code == 400 and r.json()["error"] == ""


def test_stages_of_both_pipelines_with_their_semantics(b24):
    main = result(b24, "crm.status.list", {"order": {"SORT": "ASC"}, "filter": {"ENTITY_ID": "DEAL_STAGE"}})
    assert [s["NAME"] for s in main] == STAGES + ["Сделка успешна", "Сделка провалена"]
    assert set(main[0]) == {"ID", "ENTITY_ID", "STATUS_ID", "NAME", "NAME_INIT", "SORT", "SYSTEM", "CATEGORY_ID",
                            "COLOR", "SEMANTICS", "EXTRA"}
    assert [(s["STATUS_ID"], s["SEMANTICS"], s["EXTRA"]["SEMANTICS"]) for s in main[-2:]] == \
        [("WON", "S", "success"), ("LOSE", "F", "failure")]
    assert main[0]["SEMANTICS"] is None and main[0]["EXTRA"]["SEMANTICS"] == "process" and main[0]["CATEGORY_ID"] is None
    second = result(b24, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE_1"}})
    assert [s["STATUS_ID"] for s in second] == ["C1:NEW", "C1:PREPARATION", "C1:WON", "C1:LOSE"]
    assert {s["CATEGORY_ID"] for s in second} == {"1"}
    leads = result(b24, "crm.status.list", {"filter": {"ENTITY_ID": "STATUS"}})
    assert [s["STATUS_ID"] for s in leads] == ["NEW", "IN_PROCESS", "PROCESSED", "CONVERTED", "JUNK"]


def test_pipelines_through_crm_category_and_the_old_dealcategory_methods(b24):
    r = hook(b24, "crm.category.list", {"entityTypeId": 2}).json()
    assert r["total"] == 2
    assert r["result"]["categories"][0] == {"id": 0, "name": "Продажи", "sort": 100, "entityTypeId": 2,
                                            "isDefault": "Y"}
    assert hook(b24, "crm.category.list", {"entityTypeId": 1}).json()["error"] == "ENTITY_TYPE_NOT_SUPPORTED"
    old = result(b24, "crm.dealcategory.list", {"order": {"SORT": "ASC"}, "filter": {"IS_LOCKED": "N"}})
    assert [(c["ID"], c["NAME"]) for c in old] == [("1", "Продления")]
    assert result(b24, "crm.dealcategory.default.get") == {"ID": 0, "NAME": "Продажи"}
    assert [s["STATUS_ID"] for s in result(b24, "crm.dealcategory.stage.list", {"id": 1})][0] == "C1:NEW"


def test_deal_user_fields_include_the_loss_reason_list(b24):
    fields = result(b24, "crm.deal.userfield.list", {"order": {"SORT": "ASC"}, "filter": {"LANG": "ru"}})
    by_label = {f["EDIT_FORM_LABEL"]: f for f in fields}
    assert {"Попытка дозвона", "Дата перезвона", "Дата пробного", "Окончание абонемента", "Причина отказа"} <= set(by_label)
    reason = by_label["Причина отказа"]
    assert reason["USER_TYPE_ID"] == "enumeration" and reason["ENTITY_ID"] == "CRM_DEAL"
    assert [i["VALUE"] for i in reason["LIST"]][:3] == ["Не дозвонились 7 раз", "Дубль", "Не звонить"]
    assert set(reason["LIST"][0]) == {"ID", "SORT", "VALUE", "DEF", "XML_ID"}
    refused = result(b24, "crm.deal.list", {"filter": {"STAGE_ID": "UC_REFUSED"}, "select": ["ID", "UF_*"]})[0]
    assert refused[reason["FIELD_NAME"]] == next(i["ID"] for i in reason["LIST"] if i["VALUE"] == "Не звонить")


def test_three_managers_and_a_head(b24):
    users = hook(b24, "user.get", {"FILTER": {"USER_TYPE": "employee"}}).json()
    assert users["total"] == 4
    assert [(u["ID"], u["NAME"], u["LAST_NAME"]) for u in users["result"]] == [
        ("1", "Галина", "Орлова"), ("2", "Анна", "Смирнова"), ("3", "Борис", "Иванов"), ("4", "Вера", "Петрова")]
    assert users["result"][0]["ACTIVE"] is True and users["result"][1]["UF_DEPARTMENT"] == [1]
    assert result(b24, "user.get", {"ID": 3})[0]["EMAIL"] == "boris.ivanov@demo.example"
    assert result(b24, "department.get")[0]["UF_HEAD"] == "1"
    assert result(b24, "user.current")["ID"] == "1"   # the incoming webhook's user


def test_contacts_carry_phone_multifields_and_findbycomm_matches_any_spelling(b24):
    new_id = result(b24, "crm.contact.add", {"fields": {"NAME": "Пётр", "LAST_NAME": "Орлов", "PHONE": [
        {"VALUE": "+7 (999) 111-22-33", "VALUE_TYPE": "MOBILE"}, {"VALUE": "84951234567", "VALUE_TYPE": "WORK"}]}})
    contact = result(b24, "crm.contact.get", {"id": new_id})
    assert contact["HAS_PHONE"] == "Y" and [set(p) for p in contact["PHONE"]] == [{"ID", "VALUE_TYPE", "VALUE", "TYPE_ID"}] * 2
    assert [(p["VALUE"], p["VALUE_TYPE"], p["TYPE_ID"]) for p in contact["PHONE"]] == [
        ("+7 (999) 111-22-33", "MOBILE", "PHONE"), ("84951234567", "WORK", "PHONE")]
    found = hook(b24, "crm.duplicate.findbycomm", {"type": "PHONE", "values": ["89991112233"]}).json()
    assert found["result"] == {"CONTACT": [new_id]}
    seeded = result(b24, "crm.duplicate.findbycomm", {"type": "PHONE", "values": ["+79035551202"], "entity_type": "CONTACT"})
    assert len(seeded["CONTACT"]) == 1
    assert result(b24, "crm.duplicate.findbycomm", {"type": "PHONE", "values": ["+70000000000"]}) == []
    missing = hook(b24, "crm.duplicate.findbycomm", {"values": ["1"]})
    assert missing.status_code == 400 and missing.json() == {"error": "Communication type is not defined",
                                                             "error_description": "Parameter 'type' is required."}
    # updating a multifield: an item with ID changes it, an empty VALUE deletes it, one without ID is appended
    first, second = contact["PHONE"]
    hook(b24, "crm.contact.update", {"id": new_id, "fields": {"PHONE": [{"ID": first["ID"], "VALUE": ""},
                                                                         {"VALUE": "+7 916 000-00-01"}]}})
    phones = [p["VALUE"] for p in result(b24, "crm.contact.get", {"id": new_id})["PHONE"]]
    assert phones == ["84951234567", "+7 916 000-00-01"]
    listed = result(b24, "crm.contact.list", {"filter": {"PHONE": "+79160000001"}, "select": ["ID", "PHONE"]})
    assert [c["ID"] for c in listed] == [str(new_id)] and len(listed[0]["PHONE"]) == 2


def test_leads_basic(b24):
    lead_id = result(b24, "crm.lead.add", {"fields": {"TITLE": "Лид", "NAME": "Олег"}})
    lead = result(b24, "crm.lead.get", {"id": lead_id})
    assert (lead["STATUS_ID"], lead["STATUS_SEMANTIC_ID"]) == ("NEW", "P")
    assert result(b24, "crm.lead.update", {"id": lead_id, "fields": {"STATUS_ID": "JUNK"}}) is True
    assert result(b24, "crm.lead.get", {"id": lead_id})["STATUS_SEMANTIC_ID"] == "F"
    bad = hook(b24, "crm.lead.update", {"id": "abc", "fields": {}})
    assert bad.json() == {"error": "", "error_description": "ID is not defined or invalid."}


def test_timeline_comments(b24):
    comment_id = result(b24, "crm.timeline.comment.add", {"fields": {"ENTITY_ID": 102, "ENTITY_TYPE": "deal",
                                                                     "COMMENT": "Регламент: Н2"}})
    assert isinstance(comment_id, int)
    listed = hook(b24, "crm.timeline.comment.list", {"filter": {"ENTITY_ID": 102, "ENTITY_TYPE": "deal"}}).json()
    assert listed["total"] == 1
    assert {k: listed["result"][0][k] for k in ("ID", "ENTITY_ID", "ENTITY_TYPE", "COMMENT", "AUTHOR_ID")} == {
        "ID": str(comment_id), "ENTITY_ID": "102", "ENTITY_TYPE": "deal", "COMMENT": "Регламент: Н2", "AUTHOR_ID": "1"}
    # only lower-case `fields` is accepted since crm 23.100.0
    assert hook(b24, "crm.timeline.comment.add", {"FIELDS": {"ENTITY_ID": 102, "ENTITY_TYPE": "deal",
                                                             "COMMENT": "x"}}).status_code == 400
