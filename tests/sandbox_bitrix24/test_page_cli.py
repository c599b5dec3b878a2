"""The clickable page, and running the sandbox as `python -m sandbox.bitrix24` with secrets kept off the command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from sandbox.bitrix24.__main__ import credentials

from .conftest import hook, result

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_lists_deals_and_its_forms_change_the_portal(b24, receiver):
    page = requests.get(b24.url + "/", timeout=5).text
    assert "Песочница Битрикс24" in page and "Мария Соколова" in page and "Просил перезвонить" in page
    assert b24.credentials.webhook_code not in page
    requests.post(b24.url + "/_sandbox/webhooks/outgoing", timeout=5, json={
        "handler": receiver.url + "/p", "events": ["ONCRMDEALUPDATE", "ONCRMACTIVITYUPDATE", "ONVOXIMPLANTCALLEND"]})
    moved = requests.post(b24.url + "/ui/deals/104/stage", data={"stage": "UC_CAME"}, allow_redirects=False, timeout=5)
    assert moved.status_code == 303
    deal = result(b24, "crm.deal.get", {"id": 104})
    assert deal["STAGE_ID"] == "UC_CAME" and deal["MOVED_BY_ID"] == "2"   # moved by its manager
    todo = result(b24, "crm.activity.list", {"filter": {"OWNER_ID": 102, "OWNER_TYPE_ID": 2, "COMPLETED": "N"}})[0]
    requests.post(b24.url + f"/ui/activities/{todo['ID']}/complete", data={}, timeout=5)
    assert result(b24, "crm.activity.get", {"id": todo["ID"]})["COMPLETED"] == "Y"
    requests.post(b24.url + "/ui/deals/103/call", data={"type": "2", "code": "304", "duration": "0"}, timeout=5)
    assert hook(b24, "voximplant.statistic.get", {"FILTER": {"CALL_FAILED_CODE": "304"}}).json()["total"] == 1
    events = [p["form"]["event"] for p in receiver.wait_for(3)]
    assert events == ["ONCRMDEALUPDATE", "ONCRMACTIVITYUPDATE", "ONVOXIMPLANTCALLEND"]
    bad = requests.post(b24.url + "/ui/deals/104/stage", data={"stage": "C1:WON"}, allow_redirects=False, timeout=5)
    assert "error=" in bad.headers["Location"]
    new = requests.post(b24.url + "/ui/deals", data={"name": "Новый Клиент", "phone": "+7 900 123-45-67",
                                                     "responsible": "4", "stage": "NEW"}, timeout=5)
    assert new.status_code == 200 and "Новый Клиент" in new.text


def test_secrets_come_from_the_environment_or_a_file(tmp_path):
    secrets_file = tmp_path / "b24.yaml"
    secrets_file.write_text("webhook: 7/file-code\nclient_id: local.file\n", encoding="utf-8")
    c = credentials(str(secrets_file), environ={"B24_SANDBOX_APPLICATION_TOKEN": "env-token",
                                                "B24_SANDBOX_CLIENT_ID": "local.env"})
    assert (c.webhook_user, c.webhook_code, c.client_id, c.application_token) == (7, "file-code", "local.env",
                                                                                  "env-token")
    assert len(credentials(None, environ={}).webhook_code) == 16   # generated when not given


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_m_sandbox_bitrix24_serves_with_secrets_off_the_command_line():
    port = _free_port()
    env = {**os.environ, "B24_SANDBOX_WEBHOOK": "1/proc-secret-code"}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.bitrix24", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/rest/1/proc-secret-code/user.current"
        deadline = time.monotonic() + 20
        while True:
            try:
                r = requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, "the sandbox did not start"
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["result"]["LAST_NAME"] == "Орлова"
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert "proc-secret-code" not in cmdline
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert "/rest/1/***/user.current 200" in output   # request lines are logged with the code masked
