"""DISTRIBUTION, FIRST_CONTACT_SLA and the shift-start list end to end: the handlers against a
CRM's sandbox (through the neutral driver, tests/driver) and real Redis; time is controlled by
passing `now` to the jobs."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from jobs import context, events, timers
from jobs.handlers import distribution as handler
from reglament import shifts, violations
from reglament.events import Event
from tests.driver import Created
from tests.engine.conftest import ACCOUNT, crm_settings

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


def setup(crm, r, calls: dict | None = None, **dist):
    rules = {"calls": calls or {}, "distribution": {"managers": [{"name": "Анна Смирнова", "shifts": ALL_WEEK},
                                           {"name": "Борис Иванов", "shifts": ALL_WEEK},
                                           {"name": "Вера Петрова", "shifts": ALL_WEEK},
                                           {"name": "Галина Орлова", "shifts": ALL_WEEK}],
                              "fallback_user": "Галина Орлова", **dist}}
    settings = crm_settings(crm, rules=rules, departments=[
        {"name": "Продажи", "head": "Галина Орлова", "managers": ["Анна Смирнова", "Борис Иванов", "Вера Петрова"]}])
    context.set_settings(settings, r)
    return settings


def create_leads(crm, n: int, *, source: str | None = None, responsible: str = "Галина Орлова",
                 status: str = "Новая заявка", created_at: datetime | None = None) -> list[Created]:
    return [crm.create_lead(status, name=f"Заявка {i}", responsible=crm.user(responsible),
                            values={"Источник": source} if source else None, created_at=created_at)
            for i in range(n)]


def added(lead: Created) -> Event:
    """The lead.added event the CRM's webhook about this new lead became."""
    return lead.events.one("lead.added")


def responsible(crm, lead: Created) -> int:
    return crm.lead(lead.id).responsible


def people(crm) -> tuple[int, int, int, int]:
    return tuple(crm.user(n) for n in ("Анна Смирнова", "Борис Иванов", "Вера Петрова", "Галина Орлова"))


# --------------------------------------------------------------------------- DISTRIBUTION

def test_thirty_concurrent_leads_spread_evenly_and_skip_the_absent(crm, r, stub):
    anna, boris, vera, _ = people(crm)
    setup(crm, r)
    shifts.set_absent(r, ACCOUNT, "галина орлова", datetime.now(timezone.utc) + timedelta(days=1))
    leads = create_leads(crm, 30)
    evs = [added(lead) for lead in leads]
    errors = []
    mark = crm.mark()

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
    got = {lead.id: responsible(crm, lead) for lead in leads}
    assert Counter(got.values()) == {anna: 10, boris: 10, vera: 10}
    # A retried job gets the same manager and changes nothing.
    handler.lead_added(evs[0])
    assert responsible(crm, leads[0]) == got[leads[0].id]
    assert sum(1 for call in crm.calls_since(mark) if call.op == "update") <= 30


def test_weights_and_fallback(crm, r, stub):
    anna, boris, _, galina = people(crm)
    setup(crm, r)
    settings = crm_settings(crm, rules={"distribution": {
        "managers": [{"name": "Анна Смирнова", "weight": 2, "shifts": ALL_WEEK},
                     {"name": "Борис Иванов", "shifts": ALL_WEEK},
                     {"name": "Вера Петрова", "shifts": {"mon": "03:00-03:01"}}],
        "fallback_user": "Галина Орлова"}})
    context.set_settings(settings, r)
    leads = create_leads(crm, 6)
    for lead in leads:
        handler.lead_added(added(lead))
    assert Counter(responsible(crm, lead) for lead in leads) == {anna: 4, boris: 2}
    # Nobody on shift: the fallback user.
    shifts.set_absent(r, ACCOUNT, "Анна Смирнова", datetime.now(timezone.utc) + timedelta(hours=1))
    shifts.set_absent(r, ACCOUNT, "Борис Иванов", datetime.now(timezone.utc) + timedelta(hours=1))
    (lead,) = create_leads(crm, 1, responsible="Анна Смирнова")
    handler.lead_added(added(lead), now=datetime(2025, 3, 4, 12, tzinfo=timezone.utc))  # a Tuesday: no Вера
    assert responsible(crm, lead) == galina


