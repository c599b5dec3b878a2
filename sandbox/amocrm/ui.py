"""A tiny server-rendered page at / (Russian, plain HTML forms) to act as the sales managers.

Every form calls the same SandboxAccount methods as the API, so a change made here records
the same events and sends the same webhooks. The acting user is the lead's (or task's)
responsible manager: on this page you play the manager whose work Reglament watches.
No token is needed: the page is for a local sandbox.
"""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, redirect, render_template_string, request

from sandbox.pages import STYLE, back

from .context import current
from .fields import DATE_TYPES
from .model import LEADS, LOST
from .problems import ValidationFailed

bp = Blueprint("amocrm_sandbox_ui", __name__)
MAX_ROWS = 200

CALL_STATUSES = {1: "Оставил сообщение", 2: "Перезвонить позже", 3: "Нет на месте", 4: "Разговор состоялся",
                 5: "Неверный номер", 6: "Не дозвонился", 7: "Номер занят"}

PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Песочница amoCRM — {{ info.name }}</title>
""" + STYLE + """</head><body>
<h1>Песочница amoCRM: {{ info.name }}</h1>
<p class="muted">Аккаунт {{ info.id }} «{{ info.subdomain }}», время песочницы {{ now|dt }} ({{ info.timezone }}).
 API: <code>{{ root }}/api/v4/…</code> · журналы: <a href="/_sandbox/webhooks">вебхуки</a>,
 <a href="/_sandbox/requests">запросы к API</a></p>
{% if error %}<p class="err">{{ error }}</p>{% endif %}

<fieldset><legend>Новая сделка (как заявка с сайта)</legend>
<form method="post" action="/ui/leads">
 <input name="name" placeholder="Имя клиента" required>
 <input name="phone" placeholder="+7 900 000-00-00" required>
 <select name="responsible_user_id">{% for u in users %}<option value="{{ u.id }}">{{ u.name }}</option>{% endfor %}</select>
 <select name="status_id">{% for s in statuses %}<option value="{{ s.id }}">{{ s.name }}</option>{% endfor %}</select>
 <button>Создать</button></form></fieldset>

<form method="get" action="/">Показать: <select name="status"><option value="">все статусы</option>
 {% for s in statuses %}<option value="{{ s.id }}" {% if s.id == status_filter %}selected{% endif %}>{{ s.name }}</option>{% endfor %}</select>
 <select name="user"><option value="">все менеджеры</option>
 {% for u in users %}<option value="{{ u.id }}" {% if u.id == user_filter %}selected{% endif %}>{{ u.name }}</option>{% endfor %}</select>
 <button>Фильтр</button> <span class="muted">сделок: {{ total }}{% if total > rows|length %}, показаны последние {{ rows|length }}{% endif %}</span></form>

<table><tr><th>Сделка</th><th>Статус</th><th>Ответственный</th><th>Открытые задачи</th><th>Звонок</th></tr>
{% for r in rows %}<tr>
 <td><b>{{ r.lead.name }}</b><br><span class="muted small">#{{ r.lead.id }}{% if r.contact %} · {{ r.contact.name }}{% endif %}
  {% for p in r.phones %}<br>{{ p }}{% endfor %}</span>
  {% for f in r.fields %}<br><span class="small">{{ f }}</span>{% endfor %}</td>
 <td><span class="st" style="background:{{ r.status.color }}">{{ r.status.name }}</span>
  {% if r.lead.loss_reason_id %}<br><span class="small">{{ reasons[r.lead.loss_reason_id].name }}</span>{% endif %}
  <form method="post" action="/ui/leads/{{ r.lead.id }}/status"><input type="hidden" name="back" value="{{ back }}">
   <select name="status_id">{% for s in statuses %}<option value="{{ s.id }}" {% if s.id == r.lead.status_id %}selected{% endif %}>{{ s.name }}</option>{% endfor %}</select>
   <select name="loss_reason_id" title="Причина отказа (для «Закрыто и не реализовано»)"><option value="">— причина —</option>
   {% for lr in reasons.values() %}<option value="{{ lr.id }}">{{ lr.name }}</option>{% endfor %}</select>
   <button>Сменить</button></form></td>
 <td>{{ users_by_id[r.lead.responsible_user_id].name }}</td>
 <td>{% for t in r.tasks %}<div class="step"><span class="{% if t.complete_till < now %}overdue{% endif %}">{{ t.complete_till|dt }}</span>
   · {{ task_types[t.task_type_id].name }}: {{ t.text }}
   <form method="post" action="/ui/tasks/{{ t.id }}/complete"><input type="hidden" name="back" value="{{ back }}">
    <input name="result" placeholder="Результат"><button>Выполнить</button></form>
   <form method="post" action="/ui/tasks/{{ t.id }}/move"><input type="hidden" name="back" value="{{ back }}">
    <input type="datetime-local" name="due" required><button>Перенести</button></form></div>
  {% else %}<span class="muted">нет задач</span>{% endfor %}
  <form method="post" action="/ui/leads/{{ r.lead.id }}/tasks"><input type="hidden" name="back" value="{{ back }}">
   <input name="text" placeholder="Новая задача" required><input type="datetime-local" name="due" required>
   <select name="task_type_id">{% for tt in task_types.values() %}<option value="{{ tt.id }}">{{ tt.name }}</option>{% endfor %}</select>
   <button>Поставить</button></form></td>
 <td>{% if r.phones %}<form method="post" action="/ui/leads/{{ r.lead.id }}/call"><input type="hidden" name="back" value="{{ back }}">
   <select name="direction"><option value="outbound">Исходящий</option><option value="inbound">Входящий</option></select>
   <select name="call_status">{% for k, v in call_statuses.items() %}<option value="{{ k }}">{{ v }}</option>{% endfor %}</select>
   <input name="duration" type="number" min="0" value="60" style="width:5em" title="Длительность, с">
   <input name="call_result" placeholder="Итог разговора"><button>Записать звонок</button></form>
  {% else %}<span class="muted">нет телефона</span>{% endif %}</td>
