"""The ``promptstream`` command. Exit codes: 0 success, 1 failure, 2 usage. Errors are one line, not a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._version import __version__

_SERVER_EXTRA_HINT = "the reference server needs its extra: pip install 'promptstream[server]'"


class CommandError(Exception):
    """A failure to report as one line with exit code 1."""


def _server_module() -> Any:
    try:
        from promptstream import server
    except ImportError as exc:
        raise CommandError(f"{_SERVER_EXTRA_HINT} ({exc})") from None
    return server


def cmd_serve(args: argparse.Namespace) -> int:
    server = _server_module()
    data_dir = server.default_data_dir()
    db = args.db or str(data_dir / "server.sqlite3")
    keys, generated = server.resolve_server_keys(args.api_key or [], data_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if generated:
        print(f"Generated a development API key (kept in {data_dir / 'dev-api-key'}):\n  {keys[0]}", flush=True)
    print(f"PromptStream reference server on http://{args.host}:{args.port} (db: {db})", flush=True)
    try:
        server.serve(
            host=args.host,
            port=args.port,
            db=db,
            api_keys=keys,
            rate_limit=args.rate_limit,
            max_body_bytes=args.max_body_bytes,
        )
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start a server in-process, create a prompt, run it through the SDK, track events and show what arrived."""
    server = _server_module()
    from promptstream import PromptStreamClient

    api_key = "ps_demo_key"
    with tempfile.TemporaryDirectory(prefix="promptstream-demo-") as tmp:
        store = server.Store(Path(tmp) / "server.sqlite3")
        with server.ServerThread(store, [api_key]) as running:
            prompt = store.create_prompt("greeting", "Hello {{name}}, welcome to {{product}}!")
            print(f"server:  {running.url}  (prompt {prompt['prompt_id']})")
            with PromptStreamClient(api_key, base_url=running.url, spool_dir=Path(tmp) / "spool") as client:
                for user in range(args.users):
                    run = client.run_prompt(
                        prompt["prompt_id"],
                        {"name": f"user {user}", "product": "PromptStream"},
                        external_user_id=f"user-{user}",
                    )
                    if user == 0:
                        print(f"run:     {run.run_id} variant={run.variant_assigned}")
                        print(f"output:  {run.output}")
                    client.track_click(run.run_id, run.experiment_id, label="cta")
                    if user % 3 == 0:
                        client.track_conversion(run.run_id, run.experiment_id)
                    client.track_rating(run.run_id, run.experiment_id, rating=4 + user % 2)
                delivered = client.flush(timeout=10)
                stats = client.stats()
            stored = store.count("events")
            print(
                f"tracked: {stats.tracked} events, delivered: {stats.sent} (flush {'ok' if delivered else 'timed out'})"
            )
            print(f"server stored {stored} events for {store.count('runs')} runs")
            store.close()
            return 0 if delivered and stored == stats.tracked else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptstream", description="PromptStream SDK and reference server.")
    parser.add_argument("--version", action="version", version=f"promptstream {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the reference server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8700)
    serve.add_argument("--db", help="SQLite file (default: in the user data dir); ':memory:' for a throwaway one")
    serve.add_argument(
        "--api-key",
        action="append",
        help="accepted API key (repeatable; else PROMPTSTREAM_SERVER_API_KEYS, else a generated dev key)",
    )
    serve.add_argument("--rate-limit", type=float, default=None, help="requests per second per key (429 beyond)")
    serve.add_argument("--max-body-bytes", type=int, default=5 * 1024 * 1024)
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help="run prompts and track events end to end on a temporary local server")
    demo.add_argument("--users", type=int, default=20)
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CommandError as exc:
        print(f"promptstream: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for the user; the traceback is for --debug runs of python -X
        print(f"promptstream: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
