"""A crm.changed event (a CRM whose webhooks carry only ids) is read into neutral events by the
account's connector, and each of those reaches its rules in the same job, in order."""

from collections import defaultdict

from jobs import events, router
from reglament.events import Event


def test_a_change_is_expanded_and_each_event_is_routed(monkeypatch):
    seen = []
    # Only the probe: the rules other tests registered would read a CRM this stub is not.
    monkeypatch.setattr(router, "_handlers", defaultdict(list))

    @router.on("lead.status_changed", "task.updated", name="test_expand_probe")
    def probe(event):
        seen.append((event.kind, event.fields["lead_id"]))

    class Connector:
        def expand(self, event):
            assert event.kind == "crm.changed" and event.fields["entity"] == "deal"
            return [Event(account="acme", source="bitrix24", kind="lead.status_changed", entity_id=7,
                          fields={"lead_id": 7}),
                    Event(account="acme", source="bitrix24", kind="task.updated", entity_id=70, fields={"lead_id": 7}),
                    event]  # a connector may hand back the change itself: it is not expanded again

    monkeypatch.setattr("jobs.context.crm_for", lambda account: Connector())
    result = events.handle_event(Event(account="acme", source="bitrix24", kind="crm.changed", entity_id="deal-7",
                                       fields={"entity": "deal", "id": 7, "event": "ONCRMDEALUPDATE"}).to_dict())
    assert seen == [("lead.status_changed", 7), ("task.updated", 7)]
    assert [e["kind"] for e in result["events"]] == ["lead.status_changed", "task.updated"]