</tr>{% endfor %}</table>

<h2>Последние вебхуки</h2>
<table><tr><th>Время</th><th>Куда</th><th>Секции</th><th>Попытка</th><th>Ответ</th></tr>
{% for d in deliveries %}<tr><td>{{ d.time|dt }}</td><td class="small">{{ d.destination }}</td><td>{{ d.sections|join(", ") }}</td>
 <td>{{ d.attempt }}</td><td>{{ d.status or d.error }}</td></tr>
{% else %}<tr><td colspan="5" class="muted">пока ни одного (подписки: POST /api/v4/webhooks)</td></tr>{% endfor %}</table>
</body></html>"""


def _tz() -> ZoneInfo:
    return ZoneInfo(current().account.info.timezone)


def _dt(ts) -> str:
    return datetime.fromtimestamp(int(ts), _tz()).strftime("%d.%m.%Y %H:%M") if ts else ""


def _parse_local(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=_tz()).timestamp())


def _explain(e: ValidationFailed) -> str:
    return "; ".join(f"{err['path']}: {err['detail']}" for item in e.errors for err in item["errors"])


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _field_texts(acc, values: list[dict]) -> list[str]:
    """Lead fields as «name: value» lines, dates in the account's time zone."""
    out = []
    for f in values:
        d = acc.fields[LEADS].get(f["field_id"])
        if d is None:
            continue
        if d.type == "date":
            shown = [_dt(v.get("value"))[:10] for v in f["values"]]
        elif d.type in DATE_TYPES:
            shown = [_dt(v.get("value")) for v in f["values"]]
        else:
            shown = [str(v.get("value")) for v in f["values"]]
        out.append(f"{d.name}: {', '.join(shown)}")
    return out


@bp.get("/")
def page():
    acc = current().account
    status_filter, user_filter = _int(request.args.get("status")), _int(request.args.get("user"))
    with acc.lock:
        pipeline = acc.main_pipeline()
        statuses = sorted(pipeline.statuses, key=lambda s: s.sort)
        leads = [lead for lead in acc.leads.values()
                 if (status_filter is None or lead.status_id == status_filter)
                 and (user_filter is None or lead.responsible_user_id == user_filter)]
        leads.sort(key=lambda lead: (lead.updated_at, lead.id), reverse=True)
        rows = []
        for lead in leads[:MAX_ROWS]:
            contact = acc.contacts.get(lead.contact_ids[0]) if lead.contact_ids else None
            rows.append({"lead": lead, "contact": contact, "phones": acc.contact_phones(contact) if contact else [],
                         "status": acc.status(lead.pipeline_id, lead.status_id) or statuses[0],
                         "tasks": acc.tasks_of(LEADS, lead.id), "fields": _field_texts(acc, lead.custom_fields)})
        here = request.full_path.rstrip("?") or "/"
        deliveries = list(reversed(current().dispatcher.log()[-15:]))
        html = render_template_string(
            PAGE, info=acc.info, now=acc.now(), root=request.host_url.rstrip("/"), error=request.args.get("error"),
            users=sorted(acc.users.values(), key=lambda u: u.id), users_by_id=acc.users, statuses=statuses,
            reasons=acc.loss_reasons, task_types=acc.task_types, rows=rows, total=len(leads), back=here,
            status_filter=status_filter, user_filter=user_filter, call_statuses=CALL_STATUSES, deliveries=deliveries)
    return html


