"""A small server-rendered page at / (Russian, plain HTML forms) to act as the sales managers.

Every form calls the same functions as the REST methods, so a change made here sends the
same events. The acting user is the deal's responsible manager. No secret is needed:
the page is for a local sandbox (it never shows the webhook code or tokens).
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, render_template_string, request

from sandbox.pages import STYLE, back

from . import activities, crm, telephony
from .context import current
from .errors import ApiError
from .filters import to_timestamp
from .params import BadParams, Params
from .portal import Caller

bp = Blueprint("bitrix24_sandbox_ui", __name__)
MAX_ROWS = 200
CALL_RESULTS = {"200": "Разговор состоялся", "304": "Пропущенный", "486": "Занято", "603": "Отклонён"}

PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Песочница Битрикс24 — {{ info.name }}</title>
""" + STYLE + """</head><body>
<h1>Песочница Битрикс24: {{ info.name }}</h1>
<p class="muted">Портал {{ domain }}, время портала {{ now }} ({{ info.timezone }}).
 REST: <code>{{ root }}/rest/&lt;пользователь&gt;/&lt;код вебхука&gt;/&lt;метод&gt;</code> · журналы:
 <a href="/_sandbox/events">исходящие события</a>, <a href="/_sandbox/requests">вызовы REST</a></p>
{% if error %}<p class="err">{{ error }}</p>{% endif %}

<fieldset><legend>Новая сделка (как заявка с сайта)</legend>
<form method="post" action="/ui/deals">
 <input name="name" placeholder="Имя клиента" required>
 <input name="phone" placeholder="+7 900 000-00-00" required>
 <select name="responsible">{% for u in users %}<option value="{{ u.ID }}">{{ u.NAME }} {{ u.LAST_NAME }}</option>{% endfor %}</select>
 <select name="stage">{% for s in stages %}<option value="{{ s.STATUS_ID }}">{{ s.NAME }}</option>{% endfor %}</select>
 <button>Создать</button></form></fieldset>

<form method="get" action="/">Показать: <select name="stage"><option value="">все стадии</option>
 {% for s in stages %}<option value="{{ s.STATUS_ID }}" {% if s.STATUS_ID == stage_filter %}selected{% endif %}>{{ s.NAME }}</option>{% endfor %}</select>
 <select name="user"><option value="">все менеджеры</option>
 {% for u in users %}<option value="{{ u.ID }}" {% if u.ID == user_filter %}selected{% endif %}>{{ u.NAME }} {{ u.LAST_NAME }}</option>{% endfor %}</select>
 <button>Фильтр</button> <span class="muted">сделок: {{ total }}{% if total > rows|length %}, показаны последние {{ rows|length }}{% endif %}</span></form>

<table><tr><th>Сделка</th><th>Стадия</th><th>Ответственный</th><th>Открытые дела</th><th>Звонок</th></tr>
{% for r in rows %}<tr>
 <td><b>{{ r.deal.TITLE }}</b><br><span class="muted small">#{{ r.deal.ID }}{% if r.contact %} · {{ r.contact.NAME }} {{ r.contact.LAST_NAME }}{% endif %}
  {% for p in r.phones %}<br>{{ p }}{% endfor %}</span></td>
 <td><span class="st" style="background:{{ r.stage.COLOR }}">{{ r.stage.NAME }}</span>
  <form method="post" action="/ui/deals/{{ r.deal.ID }}/stage"><input type="hidden" name="back" value="{{ back }}">
   <select name="stage">{% for s in stages %}<option value="{{ s.STATUS_ID }}" {% if s.STATUS_ID == r.deal.STAGE_ID %}selected{% endif %}>{{ s.NAME }}</option>{% endfor %}</select>
   <button>Сменить</button></form></td>
 <td>{{ names[r.deal.ASSIGNED_BY_ID] }}</td>
 <td>{% for a in r.open %}<div class="step"><span class="{% if a.overdue %}overdue{% endif %}">{{ a.when }}</span>
   · {{ a.kind }}: {{ a.SUBJECT }}
   {% if a.PROVIDER_ID == "CRM_TODO" %}
   <form method="post" action="/ui/activities/{{ a.ID }}/complete"><input type="hidden" name="back" value="{{ back }}"><button>Выполнить</button></form>
   <form method="post" action="/ui/activities/{{ a.ID }}/move"><input type="hidden" name="back" value="{{ back }}">
    <input type="datetime-local" name="due" required><button>Перенести</button></form>{% endif %}</div>
  {% else %}<span class="muted">нет дел</span>{% endfor %}
  <form method="post" action="/ui/deals/{{ r.deal.ID }}/todo"><input type="hidden" name="back" value="{{ back }}">
   <input name="title" placeholder="Новое дело" required><input type="datetime-local" name="due" required>
   <button>Запланировать</button></form></td>
 <td>{% if r.phones %}<form method="post" action="/ui/deals/{{ r.deal.ID }}/call"><input type="hidden" name="back" value="{{ back }}">
   <select name="type"><option value="1">Исходящий</option><option value="2">Входящий</option></select>
   <select name="code">{% for k, v in call_results.items() %}<option value="{{ k }}">{{ v }}</option>{% endfor %}</select>
   <input name="duration" type="number" min="0" value="60" style="width:5em" title="Длительность, с">
   <button>Записать звонок</button></form>
  {% else %}<span class="muted">нет телефона</span>{% endif %}</td>
</tr>{% endfor %}</table>

<h2>Последние исходящие события</h2>
<table><tr><th>Время</th><th>Событие</th><th>Куда</th><th>Ответ</th></tr>
{% for d in deliveries %}<tr><td>{{ d.when }}</td><td>{{ d.event }}</td><td class="small">{{ d.handler }}</td>
 <td>{{ d.status or d.error }}</td></tr>
{% else %}<tr><td colspan="4" class="muted">пока ни одного (обработчики: event.bind или POST /_sandbox/webhooks/outgoing)</td></tr>{% endfor %}</table>
</body></html>"""



