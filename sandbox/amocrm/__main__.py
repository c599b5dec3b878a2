"""python -m sandbox.amocrm [--host H] [--port P] [--token T] [--rate-limit R] [--seed FILE] [--generate N]
[--client-id ID] [--client-secret SECRET] [--redirect-uri URL] [--token-ttl SECONDS]"""

from __future__ import annotations

import argparse

from .oauth import Integration
from .server import DEFAULT_TOKEN, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.amocrm",
                                     description="Run a local amoCRM account (API v4 subset + webhooks + page).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the Bearer token clients must send")
    parser.add_argument("--rate-limit", type=float, default=7.0, help="requests per sliding second; 0 = no limit")
    parser.add_argument("--seed", default=None, help="seed YAML (default: demo_account.yaml)")
    parser.add_argument("--generate", type=int, default=0, help="add N generated leads on start")
    default = Integration()
    parser.add_argument("--client-id", default=default.client_id, help="the OAuth integration's client_id")
    parser.add_argument("--client-secret", default=default.client_secret)
    parser.add_argument("--redirect-uri", default=default.redirect_uri)
    parser.add_argument("--token-ttl", type=int, default=default.access_ttl, help="OAuth access token lifetime, s")
    args = parser.parse_args()
    integration = Integration(args.client_id, args.client_secret, args.redirect_uri, args.token_ttl)
    serve(args.host, args.port, args.token, args.rate_limit, args.seed, args.generate, integration)


if __name__ == "__main__":
    main()
