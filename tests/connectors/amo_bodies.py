"""Test data: amoCRM settings with recognisable fake secrets, and response bodies in amoCRM's real
shapes (from the amoCRM reference and the official docs)."""

from reglament.config import AmoCRMSettings, OAuth

BASE = "https://example.amocrm.ru"
ACCOUNT = "acme"
LONG_TOKEN = "llt.eyJhbGciOiJSUzI1NiJ9.long-lived-SECRET-0001"
CLIENT_SECRET = "client-secret-SECRET-0002"
OLD_ACCESS = "eyJ0eXAiOiJKV1Qi.old-access-SECRET-0003"
OLD_REFRESH = "def50200-old-refresh-SECRET-0004"
NEW_ACCESS = "eyJ0eXAiOiJKV1Qi.new-access-SECRET-0005"
NEW_REFRESH = "def50200-new-refresh-SECRET-0006"
AUTH_CODE = "def50200-auth-code-SECRET-0007"
ALL_SECRETS = (LONG_TOKEN, CLIENT_SECRET, OLD_ACCESS, OLD_REFRESH, NEW_ACCESS, NEW_REFRESH, AUTH_CODE)


def long_lived_settings(**kw) -> AmoCRMSettings:
    # A generous rate so tests are not slowed by the limiter (it is tested on its own).
    return AmoCRMSettings(base_url=BASE, long_lived_token=LONG_TOKEN, rate_limit=kw.pop("rate_limit", 1000), **kw)


def oauth_settings(**oauth) -> AmoCRMSettings:
    return AmoCRMSettings(base_url=BASE, rate_limit=1000,
                  oauth=OAuth(client_id="client-id-1", client_secret=CLIENT_SECRET,
                              redirect_uri="https://reglament.example/oauth", **oauth))


def link(path: str) -> dict:
    return {"self": {"href": BASE + path}}


LEAD = {
    "id": 17657, "name": "Тестовая сделка", "price": 25000, "responsible_user_id": 321123, "group_id": 0,
    "status_id": 2030, "pipeline_id": 1113, "loss_reason_id": None, "source_id": None, "created_by": 12332,
    "updated_by": 12323, "created_at": 1587741226, "updated_at": 1588241643, "closed_at": None,
    "closest_task_at": None, "is_deleted": False,
    "custom_fields_values": [{"field_id": 1278898021, "field_name": "Кастомное поле", "field_code": None,
                              "field_type": "date", "values": [{"value": "2020-05-08"}]}],
    "score": None, "account_id": 115135,
    "_links": link("/api/v4/leads/17657"),
    "_embedded": {
        "tags": [{"id": 1252595, "name": "Тег для примера"}],
        "companies": [{"id": 40401297, "_links": link("/api/v4/companies/40401297")}],
        "contacts": [{"id": 10971463, "is_main": True, "_links": link("/api/v4/contacts/10971463")}],
    },
}


def lead(lead_id: int, **fields) -> dict:
    return {**LEAD, "id": lead_id, "_links": link(f"/api/v4/leads/{lead_id}"), **fields}


TASK = {
    "id": 56981, "created_by": 54224, "updated_by": 3987910, "created_at": 1575910123, "updated_at": 1576767989,
    "responsible_user_id": 123123, "group_id": 0, "entity_id": 180765, "entity_type": "leads", "duration": 0,
    "is_completed": True, "task_type_id": 2, "text": "Назначить встречу с клиентом",
    "result": {"text": "Результат есть"}, "complete_till": 1575910423, "account_id": 321312,
    "_links": link("/api/v4/tasks/56981"),
}


def task(task_id: int, **fields) -> dict:
    return {**TASK, "id": task_id, "_links": link(f"/api/v4/tasks/{task_id}"), **fields}


CONTACT = {
    "id": 3, "name": "Иван Иванов", "first_name": "Иван", "last_name": "Иванов", "responsible_user_id": 504141,
    "group_id": 0, "created_by": 504141, "updated_by": 504141, "created_at": 1582117331, "updated_at": 1590943929,
    "closest_task_at": None,
    "custom_fields_values": [{"field_id": 3, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext",
                              "values": [{"value": "+7 (999) 000-11-22", "enum_id": 1, "enum": "WORK"}]}],
    "account_id": 28805383, "_links": link("/api/v4/contacts/3"),
    "_embedded": {"tags": [], "companies": []},
}


def page(key: str, items: list, path: str, page_no: int = 1, next_href: str | None = None) -> dict:
    links = {"self": {"href": f"{BASE}{path}?page={page_no}&limit=250"}}
    if next_href:
        links["next"] = {"href": next_href}
    return {"_page": page_no, "_links": links, "_embedded": {key: items}}


def created(key: str, path: str, request_ids: list[str], first_id: int) -> dict:
    return {"_links": link(path), "_embedded": {key: [
        {"id": first_id + i, "request_id": rid, "_links": link(f"{path}/{first_id + i}")}
        for i, rid in enumerate(request_ids)]}}


VALIDATION_ERROR = {
    "validation-errors": [{"request_id": "0", "errors": [
        {"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id",
         "detail": "The value you selected is not a valid choice."}]}],
    "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400, "detail": "Request validation failed",
}

UNAUTHORIZED = {"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401, "detail": "Unauthorized"}
FORBIDDEN = {"title": "Forbidden", "type": "https://httpstatus.es/403", "status": 403, "detail": "Forbidden"}
REFRESH_REFUSED = {"hint": "Token has been revoked", "title": "Некорректный запрос",
                   "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson", "status": 400,
                   "detail": "В запросе отсутствует ряд параметров или параметры невалидны"}


def token_pair(access: str, refresh: str) -> dict:
    return {"token_type": "Bearer", "expires_in": 86400, "access_token": access, "refresh_token": refresh}


WEBHOOK = {"id": 1056949, "destination": "https://example.test", "created_at": 1589012268, "updated_at": 1589012268,
           "account_id": 321321, "created_by": 3944275, "sort": 1, "disabled": False, "settings": ["add_lead"]}

HAL = {"Content-Type": "application/hal+json"}
PROBLEM = "application/problem+json"
