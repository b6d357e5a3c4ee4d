"""The ``promptstream`` command. Exit codes: 0 success, 1 failure, 2 usage. Errors are one line, not a traceback.

    promptstream serve | demo
    promptstream prompts create|list|show|add-version
    promptstream experiments create|list|end|results|plan
    promptstream projects create|list          (on the server's database: --db)
    promptstream keys create|list|revoke       (on the server's database: --db)
    promptstream spool status|drain|dead-letters|replay|purge

The parser lives here; each group of commands in its own module (_server.py, _admin.py, _results.py, _keys.py,
_spool.py, _demo.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._errors import APIConnectionError, AuthenticationError, PromptStreamError
from .._version import __version__
from ._common import CommandError

__all__ = ["CommandError", "build_parser", "main"]


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="the server (default: PROMPTSTREAM_BASE_URL, else http://127.0.0.1:8700)")
    parser.add_argument("--api-key", help="the API key (default: PROMPTSTREAM_API_KEY)")


def build_parser() -> argparse.ArgumentParser:
    from . import _admin, _demo, _keys, _results, _server, _spool

    parser = argparse.ArgumentParser(prog="promptstream", description="PromptStream SDK and reference server.")
    parser.add_argument("--version", action="version", version=f"promptstream {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the reference server")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)"
    )
    serve.add_argument(
        "--port", type=int, default=8700, help="TCP port (default 8700; 0 picks a free one, shown in the banner)"
    )
    serve.add_argument(
        "--db",
        help="postgresql://user@host/dbname, or a SQLite file or sqlite:///path (default: PROMPTSTREAM_SERVER_DB, else"
        " a SQLite file in the user data dir); ':memory:' for a throwaway one",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        help="accepted API key of the default project (repeatable; else PROMPTSTREAM_SERVER_API_KEYS, else a generated"
        " dev key); project keys: promptstream keys create",
    )
    serve.add_argument("--rate-limit", type=float, default=None, help="requests per second per key (429 beyond)")
    serve.add_argument(
        "--price",
        action="append",
        metavar="MODEL=IN/OUT",
        help="US dollars per million input/output tokens of a model (the offline provider's is 'template'), or of a"
        " prompt as prompt:NAME_OR_ID=IN/OUT; repeatable (else PROMPTSTREAM_SERVER_PRICES, comma-separated)",
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=5 * 1024 * 1024, help="largest request body, also once inflated (413)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes serving the port (default 1; more than 1 needs a PostgreSQL --db)",
    )
    serve.add_argument(
        "--pool-size",
        type=int,
        default=16,
        help="PostgreSQL connections per worker process (default 16; see docs/scaling.md)",
    )
    serve.set_defaults(handler=_server.cmd_serve)

    demo = commands.add_parser(
        "demo", help="a two-variant experiment end to end on a temporary local server, with its results"
    )
    demo.add_argument("--users", type=int, default=2000, help="simulated users (default 2000)")
    demo.add_argument("--seed", type=int, default=42, help="seed of the simulation (default 42)")
    demo.add_argument("--plot", metavar="PATH", help="also write conversion per variant over time as PNG or SVG")
    demo.add_argument(
        "--dashboard",
        action="store_true",
        help="then leave the server running with the demo's experiment, to see it in the dashboard (until Ctrl-C)",
    )
    demo.set_defaults(handler=_demo.cmd_demo)

    prompts = commands.add_parser("prompts", help="create, list and show prompts on a server")
    prompt_commands = prompts.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = prompt_commands.add_parser("create", help="create a prompt (version 1) and its default experiment")
    create.add_argument("name")
    create.add_argument("template", help='e.g. "Summarise {{text}} for {{audience}}"')
    create.set_defaults(handler=_admin.cmd_prompts_create)
    listing = prompt_commands.add_parser("list", help="every prompt")
    listing.add_argument("--json", action="store_true", help="the prompts as JSON")
    listing.set_defaults(handler=_admin.cmd_prompts_list)
    show = prompt_commands.add_parser("show", help="a prompt with its versions")
    show.add_argument("prompt_id", metavar="PROMPT", help="the prompt's id or name")
    show.add_argument("--json", action="store_true", help="the prompt as JSON")
    show.set_defaults(handler=_admin.cmd_prompts_show)
    add_version = prompt_commands.add_parser("add-version", help="add a version to a prompt")
    add_version.add_argument("prompt_id", metavar="PROMPT", help="the prompt's id or name")
    add_version.add_argument("template")
    add_version.set_defaults(handler=_admin.cmd_prompts_add_version)

    experiments = commands.add_parser("experiments", help="create and list experiments, and read their results")
    experiment_commands = experiments.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = experiment_commands.add_parser("create", help="start an experiment (ends the prompt's current one)")
    start.add_argument("prompt_id", metavar="PROMPT", help="the prompt's id or name")
    start.add_argument(
        "--variant",
        action="append",
        required=True,
        type=_admin.parse_variant,
        metavar="VERSION[:WEIGHT]",
        help="a version and its weight, e.g. --variant 1:1 --variant 2:1 (the first is the control)",
    )
    start.add_argument("--name")
    start.set_defaults(handler=_admin.cmd_experiments_create)
    listed = experiment_commands.add_parser("list", help="experiments, optionally of one prompt")
    listed.add_argument("--prompt", dest="prompt_id", help="only this prompt's (id or name)")
    listed.add_argument("--json", action="store_true", help="the experiments as JSON")
    listed.set_defaults(handler=_admin.cmd_experiments_list)
    end = experiment_commands.add_parser(
        "end", help="end an experiment (the prompt then serves its latest version in a new default experiment)"
    )
    end.add_argument("experiment_id", metavar="ID", help="the experiment's id")
    end.add_argument("--json", action="store_true", help="the ended experiment as JSON")
    end.set_defaults(handler=_admin.cmd_experiments_end)
    results = _results.add_commands(experiment_commands)
    _keys.add_commands(commands)

    spool = commands.add_parser("spool", help="the local spool of undelivered events")
    spool_commands = spool.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = spool_commands.add_parser("status", help="which spools exist, what is pending and dead-lettered")
    status.add_argument("--json", action="store_true", help="every spool and its counts as JSON")
    status.set_defaults(handler=_spool.cmd_status)
    drain = spool_commands.add_parser("drain", help="deliver everything pending now, with the current key")
    drain.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds (default 300)")
    drain.add_argument(
        "--from", dest="adopt_from", action="append", metavar="SPOOL_FILE", help="adopt another spool's events first"
    )
    drain.set_defaults(handler=_spool.cmd_drain)
    dead = spool_commands.add_parser("dead-letters", help="the events the server refused, with its reasons")
    dead.add_argument("--json", action="store_true", help="as JSON: each event with its reason")
    dead.add_argument("--limit", type=int, default=None, help="at most this many, oldest first")
    dead.set_defaults(handler=_spool.cmd_dead_letters)
    replay = spool_commands.add_parser("replay", help="send the dead letters again, then drain")
    replay.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds (default 300)")
    replay.set_defaults(handler=_spool.cmd_replay)
    purge = spool_commands.add_parser("purge", help="delete the spool and every event in it")
    purge.add_argument("--dead-letters", action="store_true", help="delete only the dead letters")
    purge.add_argument("--yes", action="store_true", help="do not ask")
    purge.set_defaults(handler=_spool.cmd_purge)
    spool_actions = (status, drain, dead, replay, purge)
    for command in (create, listing, show, add_version, start, listed, end, results, *spool_actions):
        _connection_options(command)
    for command in spool_actions:
        command.add_argument("--spool-dir", help="default: PROMPTSTREAM_SPOOL_DIR, else the user cache dir")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CommandError as exc:
        print(f"promptstream: error: {exc}", file=sys.stderr)
    except AuthenticationError as exc:
        print(f"promptstream: error: the server refused the API key ({exc.status_code})", file=sys.stderr)
    except APIConnectionError as exc:
        print(f"promptstream: error: cannot reach the server: {exc.message}", file=sys.stderr)
    except PromptStreamError as exc:
        print(f"promptstream: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for the user, whatever went wrong
        print(f"promptstream: error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
