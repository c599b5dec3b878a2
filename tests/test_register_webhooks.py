"""`reglament register-webhooks` / `unregister-webhooks` against the running sandbox."""

import requests
import yaml
from click.testing import CliRunner

from sandbox.amocrm import SandboxServer
from connectors.amocrm.webhooks import EVENTS
from shell.cli import main
from tests.conftest import SECRET


def test_register_twice_leaves_one_subscription_and_unregister_removes_it(tmp_path, redis_url):
    with SandboxServer(token="tok-for-test-123", rate_limit=0) as amo:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump({"public_url": "https://reglament.example.com", "redis_url": redis_url,
                                       "accounts": [{"id": "acme", "webhook_secret": SECRET,
                                                     "amocrm": {"base_url": amo.url, "long_lived_token": amo.token}}]}))
        runner = CliRunner()
        for _ in range(2):
            result = runner.invoke(main, ["register-webhooks", "--config", str(cfg)])
            assert result.exit_code == 0, result.output
            assert f"[acme] subscribed to {len(EVENTS)} events" in result.output
            assert SECRET not in result.output
        hooks = requests.get(f"{amo.url}/api/v4/webhooks", headers=amo.headers).json()["_embedded"]["webhooks"]
        assert [h["destination"] for h in hooks] == [f"https://reglament.example.com/hooks/amocrm/{SECRET}"]
        assert sorted(hooks[0]["settings"]) == sorted(EVENTS)

        result = runner.invoke(main, ["unregister-webhooks", "--config", str(cfg)])
        assert "[acme] removed" in result.output
        assert requests.get(f"{amo.url}/api/v4/webhooks", headers=amo.headers).status_code == 204
