"""DISTRIBUTION, FIRST_CONTACT_SLA and the shift-start list end to end: the handlers against the
running amoCRM sandbox and real Redis; time is controlled by passing `now` to the jobs."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from jobs import context, events, timers
from jobs.handlers import distribution as handler
from reglament import shifts, violations
from reglament.events import Event, event_key
from tests.engine.conftest import ACCOUNT, ANNA, BORIS, PIPELINE, STATUS, engine_settings

VERA, GALINA = 9100003, 9100004
SOURCE = 883005
ALL_WEEK = {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


class Stub:
    """The Messenger, recording alerts."""

    def __init__(self):
        self.alerts: list[tuple[str, str, str, str]] = []
        self.lock = threading.Lock()

    def alert_person(self, person, subject, text, html=None, *, action_key):
        with self.lock:
            self.alerts.append((person["name"], subject, text, action_key))
        return type("R", (), {"delivered": True})()

    def is_our_message(self, *a, **kw):
        return False


@pytest.fixture
def stub(monkeypatch):
    s = Stub()
    monkeypatch.setattr(handler, "messenger_for", lambda account: s)
    return s


def setup(amo, r, calls: dict | None = None, **dist):
    rules = {"calls": calls or {}, "distribution": {"managers": [{"name": "Анна Смирнова", "shifts": ALL_WEEK},
                                           {"name": "Борис Иванов", "shifts": ALL_WEEK},
                                           {"name": "Вера Петрова", "shifts": ALL_WEEK},
                                           {"name": "Галина Орлова", "shifts": ALL_WEEK}],
                              "fallback_user": "Галина Орлова", **dist}}
    settings = engine_settings(amo.server.url, rules=rules, departments=[
        {"name": "Продажи", "head": "Галина Орлова", "managers": ["Анна Смирнова", "Борис Иванов", "Вера Петрова"]}])
    context.set_settings(settings, r)
    return settings


def create_leads(amo, n: int, *, source: str | None = None, responsible: int = GALINA, status: str = "Новая заявка",
                 created_at: int | None = None) -> list[int]:
    item = {"name": "Заявка", "status_id": STATUS[status], "pipeline_id": PIPELINE, "responsible_user_id": responsible}
    if source:
        item["custom_fields_values"] = [{"field_id": SOURCE, "values": [{"value": source}]}]
    if created_at:
        item["created_at"] = created_at
    found = amo.api("POST", "/api/v4/leads", json=[dict(item, name=f"Заявка {i}") for i in range(n)])
    return [lead["id"] for lead in found["_embedded"]["leads"]]


def added(amo, lead_id: int, created_at: int | None = None, responsible: int | None = None) -> Event:
    """The lead.added event of this lead, with fields as the amoCRM parser gives them."""
    lead = amo.lead(lead_id)
    values = {cf["field_name"]: cf["values"][0]["value"] for cf in lead.get("custom_fields_values") or []
              if cf["values"]}
    fields = {"lead_id": lead_id, "name": lead["name"], "stage": str(lead["status_id"]),
              "pipeline": str(lead["pipeline_id"]), "responsible_id": responsible or lead["responsible_user_id"],
              "created_at": created_at or lead["created_at"], "values": values}
    return Event(account=ACCOUNT, source="amocrm", kind="lead.added", entity_id=lead_id, fields=fields,
                 key=event_key("lead.added", lead_id))


def responsible(amo, lead_id: int) -> int:
    return amo.lead(lead_id)["responsible_user_id"]


# --------------------------------------------------------------------------- DISTRIBUTION

def test_thirty_concurrent_leads_spread_evenly_and_skip_the_absent(amo, r, stub):
    setup(amo, r)
    shifts.set_absent(r, ACCOUNT, "галина орлова", datetime.now(timezone.utc) + timedelta(days=1))
    ids = create_leads(amo, 30)
    evs = [added(amo, i) for i in ids]
    errors = []

    def run(chunk):
        try:
            for ev in chunk:
                events.handle_event(ev.to_dict())  # the RQ job a webhook becomes
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(evs[i::10],)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    got = {i: responsible(amo, i) for i in ids}
    assert Counter(got.values()) == {ANNA: 10, BORIS: 10, VERA: 10}
    # A retried job gets the same manager and changes nothing.
    handler.lead_added(evs[0])
    assert responsible(amo, ids[0]) == got[ids[0]]
    assert sum(1 for req in amo.requests_since(0) if req["method"] == "PATCH") <= 30


def test_weights_and_fallback(amo, r, stub):
    setup(amo, r)
    settings = engine_settings(amo.server.url, rules={"distribution": {
        "managers": [{"name": "Анна Смирнова", "weight": 2, "shifts": ALL_WEEK},
                     {"name": "Борис Иванов", "shifts": ALL_WEEK},
                     {"name": "Вера Петрова", "shifts": {"mon": "03:00-03:01"}}],
        "fallback_user": "Галина Орлова"}})
    context.set_settings(settings, r)
    ids = create_leads(amo, 6)
    for i in ids:
        handler.lead_added(added(amo, i))
    assert Counter(responsible(amo, i) for i in ids) == {ANNA: 4, BORIS: 2}
    # Nobody on shift: the fallback user.
    shifts.set_absent(r, ACCOUNT, "Анна Смирнова", datetime.now(timezone.utc) + timedelta(hours=1))
    shifts.set_absent(r, ACCOUNT, "Борис Иванов", datetime.now(timezone.utc) + timedelta(hours=1))
    (lead,) = create_leads(amo, 1, responsible=ANNA)
    handler.lead_added(added(amo, lead), now=datetime(2025, 3, 4, 12, tzinfo=timezone.utc))  # a Tuesday: no Вера
    assert responsible(amo, lead) == GALINA


def test_a_planned_absence_skips_the_manager_only_while_it_lasts(amo, r, stub):
    setup(amo, r)
    now = datetime.now(timezone.utc)
    start, end = now + timedelta(days=1), now + timedelta(days=8)
    shifts.set_absent(r, ACCOUNT, "Вера Петрова", end, start)

    def spread(n, at):
        ids = create_leads(amo, n)
        for i in ids:
            handler.lead_added(added(amo, i), now=at)
        return Counter(responsible(amo, i) for i in ids)

    assert spread(4, now) == {ANNA: 1, BORIS: 1, VERA: 1, GALINA: 1}  # not yet away
    assert spread(3, start) == {ANNA: 1, BORIS: 1, GALINA: 1}
    assert spread(3, end - timedelta(seconds=1)) == {ANNA: 1, BORIS: 1, GALINA: 1}
    assert spread(4, end) == {ANNA: 1, BORIS: 1, VERA: 1, GALINA: 1}  # back


def test_a_persons_choice_is_never_overridden(amo, r, stub):
    setup(amo, r)
    a, b, c = create_leads(amo, 3)
    # A person moved lead a to Борис before our job ran (its webhook came first).
    amo.api("PATCH", f"/api/v4/leads/{a}", json={"responsible_user_id": BORIS})
    ev = Event(account=ACCOUNT, source="amocrm", kind="lead.responsible_changed", entity_id=a,
               fields={"lead_id": a, "responsible_id": BORIS, "previous_responsible_id": GALINA}, key="x")
    events.handle_event(ev.to_dict())
    # Lead b was changed in the CRM but its webhook has not come yet: the fresh read sees it.
    amo.api("PATCH", f"/api/v4/leads/{b}", json={"responsible_user_id": VERA})
    ra, rb, rc = (handler.lead_added(added(amo, i, responsible=GALINA)) for i in (a, b, c))
    assert responsible(amo, a) == BORIS and "person" in ra["assignment"]
    assert responsible(amo, b) == VERA and "changed" in rb["assignment"]
    assert responsible(amo, c) == ANNA and rc["assignment"] == f"assigned to {ANNA}"
    # Our own change's webhook is not taken for a person's.
    ours = Event(account=ACCOUNT, source="amocrm", kind="lead.responsible_changed", entity_id=c,
                 fields={"lead_id": c, "responsible_id": ANNA}, key="y")
    assert handler.responsible_changed(ours) == {"changed_by": "us"}


def test_other_pipeline_or_status_is_left_alone(amo, r, stub):
    setup(amo, r)
    (lead,) = create_leads(amo, 1, status="Недозвон")
    assert "skipped" in handler.lead_added(added(amo, lead))
    assert responsible(amo, lead) == GALINA


# --------------------------------------------------------------------------- FIRST_CONTACT_SLA

def _timer_job(r, lead_id, stage=1):
    return timers.get(r, handler.timer_id(ACCOUNT, lead_id, stage)) is not None


def test_uncontacted_lead_alerts_at_its_deadline_and_not_before(amo, r, stub):
    setup(amo, r)
    (lead,) = create_leads(amo, 1, source="Яндекс.Директ")
    result = handler.lead_added(added(amo, lead))
    created = datetime.fromtimestamp(amo.lead(lead)["created_at"], timezone.utc)
    due = created + timedelta(minutes=15)  # paid ads: 15 working minutes (around the clock here)
    assert result["deadline"] == due.isoformat() and result["source"] == "Реклама"
    assert _timer_job(r, lead)
    manager = responsible(amo, lead)
    assert handler.first_contact_timer(ACCOUNT, lead, 1, due.timestamp(), now=due - timedelta(seconds=1)) == \
        {"outcome": "early"}
    assert stub.alerts == []
    out = handler.first_contact_timer(ACCOUNT, lead, 1, due.timestamp(), now=due + timedelta(seconds=5))
    assert out["outcome"] == "alert"
    (alert,) = stub.alerts
    assert alert[0] == context.crm_for(ACCOUNT).user_name(manager)
    assert str(lead) in alert[2] and "Реклама" in alert[2]
    (v,) = violations.between(r, ACCOUNT, 0, 2e9)
    assert v.rule == "FIRST_CONTACT_SLA" and v.lead_id == lead and v.manager_id == manager
    esc_at = due + timedelta(hours=1)
    assert _timer_job(r, lead, 2)
    assert handler.first_contact_timer(ACCOUNT, lead, 2, esc_at.timestamp(), now=esc_at)["outcome"] == "escalate"
    assert stub.alerts[-1][0] == "Галина Орлова"
    # The lead is on its manager's list.
    assert [i.lead_id for i in handler.untouched(ACCOUNT)[manager]] == [lead]


def test_a_dial_that_did_not_get_through_is_not_contact(amo, r, stub):
    setup(amo, r, calls={"failed_call_message": {"enabled": False}})
    (lead,) = create_leads(amo, 1)
    handler.lead_added(added(amo, lead))
    created = datetime.fromtimestamp(amo.lead(lead)["created_at"], timezone.utc)
    dial = Event(account=ACCOUNT, source="amocrm", kind="call.ended", entity_id=554, key="d", fields={
        "call_id": "c-554", "direction": "out", "outcome": "not_reached", "duration": 0, "phone": "79990000000",
        "lead_id": lead, "user_id": ANNA, "at": int(created.timestamp()) + 60, "ref": None})
    events.handle_event(dial.to_dict())
    assert _timer_job(r, lead)  # still waiting for first contact
    assert [i.lead_id for i in handler.untouched(ACCOUNT).get(ANNA, [])] == [lead]


def test_lead_called_in_time_never_alerts(amo, r, stub):
    """A failed call followed by our message to the client (FAILED_CALL_MESSAGE) is contact."""
    setup(amo, r)
    (lead,) = create_leads(amo, 1)
    handler.lead_added(added(amo, lead))
    created = datetime.fromtimestamp(amo.lead(lead)["created_at"], timezone.utc)
    due = created + timedelta(hours=4)
    call_at = created + timedelta(minutes=7)
    note = Event(account=ACCOUNT, source="amocrm", kind="call.ended", entity_id=555, key="n", fields={
        "call_id": "c-555", "direction": "out", "outcome": "not_reached", "duration": 0, "phone": "79990000000",
        "lead_id": lead, "user_id": ANNA, "at": int(call_at.timestamp()), "ref": None})
    events.handle_event(note.to_dict())
    assert not _timer_job(r, lead)
    for stage, at in ((1, due), (2, due + timedelta(hours=1))):
        assert handler.first_contact_timer(ACCOUNT, lead, stage, at.timestamp(), now=at + timedelta(hours=1)) == \
            {"outcome": "contacted"}
    assert stub.alerts == [] and violations.between(r, ACCOUNT, 0, 2e9) == []
    assert handler.untouched(ACCOUNT) == {}
    stats = handler.first_contact_stats(ACCOUNT, created, created + timedelta(days=1))
    assert stats == {ANNA: {"count": 1, "median": 420.0, "p90": 420.0}}


def test_a_lost_webhook_is_found_in_the_crm_and_robot_notes_do_not_count(amo, r, stub):
    setup(amo, r)
    a, b = create_leads(amo, 2)
    for lead in (a, b):
        handler.lead_added(added(amo, lead))
    client = context.crm_for(ACCOUNT).client
    client.add_call_note("t1", "leads", a, incoming=False, phone="79990000001", duration=40, source="test",
                         call_status=4, created_by=ANNA)
    client.add_note("t2", "leads", b, "Reglament: задача создана")  # the integration's own note
    mine = Event(account=ACCOUNT, source="amocrm", kind="comment.added", entity_id=556, key="m", fields={
        "lead_id": b, "text": "Reglament: задача создана", "by": GALINA, "at": 1})
    assert handler.comment_added(mine) == {"contact": False}
    later = datetime.now(timezone.utc) + timedelta(hours=5)
    assert handler.first_contact_timer(ACCOUNT, a, 1, later.timestamp() - 60, now=later)["outcome"] == "contacted"
    assert handler.first_contact_timer(ACCOUNT, b, 1, later.timestamp() - 60, now=later)["outcome"] == "alert"
    assert len(stub.alerts) == 1 and str(b) in stub.alerts[0][2]


# --------------------------------------------------------------------------- the shift-start list

def test_shift_start_list_in_priority_order(amo, r, stub):
    setup(amo, r, managers=[{"name": "Анна Смирнова", "shifts": {d: "09:00-18:00" for d in ALL_WEEK}}],
          fallback_user=None)
    base = int(datetime.now(timezone.utc).timestamp()) - 3 * 3600
    plain_old = create_leads(amo, 1, responsible=ANNA)[0]
    ad_new = create_leads(amo, 1, responsible=ANNA, source="Яндекс.Директ")[0]
    ad_old = create_leads(amo, 1, responsible=ANNA, source="google")[0]
    site = create_leads(amo, 1, responsible=ANNA, source="Сайт")[0]
    moved = create_leads(amo, 1, responsible=ANNA, source="Яндекс.Директ")[0]
    arrivals = {plain_old: base, ad_new: base + 3000, ad_old: base + 600, site: base + 100, moved: base - 500}
    for lead, at in arrivals.items():
        handler.lead_added(added(amo, lead, created_at=at))
    amo.api("PATCH", f"/api/v4/leads/{moved}", json={"status_id": STATUS["Недозвон"]})  # not new any more
    queue = handler.untouched(ACCOUNT)
    assert [i.lead_id for i in queue[ANNA]] == [ad_old, ad_new, site, plain_old, moved]
    # The shift opens: one message with that list; a minute later, nothing more.
    tz = context.calendar(ACCOUNT).tz
    opening = datetime.now(tz).replace(hour=9, minute=0, second=0, microsecond=0)
    # An absence planned for tomorrow does not hold back today's list, only tomorrow's.
    shifts.set_absent(r, ACCOUNT, "Анна Смирнова", opening + timedelta(days=2), opening + timedelta(hours=20))
    assert handler.shift_start_job(ACCOUNT, now=opening - timedelta(minutes=1)) == {"messaged": []}
    assert handler.shift_start_job(ACCOUNT, now=opening + timedelta(minutes=1)) == {"messaged": ["Анна Смирнова"]}
    assert handler.shift_start_job(ACCOUNT, now=opening + timedelta(minutes=2)) == {"messaged": []}
    assert handler.shift_start_job(ACCOUNT, now=opening + timedelta(days=1, minutes=1)) == {"messaged": []}
    (alert,) = stub.alerts
    text = alert[2]
    positions = [text.index(f"/leads/detail/{i}") for i in (ad_old, ad_new, site, plain_old, moved)]
    assert positions == sorted(positions) and "Необработанных заявок: 5" in text


def test_cli_queue_and_absent(amo, r, stub, tmp_path, monkeypatch):
    import yaml
    from click.testing import CliRunner

    from shell.cli import main

    settings = setup(amo, r)
    (lead,) = create_leads(amo, 1, source="tilda")
    handler.lead_added(added(amo, lead))
    doc = settings.model_dump(mode="json", exclude_none=True)
    doc.setdefault("redis_url", r.connection_pool.connection_kwargs and
                   f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}/0")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    runner = CliRunner()
    out = runner.invoke(main, ["queue", "--config", str(path), "--account", ACCOUNT])
    assert out.exit_code == 0, out.output
    assert f"/leads/detail/{lead}" in out.output and "Сайт" in out.output
    out = runner.invoke(main, ["absent", "Вера Петрова", "--until", "2099-01-01 10:00", "--config", str(path)])
    assert out.exit_code == 0, out.output
    assert shifts.is_absent(shifts.absences(r, ACCOUNT), "Вера Петрова", datetime(2098, 1, 1, tzinfo=timezone.utc))
    assert runner.invoke(main, ["absent", "Никто", "--until", "2099-01-01", "--config", str(path)]).exit_code != 0
