"""python -m connectors.amocrm.sandbox [--host H] [--port P] [--token T] [--rate-limit R] [--seed FILE] [--generate N]"""

from __future__ import annotations

import argparse

from .server import DEFAULT_TOKEN, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m connectors.amocrm.sandbox",
                                     description="Run a local amoCRM account (API v4 subset + webhooks + page).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the Bearer token clients must send")
    parser.add_argument("--rate-limit", type=float, default=7.0, help="requests per sliding second; 0 = no limit")
    parser.add_argument("--seed", default=None, help="seed YAML (default: demo_account.yaml)")
    parser.add_argument("--generate", type=int, default=0, help="add N generated leads on start")
    args = parser.parse_args()
    serve(args.host, args.port, args.token, args.rate_limit, args.seed, args.generate)


if __name__ == "__main__":
    main()
