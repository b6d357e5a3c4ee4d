"""``promptstream projects`` and ``promptstream keys`` work on the server's database directly (both backends): a key
created there authenticates at once against a running server as its project, its secret is printed once and is in
no listing, and a key revoked there is refused by the running server at the next request."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from promptstream.cli import main
from promptstream.server import ServerThread
from promptstream.server._storage import Storage

from .helpers import API_KEY


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def db_of(store: Any) -> str:
    return str(store.url) if hasattr(store, "url") else str(store.path)


def test_keys_made_and_revoked_by_the_cli_take_effect_on_a_running_server(
    storage_factory: Callable[..., Storage], capsys: pytest.CaptureFixture[str]
) -> None:
    store = storage_factory()
    db = db_of(store)
    with ServerThread(store, [API_KEY]) as server:
        code, out, _ = cli(capsys, "projects", "create", "checkout", "--db", db, "--json")
        assert code == 0
        project = json.loads(out)["project_id"]
        code, out, _ = cli(capsys, "keys", "create", "--name", "web app", "--project", "checkout", "--db", db, "--json")
        assert code == 0
        created = json.loads(out)
        secret, key_id = created["secret"], created["key"]["key_id"]
        assert created["key"]["project_id"] == project and secret.startswith(created["key"]["prefix"])
        headers = {"Authorization": f"Bearer {secret}"}
        made = httpx.post(f"{server.url}/v1/prompts", json={"name": "p", "template": "Hi"}, headers=headers)
        assert made.status_code == 201
        assert [p["prompt_id"] for p in store.list_prompts(project)] == [made.json()["prompt_id"]]
        assert store.list_prompts("default") == []  # the server's own key's project saw nothing of it

        code, out, _ = cli(capsys, "keys", "list", "--db", db, "--json")
        listed = json.loads(out)
        assert code == 0 and [key["key_id"] for key in listed] == [key_id]
        assert listed[0]["last_used_at"] is not None  # the request above was recorded
        code, text, _ = cli(capsys, "keys", "list", "--db", db)
        assert secret not in text and key_id in text and "live" in text
        code, projects, _ = cli(capsys, "projects", "list", "--db", db, "--json")
        assert {p["name"] for p in json.loads(projects)} == {"default", "checkout"}

        code, out, _ = cli(capsys, "keys", "revoke", key_id, "--db", db)
        assert code == 0 and "revoked" in out
        refused = httpx.get(f"{server.url}/v1/prompts", headers=headers)
        assert refused.status_code == 401
        assert httpx.get(f"{server.url}/v1/prompts", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200


def test_the_secret_is_printed_once_and_failures_are_one_line(
    storage_factory: Callable[..., Storage], capsys: pytest.CaptureFixture[str]
) -> None:
    db = db_of(storage_factory())
    code, out, _ = cli(capsys, "keys", "create", "--name", "ci", "--db", db)
    secret = out.strip().splitlines()[-1]
    assert code == 0 and secret.startswith("ps_live_")
    for argv in (
        ("keys", "list", "--db", db),
        ("keys", "list", "--db", db, "--json"),
        ("projects", "list", "--db", db),
    ):
        code, out, _ = cli(capsys, *argv)
        assert code == 0 and secret not in out
    for argv, message in (
        (("keys", "revoke", "no-such-key", "--db", db), "no API key"),
        (("keys", "create", "--name", "x", "--project", "nope", "--db", db), "no project"),
        (("keys", "create", "--name", " ", "--db", db), "name"),
        (("projects", "create", "default", "--db", db), "exists already"),
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (argv, err)


@pytest.mark.sqlite_only
def test_listing_a_database_that_does_not_exist_says_so_rather_than_creating_it(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    missing = tmp_path / "typo.sqlite3"
    code, _, err = cli(capsys, "keys", "list", "--db", str(missing))
    assert code == 1 and "no database" in err and not missing.exists()
