"""``promptstream serve``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ._common import CommandError, server_module


def cmd_serve(args: argparse.Namespace) -> int:
    server = server_module()
    data_dir = server.default_data_dir()
    db = args.db or os.environ.get(server.ENV_SERVER_DB) or str(data_dir / "server.sqlite3")
    try:
        database = server.parse_database(db)
    except ValueError as exc:  # a URL is never taken for a path: an unknown scheme is a usage error
        print(f"promptstream serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.rate_limit is not None and not 0 < args.rate_limit < float("inf"):
            raise ValueError(f"--rate-limit must be a positive number of requests per second, not {args.rate_limit}")
        if args.pool_size < 1:
            raise ValueError(f"--pool-size must be at least 1, not {args.pool_size}")
        server.check_workers(database, args.workers)
    except ValueError as exc:  # a setting, or a worker count this database cannot serve as one server
        print(f"promptstream serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        keys, generated = server.resolve_server_keys(args.api_key or [], data_dir)
    except ValueError as exc:  # a usage error: the message names the key by position, never by value
        print(f"promptstream serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        prices = (
            server.Prices.parse(args.price)
            if args.price
            else server.Prices.from_text(os.environ.get(server.ENV_PRICES))
        )
    except ValueError as exc:
        print(f"promptstream serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def announce(url: str) -> None:  # called once the port is bound: the URL has the real port, even for --port 0
        if generated:
            print(f"Generated a development API key (kept in {data_dir / 'dev-api-key'}):\n  {keys[0]}", flush=True)
        workers = f", {args.workers} workers" if args.workers > 1 else ""
        print(f"PromptStream reference server on {url} (db: {database.describe()}{workers})", flush=True)

    try:
        status: int = server.serve(
            host=args.host,
            port=args.port,
            db=database,
            api_keys=keys,
            rate_limit=args.rate_limit,
            max_body_bytes=args.max_body_bytes,
            workers=args.workers,
            pool_size=args.pool_size,
            on_listening=announce,
            prices=prices,
        )
    except ConnectionError as exc:  # the database, not the port
        raise CommandError(str(exc)) from None
    except ImportError as exc:
        raise CommandError(f"PostgreSQL needs its extra: pip install 'promptstream[server,postgres]' ({exc})") from None
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return status
