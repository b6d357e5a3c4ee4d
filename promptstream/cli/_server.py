"""``promptstream serve``."""

from __future__ import annotations

import argparse
import logging
import sys

from ._common import CommandError, server_module


def cmd_serve(args: argparse.Namespace) -> int:
    server = server_module()
    data_dir = server.default_data_dir()
    db = args.db or str(data_dir / "server.sqlite3")
    try:
        keys, generated = server.resolve_server_keys(args.api_key or [], data_dir)
    except ValueError as exc:  # a usage error: the message names the key by position, never by value
        print(f"promptstream serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def announce(url: str) -> None:  # called once the port is bound: the URL has the real port, even for --port 0
        if generated:
            print(f"Generated a development API key (kept in {data_dir / 'dev-api-key'}):\n  {keys[0]}", flush=True)
        print(f"PromptStream reference server on {url} (db: {db})", flush=True)

    try:
        server.serve(
            host=args.host,
            port=args.port,
            db=db,
            api_keys=keys,
            rate_limit=args.rate_limit,
            max_body_bytes=args.max_body_bytes,
            on_listening=announce,
        )
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0