def test_a_planned_absence_skips_the_manager_only_while_it_lasts(crm, r, stub):
    anna, boris, vera, galina = people(crm)
    setup(crm, r)
    now = datetime.now(timezone.utc)
    start, end = now + timedelta(days=1), now + timedelta(days=8)
    shifts.set_absent(r, ACCOUNT, "Вера Петрова", end, start)

    def spread(n, at):
        leads = create_leads(crm, n)
        for lead in leads:
            handler.lead_added(added(lead), now=at)
        return Counter(responsible(crm, lead) for lead in leads)

    assert spread(4, now) == {anna: 1, boris: 1, vera: 1, galina: 1}  # not yet away
    assert spread(3, start) == {anna: 1, boris: 1, galina: 1}
    assert spread(3, end - timedelta(seconds=1)) == {anna: 1, boris: 1, galina: 1}
    assert spread(4, end) == {anna: 1, boris: 1, vera: 1, galina: 1}  # back


def test_a_persons_choice_is_never_overridden(crm, r, stub):
    anna, boris, vera, galina = people(crm)
    setup(crm, r)
    a, b, c = create_leads(crm, 3)
    # Борис took lead a before our job ran (its webhook came first).
    took = crm.set_responsible(a.id, boris, by=boris).one("lead.responsible_changed")
    assert (took.fields["responsible_id"], took.fields["previous_responsible_id"]) == (boris, galina)
    events.handle_event(took.to_dict())
    # Lead b was changed in the CRM but its webhook has not come yet: the fresh read sees it.
    crm.set_responsible(b.id, vera, by=boris)
    mark = crm.mark()
    ra, rb, rc = (handler.lead_added(added(lead)) for lead in (a, b, c))  # as they arrived: Галина's
    assert responsible(crm, a) == boris and "person" in ra["assignment"]
    assert responsible(crm, b) == vera and "changed" in rb["assignment"]
    assert responsible(crm, c) == anna and rc["assignment"] == f"assigned to {anna}"
    # Our own change's webhook is not taken for a person's.
    ours = crm.events_since(mark).one("lead.responsible_changed", lead_id=c.id)
    assert ours.fields["responsible_id"] == anna
    assert handler.responsible_changed(ours) == {"changed_by": "us"}


def test_other_pipeline_or_status_is_left_alone(crm, r, stub):
    setup(crm, r)
    (lead,) = create_leads(crm, 1, status="Недозвон")
    assert "skipped" in handler.lead_added(added(lead))
    assert responsible(crm, lead) == crm.user("Галина Орлова")


# --------------------------------------------------------------------------- FIRST_CONTACT_SLA

def _timer_job(r, lead_id, stage=1):
    return timers.get(r, handler.timer_id(ACCOUNT, lead_id, stage)) is not None


def test_uncontacted_lead_alerts_at_its_deadline_and_not_before(crm, r, stub):
    setup(crm, r)
    (lead,) = create_leads(crm, 1, source="Яндекс.Директ")
    result = handler.lead_added(added(lead))
    created = crm.lead(lead.id).created_at
    due = created + timedelta(minutes=15)  # paid ads: 15 working minutes (around the clock here)
    assert result["deadline"] == due.isoformat() and result["source"] == "Реклама"
    assert _timer_job(r, lead.id)
    manager = responsible(crm, lead)
    assert handler.first_contact_timer(ACCOUNT, lead.id, 1, due.timestamp(), now=due - timedelta(seconds=1)) == \
        {"outcome": "early"}
    assert stub.alerts == []
    out = handler.first_contact_timer(ACCOUNT, lead.id, 1, due.timestamp(), now=due + timedelta(seconds=5))
    assert out["outcome"] == "alert"
    (alert,) = stub.alerts
    assert alert[0] == context.crm_for(ACCOUNT).user_name(manager) == crm.user_name(manager)
    assert str(lead.id) in alert[2] and "Реклама" in alert[2]
    (v,) = violations.between(r, ACCOUNT, 0, 2e9)
    assert v.rule == "FIRST_CONTACT_SLA" and v.lead_id == lead.id and v.manager_id == manager
    esc_at = due + timedelta(hours=1)
    assert _timer_job(r, lead.id, 2)
    assert handler.first_contact_timer(ACCOUNT, lead.id, 2, esc_at.timestamp(), now=esc_at)["outcome"] == "escalate"
    assert stub.alerts[-1][0] == "Галина Орлова"
    # The lead is on its manager's list.
    assert [i.lead_id for i in handler.untouched(ACCOUNT)[manager]] == [lead.id]


