"""`reglament sandbox --crm bitrix24`: the Bitrix24 portal alone, its secrets from the
environment or an owner-only file, the given ones never printed."""

import os
import subprocess
import sys

import requests

from shell.redis_server import free_port
from tests.test_run import wait_for

REGLAMENT = [sys.executable, "-m", "shell.cli"]


def test_the_bitrix24_sandbox_takes_its_secrets_from_the_environment_and_a_file(tmp_path):
    secrets_file = tmp_path / "b24.yaml"
    secrets_file.write_text("application_token: file-app-token-0123\n", encoding="utf-8")
    secrets_file.chmod(0o600)
    port = free_port()
    env = {**os.environ, "B24_SANDBOX_WEBHOOK": "1/env-secret-code"}
    proc = subprocess.Popen(REGLAMENT + ["sandbox", "--crm", "bitrix24", "--port", str(port), "--secrets",
                                         str(secrets_file)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/rest/1/env-secret-code/user.current"
        assert wait_for(lambda: requests.get(url, timeout=2).ok, 20), "the sandbox did not start"
        answer = requests.get(url, timeout=2)
        assert answer.status_code == 200 and answer.json()["result"]["ID"] == "1"
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    first = output.splitlines()[0]
    assert first.startswith(f"Bitrix24 sandbox at http://127.0.0.1:{port}/ (webhook given, client_id local.")
    assert "application token given; 2 req/s, burst 50)" in first
    assert "env-secret-code" not in output and "file-app-token-0123" not in output


def test_a_secrets_file_others_can_read_is_refused(tmp_path):
    secrets_file = tmp_path / "b24.yaml"
    secrets_file.write_text("webhook: 1/abc\n", encoding="utf-8")
    secrets_file.chmod(0o644)
    done = subprocess.run(REGLAMENT + ["sandbox", "--crm", "bitrix24", "--port", str(free_port()), "--secrets",
                                       str(secrets_file)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "is readable by others (mode 644); chmod 600 it" in done.stderr
    assert "Traceback" not in done.stderr