@bp.app_template_filter("dt")
def dt_filter(ts) -> str:
    return _dt(ts)


@bp.post("/ui/leads")
def new_lead():
    acc = current().account
    f = request.form
    actor = acc.actor(f.get("responsible_user_id"))
    phone_field = next(iter(acc.phone_field_ids()))
    try:
        with acc.changes():
            ((contact, _),) = acc.add_contacts([{
                "name": f.get("name", "").strip(), "responsible_user_id": actor,
                "custom_fields_values": [{"field_id": phone_field, "values": [{"value": f.get("phone", "").strip()}]}],
            }], actor)
            acc.add_leads([{"name": f.get("name", "").strip(), "responsible_user_id": actor,
                            "status_id": _int(f.get("status_id")), "pipeline_id": acc.main_pipeline().id,
                            "_embedded": {"contacts": [{"id": contact.id, "is_main": True}]}}], actor)
    except ValidationFailed as e:
        return back(_explain(e))
    return redirect("/", code=303)


@bp.post("/ui/leads/<int:lead_id>/status")
def change_status(lead_id: int):
    acc = current().account
    lead = acc.leads.get(lead_id)
    if lead is None:
        return back("Сделка не найдена")
    item = {"id": lead_id, "status_id": _int(request.form.get("status_id")), "pipeline_id": lead.pipeline_id}
    reason = _int(request.form.get("loss_reason_id"))
    if reason and item["status_id"] == LOST:
        item["loss_reason_id"] = reason
    try:
        acc.update_leads([item], lead.responsible_user_id)
    except ValidationFailed as e:
        return back(_explain(e))
    return back()


@bp.post("/ui/tasks/<int:task_id>/complete")
def complete_task(task_id: int):
    acc = current().account
    task = acc.tasks.get(task_id)
    if task is None:
        return back("Задача не найдена")
    item = {"id": task_id, "is_completed": True}
    if request.form.get("result", "").strip():
        item["result"] = {"text": request.form["result"].strip()}
    try:
        acc.update_tasks([item], task.responsible_user_id)
    except ValidationFailed as e:
        return back(_explain(e))
    return back()


@bp.post("/ui/tasks/<int:task_id>/move")
def move_task(task_id: int):
    acc = current().account
    task = acc.tasks.get(task_id)
    try:
        due = _parse_local(request.form.get("due", ""))
    except ValueError:
        return back("Укажите дату и время")
    if task is None:
        return back("Задача не найдена")
    try:
        acc.update_tasks([{"id": task_id, "complete_till": due}], task.responsible_user_id)
    except ValidationFailed as e:
        return back(_explain(e))
    return back()


@bp.post("/ui/leads/<int:lead_id>/tasks")
def add_task(lead_id: int):
    acc = current().account
    lead = acc.leads.get(lead_id)
    try:
        due = _parse_local(request.form.get("due", ""))
    except ValueError:
        return back("Укажите дату и время")
    if lead is None:
        return back("Сделка не найдена")
    try:
        acc.add_tasks([{"text": request.form.get("text", ""), "complete_till": due, "entity_type": LEADS,
                        "entity_id": lead_id, "task_type_id": _int(request.form.get("task_type_id")) or 1,
                        "responsible_user_id": lead.responsible_user_id}], lead.responsible_user_id)
    except ValidationFailed as e:
        return back(_explain(e))
    return back()


@bp.post("/ui/leads/<int:lead_id>/call")
def log_call(lead_id: int):
    acc = current().account
    with acc.lock:
        lead = acc.leads.get(lead_id)
        contact = acc.contacts.get(lead.contact_ids[0]) if lead and lead.contact_ids else None
        phones = acc.contact_phones(contact) if contact else []
    if not phones:
        return back("У контакта сделки нет телефона")
    f = request.form
    call = {"direction": f.get("direction", "outbound"), "phone": phones[0], "source": "sandbox_ui",
            "duration": _int(f.get("duration")) or 0, "call_status": _int(f.get("call_status")) or 4,
            "call_result": f.get("call_result", "").strip(), "uniq": f"ui-{time.time_ns()}",
            "responsible_user_id": lead.responsible_user_id, "created_by": lead.responsible_user_id}
    try:
        _, errors = acc.add_calls([call], lead.responsible_user_id)
    except ValidationFailed as e:
        return back(_explain(e))
    if errors:
        return back(errors[0]["detail"])
    return back()