def test_a_dial_that_did_not_get_through_is_not_contact(crm, r, stub):
    anna = crm.user("Анна Смирнова")
    setup(crm, r, calls={"failed_call_message": {"enabled": False}})
    (lead,) = create_leads(crm, 1)
    handler.lead_added(added(lead))
    created = crm.lead(lead.id).created_at
    dial = crm.log_call(lead.id, "out", "not_reached", at=created + timedelta(seconds=60), by=anna,
                        phone="79990000000").one("call.ended")
    events.handle_event(dial.to_dict())
    assert _timer_job(r, lead.id)  # still waiting for first contact
    assert [i.lead_id for i in handler.untouched(ACCOUNT).get(anna, [])] == [lead.id]


def test_lead_called_in_time_never_alerts(crm, r, stub):
    """A failed call followed by our message to the client (FAILED_CALL_MESSAGE) is contact."""
    anna = crm.user("Анна Смирнова")
    setup(crm, r)
    # The lead has a client card: a PBX call from the lead's card is bound to it (Bitrix24 binds a
    # call to a contact, company or lead, never to a deal), whatever number was dialled.
    lead = crm.create_lead("Новая заявка", name="Заявка 0", responsible=crm.user("Галина Орлова"),
                           phone="+7 903 111-22-33")
    handler.lead_added(added(lead))
    created = crm.lead(lead.id).created_at
    due = created + timedelta(hours=4)
    call_at = created + timedelta(minutes=7)
    note = crm.log_call(lead.id, "out", "not_reached", at=call_at, by=anna, phone="79990000000").one("call.ended")
    events.handle_event(note.to_dict())
    assert not _timer_job(r, lead.id)
    for stage, at in ((1, due), (2, due + timedelta(hours=1))):
        assert handler.first_contact_timer(ACCOUNT, lead.id, stage, at.timestamp(), now=at + timedelta(hours=1)) == \
            {"outcome": "contacted"}
    assert stub.alerts == [] and violations.between(r, ACCOUNT, 0, 2e9) == []
    assert handler.untouched(ACCOUNT) == {}
    stats = handler.first_contact_stats(ACCOUNT, created, created + timedelta(days=1))
    assert stats == {anna: {"count": 1, "median": 420.0, "p90": 420.0}}


def test_a_lost_webhook_is_found_in_the_crm_and_robot_notes_do_not_count(crm, r, stub):
    setup(crm, r)
    # Lead a's client card has the number dialled: a PBX call is bound to it (Bitrix24 binds a call
    # to a contact, company or lead, never to a deal), and the timer reads the client's calls too.
    a = crm.create_lead("Новая заявка", name="Заявка 0", responsible=crm.user("Галина Орлова"), phone="79990000001")
    (b,) = create_leads(crm, 1)
    for lead in (a, b):
        handler.lead_added(added(lead))
    # A call on lead a whose webhook is lost (never handed to a job).
    crm.log_call(a.id, "out", "talked", duration=40, by=crm.user("Анна Смирнова"), phone="79990000001")
    mine = crm.add_comment(b.id, "Reglament: задача создана").one("comment.added")  # the integration's own note
    assert handler.comment_added(mine) == {"contact": False}
    later = datetime.now(timezone.utc) + timedelta(hours=5)
    assert handler.first_contact_timer(ACCOUNT, a.id, 1, later.timestamp() - 60, now=later)["outcome"] == "contacted"
    assert handler.first_contact_timer(ACCOUNT, b.id, 1, later.timestamp() - 60, now=later)["outcome"] == "alert"
    assert len(stub.alerts) == 1 and str(b.id) in stub.alerts[0][2]


