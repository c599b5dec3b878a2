"""python -m sandbox.bitrix24 [--host H] [--port P] [--rate R] [--burst B] [--seed FILE] [--generate N] [--secrets FILE]

Secrets never go on the command line (it is visible to every user of the machine). They
come from the environment or from a YAML/JSON file named by --secrets; whatever is not
given is generated and printed once:
    B24_SANDBOX_WEBHOOK            "<user>/<code>" of the incoming webhook (e.g. "1/abc123")
    B24_SANDBOX_CLIENT_ID, B24_SANDBOX_CLIENT_SECRET, B24_SANDBOX_APPLICATION_TOKEN
The file takes the same names in lower case without the prefix: webhook, client_id, ...
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from .auth import Credentials
from .server import serve

NAMES = ("webhook", "client_id", "client_secret", "application_token")


def credentials(secrets_file: str | None, environ=os.environ) -> Credentials:
    given = {}
    if secrets_file:
        with open(secrets_file, encoding="utf-8") as f:
            given = {k: str(v) for k, v in (yaml.safe_load(f) or {}).items() if k in NAMES}
    for name in NAMES:
        value = environ.get(f"B24_SANDBOX_{name.upper()}")
        if value:
            given[name] = value
    c = Credentials()
    if "webhook" in given:
        user, _, code = given.pop("webhook").strip("/").partition("/")
        if not user.isdigit() or not code:
            raise ValueError('the webhook must be "<user id>/<code>", e.g. "1/abc123"')
        c.webhook_user, c.webhook_code = int(user), code
    for name, value in given.items():
        setattr(c, name, value)
    return c


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.bitrix24",
                                     description="Run a local Bitrix24 portal (REST subset + outgoing events + page).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--rate", type=float, default=2.0, help="leaky bucket: requests per second; 0 = no limit")
    parser.add_argument("--burst", type=int, default=50, help="leaky bucket: requests allowed at once")
    parser.add_argument("--seed", default=None, help="seed YAML (default: demo_portal.yaml)")
    parser.add_argument("--generate", type=int, default=0, help="add N generated deals on start")
    parser.add_argument("--secrets", default=None, help="a YAML/JSON file with the webhook and application secrets")
    args = parser.parse_args()
    try:
        creds = credentials(args.secrets)
    except (OSError, ValueError, yaml.YAMLError) as e:
        sys.exit(f"sandbox.bitrix24: {e}")
    serve(args.host, args.port, creds, rate=args.rate, burst=args.burst, seed_path=args.seed, generate=args.generate)


if __name__ == "__main__":
    main()
