"""Webhook subscription: register is idempotent and leaves exactly one subscription."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import responses

from connectors.amocrm import webhooks
from tests.connectors.amo_bodies import BASE, HAL, WEBHOOK

HOOK_URL = "https://reglament.example/hooks/amocrm/acme/0123456789abcdef0123"


class WebhookServer:
    """amoCRM's /api/v4/webhooks with memory. POST appends (the worst case: no update in place)."""

    def __init__(self, mocked, existing=()):
        self.hooks = [dict(h) for h in existing]
        self.writes: list[str] = []
        mocked.add_callback(responses.GET, f"{BASE}/api/v4/webhooks", callback=self.list)
        mocked.add_callback(responses.POST, f"{BASE}/api/v4/webhooks", callback=self.subscribe)
        mocked.add_callback(responses.DELETE, f"{BASE}/api/v4/webhooks", callback=self.unsubscribe)

    def list(self, request):
        wanted = dict(parse_qsl(urlsplit(request.url).query)).get("filter[destination]")
        found = [h for h in self.hooks if not wanted or h["destination"] == wanted]
        return 200, HAL, json.dumps({"_total_items": len(found), "_embedded": {"webhooks": found}})

    def subscribe(self, request):
        self.writes.append("POST")
        body = json.loads(request.body)
        hook = {**WEBHOOK, "id": 2000 + len(self.hooks), "destination": body["destination"],
                "settings": body["settings"], "disabled": False}
        self.hooks.append(hook)
        return 201, HAL, json.dumps(hook)

    def unsubscribe(self, request):
        self.writes.append("DELETE")
        destination = json.loads(request.body)["destination"]
        before = len(self.hooks)
        self.hooks = [h for h in self.hooks if h["destination"] != destination]
        return (204, {}, "") if len(self.hooks) < before else (404, {}, "")

    def ours(self):
        return [h for h in self.hooks if h["destination"] == HOOK_URL]


def test_register_twice_leaves_one_subscription_and_the_second_run_writes_nothing(client, mocked):
    server = WebhookServer(mocked)
    webhooks.register(client, HOOK_URL)
    webhooks.register(client, HOOK_URL)

    assert server.writes == ["POST"]
    assert len(server.ours()) == 1
    assert sorted(server.ours()[0]["settings"]) == sorted(webhooks.EVENTS)


def test_register_replaces_a_subscription_with_other_settings(client, mocked):
    server = WebhookServer(mocked, existing=[{**WEBHOOK, "destination": HOOK_URL, "settings": ["add_lead"]},
                                             {**WEBHOOK, "id": 5, "destination": "https://other.example/hook"}])
    webhooks.register(client, HOOK_URL, ["add_lead", "status_lead"])

    assert server.writes == ["DELETE", "POST"]
    assert [sorted(h["settings"]) for h in server.ours()] == [["add_lead", "status_lead"]]
    assert len(server.hooks) == 2  # someone else's hook is left alone


def test_register_revives_a_disabled_subscription(client, mocked):
    server = WebhookServer(mocked, existing=[{**WEBHOOK, "destination": HOOK_URL, "settings": list(webhooks.EVENTS),
                                              "disabled": True}])
    webhooks.register(client, HOOK_URL)
    assert server.writes == ["DELETE", "POST"]
    assert [h["disabled"] for h in server.ours()] == [False]


def test_unregister_removes_and_reports_absence(client, mocked):
    server = WebhookServer(mocked, existing=[{**WEBHOOK, "destination": HOOK_URL}])
    assert webhooks.unregister(client, HOOK_URL) is True
    assert server.ours() == []
    assert webhooks.unregister(client, HOOK_URL) is False


def test_the_event_list_covers_what_reglament_needs():
    assert set(webhooks.EVENTS) == {
        "add_lead", "update_lead", "status_lead", "responsible_lead", "delete_lead", "restore_lead", "note_lead",
        "add_contact", "update_contact", "note_contact", "add_task", "update_task", "delete_task", "add_message"}