# --------------------------------------------------------------------------- the shift-start list

def test_shift_start_list_in_priority_order(crm, r, stub):
    anna = crm.user("Анна Смирнова")
    setup(crm, r, managers=[{"name": "Анна Смирнова", "shifts": {d: "09:00-18:00" for d in ALL_WEEK}}],
          fallback_user=None)
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    arrivals = {"plain_old": (None, 0), "ad_new": ("Яндекс.Директ", 3000), "ad_old": ("google", 600),
                "site": ("Сайт", 100), "moved": ("Яндекс.Директ", -500)}
    leads = {name: create_leads(crm, 1, responsible="Анна Смирнова", source=source,
                                created_at=base + timedelta(seconds=after))[0]
             for name, (source, after) in arrivals.items()}
    for lead in leads.values():
        handler.lead_added(added(lead))
    crm.move_lead(leads["moved"].id, "Недозвон")  # not new any more
    queue = handler.untouched(ACCOUNT)
    order = [leads[n].id for n in ("ad_old", "ad_new", "site", "plain_old", "moved")]
    assert [i.lead_id for i in queue[anna]] == order
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
    positions = [text.index(crm.lead_link(i)) for i in order]
    assert positions == sorted(positions) and "Необработанных заявок: 5" in text


def test_a_shift_start_message_that_failed_is_sent_by_the_jobs_retry(crm, r, stub, monkeypatch):
    setup(crm, r, managers=[{"name": "Анна Смирнова", "shifts": {d: "09:00-18:00" for d in ALL_WEEK}}],
          fallback_user=None)
    opening = datetime.now(context.calendar(ACCOUNT).tz).replace(hour=9, minute=0, second=0, microsecond=0)
    send = stub.alert_person

    def down(*a, **kw):
        raise ConnectionError("the messenger did not answer")

    monkeypatch.setattr(stub, "alert_person", down)
    with pytest.raises(ConnectionError):
        handler.shift_start_job(ACCOUNT, now=opening + timedelta(minutes=1))
    monkeypatch.setattr(stub, "alert_person", send)
    assert handler.shift_start_job(ACCOUNT, now=opening + timedelta(minutes=1, seconds=10)) == {
        "messaged": ["Анна Смирнова"]}
    assert handler.shift_start_job(ACCOUNT, now=opening + timedelta(minutes=2)) == {"messaged": []}
    assert len(stub.alerts) == 1

def test_cli_queue_and_absent(crm, r, stub, tmp_path, monkeypatch):
    import yaml
    from click.testing import CliRunner

    from shell.cli import main

    settings = setup(crm, r)
    (lead,) = create_leads(crm, 1, source="tilda")
    handler.lead_added(added(lead))
    doc = settings.model_dump(mode="json", exclude_none=True)
    doc.setdefault("redis_url", r.connection_pool.connection_kwargs and
                   f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}/0")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    runner = CliRunner()
    out = runner.invoke(main, ["queue", "--config", str(path), "--account", ACCOUNT])
    assert out.exit_code == 0, out.output
    assert crm.lead_link(lead.id) in out.output and "Сайт" in out.output
    out = runner.invoke(main, ["absent", "Вера Петрова", "--until", "2099-01-01 10:00", "--config", str(path)])
    assert out.exit_code == 0, out.output
    assert shifts.is_absent(shifts.absences(r, ACCOUNT), "Вера Петрова", datetime(2098, 1, 1, tzinfo=timezone.utc))
    assert runner.invoke(main, ["absent", "Никто", "--until", "2099-01-01", "--config", str(path)]).exit_code != 0
