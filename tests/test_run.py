"""`reglament run` with no configuration, as a newcomer starts it: everything comes up, the
sandbox's webhooks reach us and become jobs, other commands run beside it find it, no
secret is on a command line, a killed redis-server comes back, and a stop or a SIGKILL
leaves nothing running on the directory."""

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
import yaml

from app.telephony import zadarma
from shell.redis_server import free_port
from tests.fixtures import load

REGLAMENT = [sys.executable, "-m", "shell.cli"]


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


def processes() -> dict[int, dict]:
    """Every process: its parent, command line and working directory."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            found[int(d.name)] = {"ppid": ppid, "cmdline": (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"),
                                  "cwd": os.readlink(d / "cwd")}
        except (OSError, IndexError, ValueError):
            pass
    return found


def redis_servers_on(directory: Path) -> list[int]:
    """redis-server processes serving `directory` (redis-server runs in its --dir)."""
    return [pid for pid, p in processes().items()
            if "redis-server" in p["cmdline"] and p["cwd"] == str(directory.resolve())]


class Run:
    def __init__(self, tmp: Path, name: str, *args: str):
        self.tmp, self.port, self.sandbox_port = tmp, free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REGLAMENT_CONFIG")}
        self.out, self.err = tmp / f"{name}.out", tmp / f"{name}.err"
        self.proc = subprocess.Popen(REGLAMENT + ["run", "--port", str(self.port), "--sandbox-port", str(self.sandbox_port),
                                                  *args],
                                     cwd=tmp, env=env, stdout=open(self.out, "w"), stderr=open(self.err, "w"),
                                     start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def up(self):
        assert wait_for(lambda: requests.get(self.base + "/readyz", timeout=1).ok, 60), self.err.read_text()[-3000:]
        assert wait_for(lambda: "Ctrl-C" in self.out.read_text(), 30)
        return self.out.read_text()

    def log(self) -> str:
        return self.err.read_text()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def tmp(tmp_path):
    started = []
    yield tmp_path, lambda name, *args: started.append(Run(tmp_path, name, *args)) or started[-1]
    for run in started:
        run.kill()


def sandbox(run: Run, token: str, method: str, path: str, json):
    """A sandbox API call as a client would make it, waiting out the sandbox's 429s."""
    answers = []

    def call():
        answers.append(requests.request(method, f"http://127.0.0.1:{run.sandbox_port}/api/v4/{path}", timeout=5,
                                        headers={"Authorization": f"Bearer {token}"}, json=json))
        return answers[-1].status_code != 429

    assert wait_for(call, 30)
    assert answers[-1].status_code == 200, answers[-1].text
    return answers[-1].json()


