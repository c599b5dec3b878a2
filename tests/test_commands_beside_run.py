"""Commands run beside `reglament run` find it: the configuration by a documented lookup
order, Redis by the address the embedded server published; otherwise one clear line."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from click.testing import CliRunner

from app import create_app
from reglament import config
from shell.cli import main
from shell.redis_server import publish
from shell.runner import sandbox_settings
from tests.conftest import SECRET
from tests.fixtures import load


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    return tmp_path


def write(path, account_id):
    path.write_text(yaml.safe_dump({"accounts": [{"id": account_id, "webhook_secret": SECRET,
                                                  "amocrm": {"base_url": "http://127.0.0.1:9", "long_lived_token": "t"}}]}))
    return path


def test_the_lookup_order_is_flag_environment_local_file_then_the_running_demo(here, monkeypatch):
    assert config.locate() is None
    generated = sandbox_settings(here / config.DATA_DIR, 8000, 8001)
    assert config.locate().resolve() == generated.resolve()
    assert config.locate(generated=False) is None  # what `reglament run` itself asks: then it makes the demo
    local = write(here / config.DEFAULT_FILE, "local")
    assert config.locate().resolve() == local.resolve()
    monkeypatch.setenv(config.CONFIG_ENV, str(write(here / "env.yaml", "env")))
    assert config.load().accounts[0].id == "env"
    assert config.load(write(here / "flag.yaml", "flag")).accounts[0].id == "flag"


def test_commands_with_no_flags_use_the_generated_config_and_the_published_redis(here, redis_server, r):
    data = here / config.DATA_DIR
    settings = config.load(sandbox_settings(data, 8000, 8001))
    (data / "redis").mkdir()
    publish(data / "redis", redis_server.url)  # as the run's embedded server does
    hook = f"/hooks/amocrm/{settings.accounts[0].webhook_secret}"
    assert create_app(settings, r).test_client().post(
        hook, data=load.amocrm("lead_status_changed"), content_type="application/x-www-form-urlencoded").status_code == 200
    result = CliRunner().invoke(main, ["outbox"])
    assert result.exit_code == 0, result.output
    assert "[demo] the outbox is empty" in result.output

    status = CliRunner().invoke(main, ["status", "--json"])
    assert status.exit_code == 0, status.output
    found = json.loads(status.output)
    (demo,) = found["accounts"]
    assert demo["id"] == "demo" and demo["inbox"] == 1 and demo["outbox"] == 0
    assert time.time() - demo["last_webhook"]["amocrm"] < 60 and demo["last_webhook"]["wazzup"] is None
    assert set(found["queues"]) == {"timers", "chats", "events", "scheduled"}
    assert demo["crm"]["state"] == "ok" and demo["crm"]["api_calls"] == 0
    text = CliRunner().invoke(main, ["status"]).output
    assert "last amocrm webhook:" in text and "outbox: 0 messages" in text
    token = settings.accounts[0].amocrm.long_lived_token
    assert token not in status.output + text and settings.accounts[0].webhook_secret not in status.output + text


@pytest.mark.parametrize("args", [["outbox"], ["queue"], ["status"], ["digest"], ["sweep"], ["rejected"]])
def test_with_nothing_running_a_command_says_what_to_start_in_one_line(here, args):
    nothing = CliRunner().invoke(main, args)
    assert nothing.exit_code == 2
    assert nothing.output.strip().count("\n") == 0 and "Traceback" not in nothing.output
    assert "start `reglament run`" in nothing.output

    sandbox_settings(here / config.DATA_DIR, 8000, 8001)  # a run was here and stopped
    stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code == 2 and stopped.output.strip().count("\n") == 0, stopped.output
    assert "no Redis: nothing is running on" in stopped.output and "start `reglament run`" in stopped.output

    (here / config.DATA_DIR / "redis").mkdir(exist_ok=True)
    publish(here / config.DATA_DIR / "redis", "redis://127.0.0.1:9/0")  # killed: its address stayed
    killed = CliRunner().invoke(main, args)
    assert killed.exit_code == 2 and killed.output.strip().count("\n") == 0, killed.output
    assert "Redis at 127.0.0.1:9 does not answer" in killed.output
