"""`--db` / PROMPTSTREAM_SERVER_DB: a URL is never taken for a path. postgresql:// and postgres:// select PostgreSQL,
sqlite:///path or a plain path select SQLite, and any other scheme is a usage error (exit 2, one line) that creates
nothing. Real processes, in a scratch working directory."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream.server import Database, parse_database

from .helpers import REPO_ROOT, free_port, start_server_process

other_schemes = st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9+.\-]{1,12}\Z").filter(
    lambda s: s.lower() not in ("postgresql", "postgres", "sqlite")
)
tails = st.sampled_from(["//user@host/db", "//host:5432/x", "///tmp/x.db", "x", ""])


def serve(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    home = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "XDG_DATA_HOME": str(cwd / "data")}
    return subprocess.run(
        [sys.executable, "-m", "promptstream", "serve", "--port", "0", "--api-key", "k", *args],
        cwd=cwd,
        env={**home, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@given(scheme=other_schemes, tail=tails)
def test_any_other_scheme_is_refused(scheme: str, tail: str) -> None:
    with pytest.raises(ValueError, match="unsupported database scheme"):
        parse_database(f"{scheme}:{tail}")


@given(scheme=st.sampled_from(["postgresql", "postgres", "PostgreSQL", "POSTGRES"]), rest=st.text(max_size=40))
def test_postgres_urls_are_never_paths(scheme: str, rest: str) -> None:
    value = f"{scheme}://{rest}"
    assert parse_database(value) == Database("postgresql", value)


@given(path=st.text(st.characters(blacklist_characters=":\x00"), min_size=1, max_size=40).filter(str.strip))
def test_plain_paths_and_sqlite_urls_select_sqlite(path: str) -> None:
    assert parse_database(path) == Database("sqlite", path)
    assert parse_database(f"sqlite:///{path}") == Database("sqlite", path)
    assert parse_database(f"sqlite:////abs/{path}") == Database("sqlite", f"/abs/{path}")
    assert parse_database("C:\\data\\server.sqlite3").kind == "sqlite"  # a drive letter is not a scheme
    assert parse_database(":memory:") == parse_database("sqlite://") == Database("sqlite", ":memory:")


def test_the_banner_never_shows_the_password() -> None:
    assert "s3cret" not in parse_database("postgresql://app:s3cret@db.internal/ps").describe()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scheme=st.sampled_from(["mysql", "http", "https", "file", "redis", "mongodb+srv"]), from_env=st.booleans())
def test_serve_refuses_an_unknown_scheme_with_exit_2_and_creates_nothing(
    tmp_path: Path, scheme: str, from_env: bool
) -> None:
    cwd = tmp_path / f"{scheme}-{from_env}"
    cwd.mkdir(exist_ok=True)
    url = f"{scheme}://user@127.0.0.1:1/promptstream"
    result = serve(cwd, env={"PROMPTSTREAM_SERVER_DB": url}) if from_env else serve(cwd, "--db", url)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"unsupported database scheme {scheme!r}" in lines[0], result.stderr
    assert result.stdout == ""
    assert list(cwd.iterdir()) == []  # no folder named "mysql:", no SQLite file


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_serve_with_an_unreachable_postgres_fails_in_one_line_and_creates_no_folder(
    tmp_path: Path, scheme: str
) -> None:
    url = f"{scheme}://nobody@127.0.0.1:{free_port()}/promptstream?connect_timeout=5"
    result = serve(tmp_path, "--db", url)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PostgreSQL" in lines[0], result.stderr
    assert not (tmp_path / f"{scheme}:").exists()
    assert [p.name for p in tmp_path.iterdir()] in ([], ["data"])


def test_serve_takes_a_sqlite_url_from_the_environment(tmp_path: Path) -> None:
    target = tmp_path / "dbs" / "x.sqlite3"
    command = [sys.executable, "-m", "promptstream", "serve", "--port", "{port}"]
    home = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    env = {**home, "PYTHONPATH": str(REPO_ROOT), "PROMPTSTREAM_SERVER_API_KEYS": "k1"}
    env["PROMPTSTREAM_SERVER_DB"] = f"sqlite:///{target}"
    process, url = start_server_process(command, env, ready_path="/v1/prompts", cwd=tmp_path)
    try:
        assert (
            httpx.post(
                f"{url}/v1/prompts", json={"name": "p", "template": "Hi"}, headers={"Authorization": "Bearer k1"}
            ).status_code
            < 300
        )
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"(db: {target})" in output
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT name FROM prompts").fetchall() == [("p",)]
    assert not (tmp_path / "sqlite:").exists()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20).filter(str.strip))
def test_any_valid_unicode_text_round_trips_on_every_backend(storage_factory: Any, text: str) -> None:
    """PostgreSQL's text cannot hold NUL; what SQLite stores, every backend stores: names, templates, users."""
    store = storage_factory()
    name = f"{text}\x00{text}\U0010ffff"
    prompt = store.create_prompt("default", name, f"Hi {{{{name}}}} {text}\x00")
    assert store.get_prompt("default", prompt["prompt_id"])["name"] == name
    _, body = store.create_run(
        "default", prompt["prompt_id"], {"name": text}, name, idempotency=None, encode=msgspec.json.encode
    )
    output = msgspec.json.decode(body)["output"]
    assert output.endswith(f"{text}\x00") and store.count("runs", "WHERE external_user_id = ?", [name]) == 1
