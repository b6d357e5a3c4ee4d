"""``promptstream projects …`` and ``promptstream keys …``: projects and their API keys, managed on the server's
database directly (``--db``, else PROMPTSTREAM_SERVER_DB, else the SQLite file ``promptstream serve`` uses by
default), so an operator needs no key to make the first one. A new key's secret is printed once and kept only as a
hash; a revoked key is refused at the next request by every server on that database."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._common import CommandError, server_module

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``projects create|list`` and ``keys create|list|revoke``."""
    projects = commands.add_parser("projects", help="projects, which own prompts, experiments, runs, events and keys")
    project_commands = projects.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = project_commands.add_parser("create", help="create a project (its name is unique)")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="the project as JSON")
    create.set_defaults(handler=cmd_projects_create)
    listing = project_commands.add_parser("list", help="every project")
    listing.add_argument("--json", action="store_true", help="the projects as JSON")
    listing.set_defaults(handler=cmd_projects_list)

    keys = commands.add_parser("keys", help="API keys: each belongs to one project and sees only its data")
    key_commands = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = key_commands.add_parser("create", help="create a key; its secret is printed once, never again")
    new.add_argument("--name", required=True, help="what the key is for, e.g. 'checkout web app'")
    new.add_argument("--project", default="default", help="the project's id or name (default: default)")
    new.add_argument("--json", action="store_true", help="the key's record and secret as JSON")
    new.set_defaults(handler=cmd_keys_create)
    listed = key_commands.add_parser("list", help="keys (never their secrets), revoked ones included")
    listed.add_argument("--project", help="only this project's (id or name)")
    listed.add_argument("--json", action="store_true", help="the keys as JSON")
    listed.set_defaults(handler=cmd_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key: every server refuses it from the next request")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (shown by keys list)")
    revoke.add_argument("--json", action="store_true", help="the revoked key as JSON")
    revoke.set_defaults(handler=cmd_keys_revoke)
    for command in (create, listing, new, listed, revoke):
        command.add_argument(
            "--db", help="the server's database, as for serve (default: PROMPTSTREAM_SERVER_DB, else serve's default)"
        )


@contextlib.contextmanager
def _storage(args: argparse.Namespace, *, must_exist: bool) -> Iterator[Any]:
    server = server_module()
    db = args.db or os.environ.get(server.ENV_SERVER_DB) or str(server.default_data_dir() / "server.sqlite3")
    try:
        database = server.parse_database(db)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    # a typo in --db must not answer "no keys" from a new, empty file
    sqlite_file = database.kind == "sqlite" and database.target != ":memory:"
    if must_exist and sqlite_file and not Path(database.target).exists():
        raise CommandError(f"no database at {database.target}: pass the --db that promptstream serve uses")
    try:
        storage = server.open_storage(database)
    except ConnectionError as exc:
        raise CommandError(str(exc)) from None
    except ImportError as exc:
        raise CommandError(f"PostgreSQL needs its extra: pip install 'promptstream[server,postgres]' ({exc})") from None
    try:
        yield storage
    except server.StoreError as exc:
        raise CommandError(exc.message) from None
    finally:
        storage.close()


def _project_id(storage: Any, id_or_name: str) -> str:
    for project in storage.list_projects():
        if id_or_name in (project["project_id"], project["name"]):
            return str(project["project_id"])
    raise CommandError(f"no project with id or name {id_or_name!r}: promptstream projects list shows them")


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def cmd_projects_create(args: argparse.Namespace) -> int:
    with _storage(args, must_exist=False) as storage:
        project = storage.create_project(args.name)
    if args.json:
        _print_json(project)
    else:
        print(f"{project['project_id']}  {project['name']}")
        print(f"create its first key: promptstream keys create --project {project['project_id']} --name NAME")
    return 0


def cmd_projects_list(args: argparse.Namespace) -> int:
    with _storage(args, must_exist=True) as storage:
        projects = storage.list_projects()
    if args.json:
        _print_json(projects)
        return 0
    for project in projects:
        print(f"{project['project_id']}  {project['name']}  created {_when(project['created_at'])}")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    with _storage(args, must_exist=False) as storage:
        record, secret = storage.create_api_key(_project_id(storage, args.project), args.name)
    if args.json:
        _print_json({"key": record, "secret": secret})
        return 0
    print(f"API key {record['key_id']} ({record['name']}) of project {record['project_id']}")
    print("Its secret, shown this once (only a hash is kept; store it now):", file=sys.stderr)
    print(secret)
    return 0


def _all_keys(storage: Any, project: str | None) -> list[dict[str, Any]]:
    projects = [_project_id(storage, project)] if project else [p["project_id"] for p in storage.list_projects()]
    return [key for project_id in projects for key in storage.list_api_keys(project_id)]


def cmd_keys_list(args: argparse.Namespace) -> int:
    with _storage(args, must_exist=True) as storage:
        keys = _all_keys(storage, args.project)
    if args.json:
        _print_json(keys)
        return 0
    for key in keys:
        state = f"revoked {_when(key['revoked_at'])}" if key["revoked_at"] is not None else "live"
        print(
            f"{key['key_id']}  {key['prefix']}…  project {key['project_id']}  {key['name']}  {state}  "
            f"created {_when(key['created_at'])}  last used {_when(key['last_used_at'])}"
        )
    if not keys:
        print("no keys yet: promptstream keys create --name NAME")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with _storage(args, must_exist=True) as storage:
        owner = next((key["project_id"] for key in _all_keys(storage, None) if key["key_id"] == args.key_id), None)
        if owner is None:
            raise CommandError(f"no API key with id {args.key_id!r}: promptstream keys list shows them")
        key = storage.revoke_api_key(owner, args.key_id)
    if args.json:
        _print_json(key)
    else:
        print(f"revoked {key['key_id']} ({key['name']}) of project {key['project_id']} at {_when(key['revoked_at'])}")
    return 0