def _short(portal, iso_value: str | None) -> str:
    ts = to_timestamp(iso_value, portal.tz)
    return datetime.fromtimestamp(ts, portal.tz).strftime("%d.%m.%Y %H:%M") if ts is not None else ""


@bp.get("/")
def page():
    sandbox = current()
    p = sandbox.portal
    stage_filter, user_filter = request.args.get("stage") or None, request.args.get("user") or None
    kinds = {"6": "Дело", "2": "Звонок", "3": "Задача", "1": "Встреча"}
    with p.lock:
        stages = p.stages(0)
        by_id = {s["STATUS_ID"]: s for s in p.statuses if s["ENTITY_ID"].startswith("DEAL_STAGE")}
        deals = [d for d in p.deals.values() if (not stage_filter or d["STAGE_ID"] == stage_filter)
                 and (not user_filter or d["ASSIGNED_BY_ID"] == user_filter)]
        deals.sort(key=lambda d: (to_timestamp(d["DATE_MODIFY"], p.tz), int(d["ID"])), reverse=True)
        now = p.now()
        rows = []
        for deal in deals[:MAX_ROWS]:
            contact = p.contacts.get(int(deal["CONTACT_ID"])) if deal["CONTACT_ID"] else None
            open_ = sorted((dict(a, when=_short(p, a["DEADLINE"]), kind=kinds.get(a["TYPE_ID"], "Дело"),
                                 overdue=to_timestamp(a["DEADLINE"], p.tz) < now)
                            for a in p.activities.values()
                            if a["OWNER_TYPE_ID"] == "2" and a["OWNER_ID"] == deal["ID"] and a["COMPLETED"] == "N"),
                           key=lambda a: a["DEADLINE"])
            rows.append({"deal": deal, "contact": contact, "stage": by_id.get(deal["STAGE_ID"], stages[0]),
                         "phones": [m["VALUE"] for m in (contact or {}).get("PHONE") or []], "open": open_})
        names = {u["ID"]: f"{u['NAME']} {u['LAST_NAME']}" for u in p.users.values()}
        deliveries = [dict(d, when=_short(p, p.iso(d["time"]))) for d in reversed(sandbox.events.log()[-15:])]
        return render_template_string(
            PAGE, info=p.info, domain=p.domain, now=_short(p, p.iso()), root=request.host_url.rstrip("/"),
            error=request.args.get("error"), users=sorted(p.users.values(), key=lambda u: int(u["ID"])),
            stages=stages, rows=rows, total=len(deals), names=names, back=request.full_path.rstrip("?") or "/",
            stage_filter=stage_filter, user_filter=user_filter, call_results=CALL_RESULTS, deliveries=deliveries)