def test_run_without_config_serves_the_sandbox_and_commands_beside_it(tmp):
    tmp, start = tmp
    run = start("first")
    banner = run.up()
    base = run.base
    assert re.search(rf"amoCRM webhook: {base}/hooks/amocrm/\S+", banner)
    assert re.search(rf"Wazzup webhook: {base}/hooks/wazzup/\S+", banner)
    token = re.search(r"API token: (\S+)\)", banner).group(1)
    generated = yaml.safe_load((tmp / ".reglament" / "sandbox-config.yaml").read_text())["accounts"][0]

    # No secret on any process's command line (ps shows those to every local user).
    secrets = [token, generated["webhook_secret"], generated["departments"][0]["dashboard_token"],
               generated["telephony"]["zadarma"]["secret"], generated["telephony"]["mango"]["api_salt"]]
    for pid, p in processes().items():
        assert not any(s in p["cmdline"] for s in secrets), p["cmdline"]
    # Nor in the output outside the banner: the sandbox child's own line does not repeat it.
    assert banner.count(token) == 1

    # A status change made in the sandbox reaches us as amoCRM's webhook and becomes a job.
    sandbox(run, token, "PATCH", "leads", [{"id": 24100001, "status_id": 61000002, "pipeline_id": 7700001}])
    assert wait_for(lambda: "kind=lead.status_changed entity_id=24100001" in run.log()
                    and "event handled" in run.log(), 20)
    metrics = requests.get(base + "/metrics", timeout=5).text
    assert 'kind="lead.status_changed",outcome="accepted",source="amocrm"} 1.0' in metrics

    # The demo account's telephony endpoints are configured: a signed Zadarma call is accepted,
    # a wrongly signed one refused, Zadarma's URL check echoed; the same for Mango.
    secret = generated["webhook_secret"]
    call = load.telephony_fields("zadarma_notify_end_missed")
    signed = requests.post(f"{base}/hooks/telephony/zadarma/{secret}", data=urlencode(call), timeout=5,
                           headers={"Signature": zadarma.signature(call, generated["telephony"]["zadarma"]["secret"]),
                                    "Content-Type": "application/x-www-form-urlencoded"})
    assert signed.status_code == 200, signed.text
    forged = requests.post(f"{base}/hooks/telephony/zadarma/{secret}", data=urlencode(call), timeout=5,
                           headers={"Signature": "x", "Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status_code == 403
    assert requests.get(f"{base}/hooks/telephony/zadarma/{secret}?zd_echo=abc", timeout=5).text == "abc"
    keys = generated["telephony"]["mango"]
    summary = load.telephony_fields("mango_summary_missed") | {"vpbx_api_key": keys["api_key"]}
    summary["sign"] = hashlib.sha256((keys["api_key"] + summary["json"] + keys["api_salt"]).encode()).hexdigest()
    assert requests.post(f"{base}/hooks/telephony/mango/{secret}/events/summary", data=summary, timeout=5).status_code == 200
    assert requests.post(f"{base}/hooks/telephony/mango/{secret}/events/summary", data=summary | {"sign": "0" * 64},
                         timeout=5).status_code == 403

    # The head's dashboard is reachable with the token the banner shows, and only with it.
    dashboard_token = re.search(r"dashboard: \S+ +\(token: (\S+)\)", banner).group(1)
    head = requests.Session()
    assert head.get(base + "/dashboard/", allow_redirects=False, timeout=5).status_code == 302
    page = head.post(base + "/dashboard/login", data={"token": dashboard_token}, timeout=10)
    assert page.status_code == 200 and "Анна Смирнова" in page.text

    # Commands in a second terminal, in the same directory, with no flags.
    for args in (["outbox"], ["digest", "--date", time.strftime("%Y-%m-%d")], ["queue"], ["audit"], ["sweep"],
                 ["status"]):
        done = subprocess.run(REGLAMENT + args, cwd=tmp, capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REGLAMENT_CONFIG")})
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    assert "last amocrm webhook:" in done.stdout and "[demo]" in done.stdout

    # A second run on the same directory refuses, and leaves the first one alone.
    second = subprocess.run(REGLAMENT + ["run", "--port", str(free_port()), "--sandbox-port", str(free_port())],
                            cwd=tmp, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and "another `reglament run`" in second.stderr
    assert len(redis_servers_on(tmp / ".reglament" / "redis")) == 1

    # The secret is in the banner on purpose, but in no log line.
    assert secret not in run.log() and token not in run.log()

    os.killpg(run.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert run.proc.wait(30) == 0
    assert "did not stop within" not in run.log() and "cold shut down" not in run.log()
    assert [pid for pid, p in processes().items() if p["cwd"] == str(tmp) and pid != os.getpid()] == []
    assert redis_servers_on(tmp / ".reglament" / "redis") == []
    # Redis is stopped after the processes that use it, so their shutdown raises nothing.
    assert "Connection refused" not in run.log()


def test_killed_redis_comes_back_and_a_killed_run_leaves_nothing(tmp):
    tmp, start = tmp
    run = start("first")
    token = re.search(r"API token: (\S+)\)", run.up()).group(1)
    redis_dir = tmp / ".reglament" / "redis"
    (server,) = redis_servers_on(redis_dir)

    # A killed worker takes its RQ scheduler child with it.
    family = processes()
    (worker,) = [pid for pid, p in family.items() if p["ppid"] == run.proc.pid and "cli worker" in p["cmdline"]]
    children = [pid for pid, p in family.items() if p["ppid"] == worker]
    assert children  # RQ's scheduler
    os.kill(worker, signal.SIGKILL)
    assert wait_for(lambda: not set(children) & set(processes()), 10)

    # A killed redis-server is brought back on its directory; the service is ready again
    # and a new lead still gets its task.
    os.kill(server, signal.SIGKILL)
    assert wait_for(lambda: requests.get(run.base + "/readyz", timeout=1).status_code == 503
                    or redis_servers_on(redis_dir) not in ([], [server]), 10)
    assert wait_for(lambda: requests.get(run.base + "/readyz", timeout=1).ok, 60)
    assert len(redis_servers_on(redis_dir)) == 1
    (lead,) = sandbox(run, token, "POST", "leads", [{"name": "После перезапуска Redis", "pipeline_id": 7700001,
                                                     "status_id": 61000002}])["_embedded"]["leads"]
    assert wait_for(lambda: re.search(rf"task created: .*\[[A-Z_]+:{lead['id']}:", run.log()), 60), run.log()[-3000:]

    # SIGKILL of the whole run (its process group, as a closed terminal's supervisor would):
    # redis-server and every child die with it, and the next run starts exactly one server.
    run.kill()
    assert wait_for(lambda: redis_servers_on(redis_dir) == [], 15)
    assert wait_for(lambda: [p for pid, p in processes().items() if p["cwd"] == str(tmp) and pid != os.getpid()] == [], 15)
    again = start("second")
    again.up()
    assert len(redis_servers_on(redis_dir)) == 1
    os.killpg(again.proc.pid, signal.SIGTERM)
    assert again.proc.wait(30) == 0
    assert redis_servers_on(redis_dir) == []


def test_run_with_crm_bitrix24_serves_its_sandbox_bound_to_our_handler(tmp):
    """The Bitrix24 demo: the banner's two lines, the portal's own event reaching us through
    the outgoing webhook the run set up, a real-format body refused with a wrong token and
    accepted with the right one, and no secret on a command line."""
    tmp, start = tmp
    run = start("b24", "--crm", "bitrix24")
    banner = run.up()
    base, sandbox = run.base, f"http://127.0.0.1:{run.sandbox_port}"
    hook = re.search(rf"^  \[demo\] Bitrix24 webhook: ({base}/hooks/bitrix24/\S+)$", banner, re.M).group(1)
    line = re.search(rf"^  Bitrix24 sandbox: {sandbox}/ \(incoming webhook: ({sandbox}/rest/1/(\w+)/), "
                     r"application token: (\w+)\)$", banner, re.M)
    assert line, banner
    webhook, code, token = line.groups()
    generated = yaml.safe_load((tmp / ".reglament" / "sandbox-config.yaml").read_text())["accounts"][0]
    assert generated["crm"] == "bitrix24" and generated["bitrix24"] == {"webhook_url": webhook,
                                                                       "application_token": token}
    assert hook.endswith("/" + generated["webhook_secret"]) and "amoCRM" not in banner
    for pid, p in processes().items():
        assert not any(s in p["cmdline"] for s in (code, token, generated["webhook_secret"])), p["cmdline"]

    # The incoming webhook answers, and the portal's outgoing webhook points at us.
    assert requests.post(webhook + "user.current", json={}, timeout=5).json()["result"]["ID"] == "1"
    [bound] = requests.get(sandbox + "/_sandbox/handlers", timeout=5).json()["outgoing_webhooks"]
    assert bound["handler"] == hook and "ONCRMDEALUPDATE" in bound["events"]

    # A stage moved on the portal: its event reaches us with our token and is accepted.
    requests.post(webhook + "crm.deal.update", json={"id": 104, "fields": {"STAGE_ID": "UC_CAME"}}, timeout=5)
    assert wait_for(lambda: any(e["event"] == "ONCRMDEALUPDATE" and e["status"] == 200
                                for e in requests.get(sandbox + "/_sandbox/events", timeout=5).json()), 15)

    # A real-format body: a wrong token is refused with its reason, the right one accepted.
    pairs = dict(load.amocrm_pairs("deal_updated", "bitrix24"))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = requests.post(hook, data=urlencode(pairs), headers=form, timeout=5)
    assert wrong.status_code == 403 and "application_token" in wrong.json()["error"]
    right = requests.post(hook, data=urlencode(pairs | {"auth[application_token]": token}), headers=form, timeout=5)
    assert right.status_code == 200 and right.json()["accepted"] == 1
    assert right.json()["duplicates"] == 0   # another deal's moment than the sandbox's event
    # A sandbox that dies comes back with our handler bound again (its state is in memory).
    [child] = [pid for pid, p in processes().items()
               if p["ppid"] == run.proc.pid and "sandbox --crm bitrix24" in p["cmdline"]]
    os.kill(child, signal.SIGKILL)
    assert wait_for(lambda: [h["handler"] for h in requests.get(sandbox + "/_sandbox/handlers", timeout=2).json()
                             ["outgoing_webhooks"]] == [hook], 20), run.log()[-2000:]

    # The refusal is kept for `reglament rejected`, which finds this run by itself.
    done = subprocess.run(REGLAMENT + ["rejected"], cwd=tmp, capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REGLAMENT_CONFIG")})
    assert done.returncode == 0, done.stderr
    assert "bitrix24  403 wrong_token: auth[application_token] does not match" in done.stdout
