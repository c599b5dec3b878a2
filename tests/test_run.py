"""`reglament run` with no configuration, as a newcomer starts it: everything comes up,
the sandbox's webhooks reach us and become jobs, and Ctrl-C stops the whole tree."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from shell.redis_server import free_port


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


@pytest.fixture
def service(tmp_path):
    port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REGLAMENT_CONFIG")}
    out = open(tmp_path / "out.log", "w+")
    err = open(tmp_path / "err.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "shell.cli", "run", "--port", str(port),
                             "--sandbox-port", str(sandbox_port), "--data-dir", str(tmp_path / "data")],
                            cwd=tmp_path, env=env, stdout=out, stderr=err, start_new_session=True)
    yield proc, port, sandbox_port, tmp_path
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    subprocess.run(["pkill", "-KILL", "-f", str(tmp_path / "data")])  # Redis has a group of its own


def test_run_without_config_serves_the_sandbox_and_stops_on_ctrl_c(service):
    proc, port, sandbox_port, tmp = service
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: requests.get(base + "/healthz", timeout=1).ok, 30)
    assert wait_for(lambda: requests.get(base + "/readyz", timeout=1).ok, 30)
    assert wait_for(lambda: "Ctrl-C" in (tmp / "out.log").read_text(), 30)
    banner = (tmp / "out.log").read_text()
    assert re.search(rf"amoCRM webhook: {base}/hooks/amocrm/\S+", banner)
    assert re.search(rf"Wazzup webhook: {base}/hooks/wazzup/\S+", banner)
    token = re.search(r"API token: (\S+)\)", banner).group(1)

    # A status change made in the sandbox reaches us as amoCRM's webhook and becomes a job.
    # The sandbox holds amoCRM's 7 requests/s for everyone with the token, Reglament's own
    # start-up sweeps included, so this client waits out a 429 as a real one would.
    answers = []

    def patched():
        answers.append(requests.patch(f"http://127.0.0.1:{sandbox_port}/api/v4/leads", timeout=5,
                                      headers={"Authorization": f"Bearer {token}"},
                                      json=[{"id": 24100001, "status_id": 61000002, "pipeline_id": 7700001}]))
        return answers[-1].status_code != 429

    assert wait_for(patched, 20)
    assert answers[-1].status_code == 200
    assert wait_for(lambda: "kind=lead.status_changed entity_id=24100001" in (tmp / "err.log").read_text()
                    and "event handled" in (tmp / "err.log").read_text(), 20)
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert 'kind="lead.status_changed",outcome="accepted",source="amocrm"} 1.0' in metrics

    # The head's dashboard is reachable with the token the banner shows, and only with it.
    dashboard_token = re.search(r"dashboard: \S+ +\(token: (\S+)\)", banner).group(1)
    head = requests.Session()
    assert head.get(base + "/dashboard/", allow_redirects=False, timeout=5).status_code == 302
    page = head.post(base + "/dashboard/login", data={"token": dashboard_token}, timeout=10)
    assert page.status_code == 200 and "Анна Смирнова" in page.text

    # The secret is in the banner on purpose, but in no log line.
    secret = re.search(r"/hooks/amocrm/(\S+)", banner).group(1)
    assert secret not in (tmp / "err.log").read_text()

    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert proc.wait(30) == 0
    leftovers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftovers == []
    redis_left = subprocess.run(["pgrep", "-f", str(tmp / "data")], capture_output=True, text=True).stdout.split()
    assert redis_left == []
    # Redis is stopped after the processes that use it, so their shutdown raises nothing.
    assert "Connection refused" not in (tmp / "err.log").read_text()