def _deal(deal_id: int) -> dict | None:
    p = current().portal
    with p.lock:
        deal = p.deals.get(deal_id)
        return dict(deal) if deal else None


def _act(fn):
    try:
        fn()
    except (ApiError, BadParams) as e:
        return back(getattr(e, "description", str(e)))
    return back()


@bp.post("/ui/deals")
def new_deal():
    p = current().portal
    f = request.form
    user = int(f.get("responsible") or 1)
    caller = Caller(user, "page")
    name = f.get("name", "").strip()
    first, _, last = name.partition(" ")

    def make():
        contact = crm.add(p, crm.CONTACT, {"NAME": first, "LAST_NAME": last, "ASSIGNED_BY_ID": user,
                                           "PHONE": [{"VALUE": f.get("phone", "").strip(), "VALUE_TYPE": "WORK"}]},
                          caller)
        crm.add(p, crm.DEAL, {"TITLE": name, "STAGE_ID": f.get("stage"), "ASSIGNED_BY_ID": user,
                              "CONTACT_ID": contact, "SOURCE_ID": "WEB"}, caller)
    return _act(make)


@bp.post("/ui/deals/<int:deal_id>/stage")
def change_stage(deal_id: int):
    deal = _deal(deal_id)
    if deal is None:
        return back("Сделка не найдена")
    caller = Caller(int(deal["ASSIGNED_BY_ID"]), "page")
    return _act(lambda: crm.update(current().portal, crm.DEAL, deal_id, {"STAGE_ID": request.form.get("stage")},
                                   caller))


@bp.post("/ui/activities/<int:activity_id>/complete")
def complete(activity_id: int):
    p = current().portal
    with p.lock:
        activity = p.activities.get(activity_id)
        user = int(activity["RESPONSIBLE_ID"]) if activity else 0
    if activity is None:
        return back("Дело не найдено")
    return _act(lambda: activities.update(p, activity_id, {"COMPLETED": "Y"}, Caller(user, "page")))


@bp.post("/ui/activities/<int:activity_id>/move")
def move(activity_id: int):
    p = current().portal
    with p.lock:
        activity = p.activities.get(activity_id)
    if activity is None:
        return back("Дело не найдено")
    due = request.form.get("due", "")
    params = Params({"id": activity_id, "ownerTypeId": activity["OWNER_TYPE_ID"], "ownerId": activity["OWNER_ID"],
                     "value": due})
    return _act(lambda: activities.todo_update(p, params, Caller(int(activity["RESPONSIBLE_ID"]), "page"), "deadline"))


@bp.post("/ui/deals/<int:deal_id>/todo")
def add_todo(deal_id: int):
    deal = _deal(deal_id)
    if deal is None:
        return back("Сделка не найдена")
    params = Params({"ownerTypeId": 2, "ownerId": deal_id, "deadline": request.form.get("due", ""),
                     "title": request.form.get("title", ""), "responsibleId": deal["ASSIGNED_BY_ID"]})
    return _act(lambda: activities.todo_add(current().portal, params, Caller(int(deal["ASSIGNED_BY_ID"]), "page")))


@bp.post("/ui/deals/<int:deal_id>/call")
def add_call(deal_id: int):
    p = current().portal
    deal = _deal(deal_id)
    with p.lock:
        contact = p.contacts.get(int(deal["CONTACT_ID"])) if deal and deal["CONTACT_ID"] else None
        phones = [m["VALUE"] for m in (contact or {}).get("PHONE") or []]
    if not phones:
        return back("У контакта сделки нет телефона")
    user = int(deal["ASSIGNED_BY_ID"])
    caller = Caller(user, "page")
    f = request.form
    code = f.get("code", "200")
    duration = int(f.get("duration") or 0) if code == "200" else 0

    def log_call():
        registered = telephony.register(p, Params({"USER_ID": user, "PHONE_NUMBER": phones[0],
                                                   "TYPE": f.get("type", "1"), "CRM_ENTITY_TYPE": "CONTACT",
                                                   "CRM_ENTITY_ID": contact["ID"]}), caller)
        telephony.finish(p, Params({"CALL_ID": registered["CALL_ID"], "USER_ID": user, "DURATION": duration,
                                    "STATUS_CODE": code}), caller)
    return _act(log_call)
