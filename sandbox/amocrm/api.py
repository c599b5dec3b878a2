"""The amoCRM REST API v4 subset, as HTTP routes under /api/v4.

Every route needs `Authorization: Bearer <token>` (the long-lived token or a live OAuth access
token, see oauth.py) and counts against the rate limit.
Writes may name the acting user with the sandbox-only header `X-Sandbox-User: <user id>`
(default: the token's user, the account's current_user_id).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, g, request

from sandbox.forms import nest

from . import filters, views
from .context import current
from .hal import base, hal, listing, no_content, page_url, problem
from .model import CONTACTS, LEADS
from .problems import NotFound
from .query import BadQuery, as_list, paging, withs

bp = Blueprint("amocrm_api", __name__, url_prefix="/api/v4")
ENTITY = "<any(leads, contacts):entity>"


class BadBody(ValueError):
    """The request body is not the JSON the endpoint takes."""


def params() -> dict:
    return nest(request.args.items(multi=True))


def body():
    data = request.get_json(silent=True, force=True)
    if data is None:
        raise BadBody("Request body must be valid JSON")
    return data


def single_body() -> dict:
    data = body()
    if not isinstance(data, dict):
        raise BadBody("Request body must be a JSON object")
    return data


def actor() -> int:
    return current().account.actor(request.headers.get("X-Sandbox-User"))


@bp.before_request
def guard() -> Response | None:
    sandbox = current()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    long_lived = hmac.compare_digest(token.encode(), sandbox.token.encode())
    if scheme.lower() != "bearer" or not (long_lived or sandbox.oauth.accepts(token)):
        return problem(401, "Unauthorized")  # also for expired or revoked OAuth access tokens
    refused = sandbox.faults.answer() or (None if sandbox.limiter.allow() else 429)
    if refused == 429:
        sandbox.faults.note_429()
        # The PHP client recognises 429 by status with a non-JSON body (CONFIRMED); the body stays empty.
        return Response(status=429)
    if refused:
        return problem(refused, "fault injected by /_sandbox/faults" if refused != 403 else "blocked: too many requests")
    g.user_id = actor()
    return None


# ------------------------------------------------------------------ account, users
@bp.get("/account")
def account():
    acc = current().account
    with acc.lock:
        return hal(views.account(acc, base(), withs(params())))


@bp.get("/users")
def users():
    acc, p = current().account, params()
    page, limit = paging(p)
    with acc.lock:
        items = sorted(acc.users.values(), key=lambda u: u.id)
        return listing("users", items, page, limit, lambda u: views.user(acc, u, base(), withs(p)),
                       extra={"_total_items": len(items)})


@bp.get("/users/<int:user_id>")
def user(user_id: int):
    acc = current().account
    with acc.lock:
        if user_id not in acc.users:
            raise NotFound("User not found")
        return hal(views.user(acc, acc.users[user_id], base(), withs(params())))


# ------------------------------------------------------------------ pipelines, loss reasons, custom fields
@bp.get("/leads/pipelines")
def pipelines():
    acc = current().account
    with acc.lock:
        items = [views.pipeline(acc, p, base()) for p in sorted(acc.pipelines.values(), key=lambda p: p.sort)]
        return hal({"_total_items": len(items), "_links": {"self": {"href": request.base_url}},
                    "_embedded": {"pipelines": items}})


def _pipeline(acc, pipeline_id: int):
    if pipeline_id not in acc.pipelines:
        raise NotFound("Pipeline not found")  # CONFIRMED wording and status
    return acc.pipelines[pipeline_id]


@bp.get("/leads/pipelines/<int:pipeline_id>")
def pipeline(pipeline_id: int):
    acc = current().account
    with acc.lock:
        return hal(views.pipeline(acc, _pipeline(acc, pipeline_id), base()))


@bp.get("/leads/pipelines/<int:pipeline_id>/statuses")
def statuses(pipeline_id: int):
    acc = current().account
    with acc.lock:
        p = _pipeline(acc, pipeline_id)
        items = [views.status(acc, s, base()) for s in sorted(p.statuses, key=lambda s: s.sort)]
        return hal({"_total_items": len(items), "_links": {"self": {"href": request.base_url}},
                    "_embedded": {"statuses": items}})


@bp.get("/leads/pipelines/<int:pipeline_id>/statuses/<int:status_id>")
def status(pipeline_id: int, status_id: int):
    acc = current().account
    with acc.lock:
        s = _pipeline(acc, pipeline_id).status(status_id)
        if s is None:
            raise NotFound("Status not found")
        return hal(views.status(acc, s, base()))


@bp.get("/leads/loss_reasons")
def loss_reasons():
    acc, p = current().account, params()
    page, limit = paging(p)
    with acc.lock:
        items = sorted(acc.loss_reasons.values(), key=lambda r: r.sort)
        return listing("loss_reasons", items, page, limit, lambda r: views.loss_reason(r, base()),
                       extra={"_total_items": len(items)})


@bp.get("/leads/loss_reasons/<int:reason_id>")
def loss_reason(reason_id: int):
    acc = current().account
    with acc.lock:
        if reason_id not in acc.loss_reasons:
            raise NotFound("Loss reason not found")
        return hal(views.loss_reason(acc.loss_reasons[reason_id], base()))


@bp.get(f"/{ENTITY}/custom_fields")
def custom_fields(entity: str):
    acc, p = current().account, params()
    page, limit = paging(p)
    with acc.lock:
        items = sorted(acc.fields[entity].values(), key=lambda f: f.sort)
        return listing("custom_fields", items, page, limit, lambda f: views.custom_field(acc, f, base()),
                       extra={"_total_items": len(items)})


@bp.get(f"/{ENTITY}/custom_fields/<int:field_id>")
def custom_field(entity: str, field_id: int):
    acc = current().account
    with acc.lock:
        f = acc.fields[entity].get(field_id)
        if f is None:
            raise NotFound("Custom field not found")  # CONFIRMED wording and status
        return hal(views.custom_field(acc, f, base()))


# ------------------------------------------------------------------ leads and contacts
def _render(entity: str):
    return views.lead if entity == LEADS else views.contact


def _store(acc, entity: str) -> dict:
    return acc.leads if entity == LEADS else acc.contacts


def _list(entity: str):
    acc, p = current().account, params()
    page, limit = paging(p)
    w = withs(p)
    render = _render(entity)
    with acc.lock:
        items = filters.leads(acc, p) if entity == LEADS else filters.contacts(acc, p)
        return listing(entity, items, page, limit, lambda e: render(acc, e, base(), w))


def _get(entity: str, entity_id: int):
    acc = current().account
    with acc.lock:
        found = _store(acc, entity).get(entity_id)
        if found is None or found.is_deleted:
            return no_content()  # a missing entity answers 204 like an empty list (UNCONFIRMED)
        return hal(_render(entity)(acc, found, base(), withs(params())))


def _created(entity: str, created: list) -> Response:
    b = base()
    return hal({"_links": {"self": {"href": f"{b}/api/v4/{entity}"}},
                "_embedded": {entity: [{"id": e.id, "request_id": rid,
                                        "_links": {"self": {"href": f"{b}/api/v4/{entity}/{e.id}"}}}
                                       for e, rid in created]}})


def _updated(entity: str, updated: list) -> Response:
    b = base()
    return hal({"_links": {"self": {"href": f"{b}/api/v4/{entity}"}},
                "_embedded": {entity: [{"id": e.id, "updated_at": e.updated_at, "request_id": rid,
                                        "_links": {"self": {"href": f"{b}/api/v4/{entity}/{e.id}"}}}
                                       for e, rid in updated]}})


def _patch_one(entity: str, entity_id: int, update) -> Response:
    acc = current().account
    if entity_id not in _store(acc, entity):
        raise NotFound(f"{'Lead' if entity == LEADS else 'Contact'} not found")
    ((e, _),) = update([dict(single_body(), id=entity_id)], g.user_id)
    return hal({"id": e.id, "updated_at": e.updated_at,
                "_links": {"self": {"href": f"{base()}/api/v4/{entity}/{e.id}"}}})


@bp.get("/leads")
def leads_list():
    return _list(LEADS)


@bp.get("/leads/<int:lead_id>")
def lead_get(lead_id: int):
    return _get(LEADS, lead_id)


@bp.post("/leads")
def leads_add():
    return _created(LEADS, current().account.add_leads(body(), g.user_id))


@bp.patch("/leads")
def leads_update():
    return _updated(LEADS, current().account.update_leads(body(), g.user_id))


@bp.patch("/leads/<int:lead_id>")
def lead_update(lead_id: int):
    return _patch_one(LEADS, lead_id, current().account.update_leads)


@bp.get("/contacts")
def contacts_list():
    return _list(CONTACTS)


@bp.get("/contacts/<int:contact_id>")
def contact_get(contact_id: int):
    return _get(CONTACTS, contact_id)


@bp.post("/contacts")
def contacts_add():
    return _created(CONTACTS, current().account.add_contacts(body(), g.user_id))


@bp.patch("/contacts")
def contacts_update():
    return _updated(CONTACTS, current().account.update_contacts(body(), g.user_id))


@bp.patch("/contacts/<int:contact_id>")
def contact_update(contact_id: int):
    return _patch_one(CONTACTS, contact_id, current().account.update_contacts)


# ------------------------------------------------------------------ links between leads and contacts
def _links_answer(links: list[dict]) -> Response:
    return hal({"_total_items": len(links), "_links": {"self": {"href": request.base_url}},
                "_embedded": {"links": links}})


@bp.post(f"/{ENTITY}/link")
def link_many(entity: str):
    return _links_answer(current().account.link(entity, body(), g.user_id))


@bp.post(f"/{ENTITY}/<int:entity_id>/link")
def link_one(entity: str, entity_id: int):
    return _links_answer(current().account.link(entity, body(), g.user_id, entity_id=entity_id))


@bp.post(f"/{ENTITY}/unlink")
def unlink_many(entity: str):
    current().account.link(entity, body(), g.user_id, unlink=True)
    return no_content()


@bp.post(f"/{ENTITY}/<int:entity_id>/unlink")
def unlink_one(entity: str, entity_id: int):
    current().account.link(entity, body(), g.user_id, entity_id=entity_id, unlink=True)
    return no_content()


def _links_of(acc, entity: str, ids: set[int]) -> list[dict]:
    out = []
    for entity_id in sorted(ids):
        found = _store(acc, entity).get(entity_id)
        if found is None:
            continue
        if entity == LEADS:
            out += [{"entity_id": entity_id, "entity_type": LEADS, "to_entity_id": c, "to_entity_type": CONTACTS,
                     "metadata": {"main_contact": i == 0}} for i, c in enumerate(found.contact_ids)]
        else:
            out += [{"entity_id": entity_id, "entity_type": CONTACTS, "to_entity_id": lid, "to_entity_type": LEADS,
                     "metadata": {"main_contact": acc.leads[lid].contact_ids[:1] == [entity_id]}}
                    for lid in found.lead_ids]
    return out


@bp.get(f"/{ENTITY}/<int:entity_id>/links")
def links_one(entity: str, entity_id: int):
    acc = current().account
    with acc.lock:
        links = _links_of(acc, entity, {entity_id})
        return _links_answer(links) if links else no_content()


@bp.get(f"/{ENTITY}/links")
def links_many(entity: str):
    acc, p = current().account, params()
    f = p.get("filter") if isinstance(p.get("filter"), dict) else {}
    try:
        ids = {int(v) for v in as_list(f.get("entity_id"))}
    except ValueError:
        raise BadQuery("filter[entity_id] must be integers") from None
    with acc.lock:
        links = _links_of(acc, entity, ids)
        return _links_answer(links) if links else no_content()


# ------------------------------------------------------------------ tasks
@bp.get("/tasks")
def tasks_list():
    acc, p = current().account, params()
    page, limit = paging(p)
    with acc.lock:
        return listing("tasks", filters.tasks(acc, p), page, limit, lambda t: views.task(acc, t, base()))


@bp.get("/tasks/<int:task_id>")
def task_get(task_id: int):
    acc = current().account
    with acc.lock:
        t = acc.tasks.get(task_id)
        return hal(views.task(acc, t, base())) if t else no_content()


@bp.post("/tasks")
def tasks_add():
    return _created("tasks", current().account.add_tasks(body(), g.user_id))


@bp.patch("/tasks")
def tasks_update():
    return _updated("tasks", current().account.update_tasks(body(), g.user_id))


@bp.patch("/tasks/<int:task_id>")
def task_update(task_id: int):
    acc = current().account
    if task_id not in acc.tasks:
        raise NotFound("Task not found")
    ((t, _),) = acc.update_tasks([dict(single_body(), id=task_id)], g.user_id)
    return hal({"id": t.id, "updated_at": t.updated_at, "_links": {"self": {"href": f"{base()}/api/v4/tasks/{t.id}"}}})


# ------------------------------------------------------------------ notes and calls
def _notes(entity: str, entity_id: int | None):
    acc, p = current().account, params()
    page, limit = paging(p)
    with acc.lock:
        items = filters.notes(acc, entity, p, entity_id)
        return listing("notes", items, page, limit, lambda n: views.note(acc, n, base()))


@bp.get(f"/{ENTITY}/notes")
def notes_list(entity: str):
    return _notes(entity, None)


@bp.get(f"/{ENTITY}/<int:entity_id>/notes")
def notes_of(entity: str, entity_id: int):
    return _notes(entity, entity_id)


@bp.get(f"/{ENTITY}/notes/<int:note_id>")
@bp.get(f"/{ENTITY}/<int:entity_id>/notes/<int:note_id>")
def note_get(entity: str, note_id: int, entity_id: int | None = None):
    acc = current().account
    with acc.lock:
        n = acc.notes.get(note_id)
        if n is None or n.entity_type != entity or (entity_id is not None and n.entity_id != entity_id):
            return no_content()
        return hal(views.note(acc, n, base()))


def _notes_created(entity: str, created: list) -> Response:
    b = base()
    return hal({"_links": {"self": {"href": request.base_url}},
                "_embedded": {"notes": [{"id": n.id, "entity_id": n.entity_id, "request_id": rid,
                                         "_links": {"self": {"href": f"{b}/api/v4/{entity}/{n.entity_id}/notes/{n.id}"}}}
                                        for n, rid in created]}})


@bp.post(f"/{ENTITY}/notes")
def notes_add(entity: str):
    return _notes_created(entity, current().account.add_notes(entity, body(), g.user_id))


@bp.post(f"/{ENTITY}/<int:entity_id>/notes")
def notes_add_to(entity: str, entity_id: int):
    return _notes_created(entity, current().account.add_notes(entity, body(), g.user_id, parent_id=entity_id))


@bp.post("/calls")
def calls_add():
    added, errors = current().account.add_calls(body(), g.user_id)
    b = base()
    acc = current().account
    # Response shape UNCONFIRMED (recalled): added calls in _embedded.calls, unmatched phones in "errors".
    return hal({"_total_items": len(added), "_links": {"self": {"href": request.base_url}},
                "_embedded": {"calls": [{"id": n.id, "entity_id": n.entity_id, "entity_type": n.entity_type,
                                         "account_id": acc.info.id, "request_id": rid,
                                         "_embedded": {"entity": {"id": n.entity_id, "_links": {"self": {
                                             "href": f"{b}/api/v4/{n.entity_type}/{n.entity_id}"}}}}}
                                        for n, rid in added]},
                "errors": errors})


# ------------------------------------------------------------------ events
@bp.get("/events")
def events_list():
    acc, p = current().account, params()
    page, limit = paging(p, max_limit=100)  # RU docs: "системное ограничение 100"
    with acc.lock:
        return listing("events", filters.events(acc, p), page, limit, lambda e: views.event(acc, e, base()))


@bp.get("/events/<event_id>")
def event_get(event_id: str):
    acc = current().account
    with acc.lock:
        e = next((e for e in acc.events if e.id == event_id), None)
        return hal(views.event(acc, e, base())) if e else no_content()


# ------------------------------------------------------------------ webhook subscriptions
@bp.get("/webhooks")
def webhooks_list():
    acc, p = current().account, params()
    f = p.get("filter") if isinstance(p.get("filter"), dict) else {}
    destination = f.get("destination")
    items = [w for w in acc.subscriptions() if destination is None or w.destination == destination]
    if not items:
        return no_content()
    return hal({"_total_items": len(items), "_links": {"self": {"href": page_url(1, 250)}},
                "_embedded": {"webhooks": [views.webhook(acc, w) for w in items]}})


@bp.post("/webhooks")
def webhooks_subscribe():
    acc = current().account
    return hal(views.webhook(acc, acc.subscribe(body(), g.user_id)))


@bp.delete("/webhooks")
def webhooks_unsubscribe():
    current().account.unsubscribe(single_body().get("destination"))
    return no_content()
