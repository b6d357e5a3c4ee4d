"""Schema versions on both backends: a database created by the previous release (tests/data/server-release-1.sqlite3,
written by the code at tag `main` before schema versions existed) opens, upgrades to this release's version in
place and keeps every row, all of them in the "default" project (the project of the server's --api-key keys); a
database at schema version 2 (the release before projects) keeps its Idempotency-Key answers, which replay to the
same request after the upgrade; a PostgreSQL database at an older version upgrades the same way; a database newer
than the code is refused rather than written to."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest

from promptstream.server import ServerThread, Store, StoreError
from promptstream.server import _sqlite as sqlite_schema

from .helpers import API_KEY

RELEASE_1 = Path(__file__).parent / "data" / "server-release-1.sqlite3"
PROMPT_ID = "41a2e483-a54a-4627-b8fb-1f5ef9dc60ab"


def test_a_database_of_the_previous_release_upgrades_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    shutil.copyfile(RELEASE_1, path)
    with sqlite3.connect(path) as before:
        tables = {row[0] for row in before.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "schema_version" not in tables  # really the old layout
        old_runs = before.execute("SELECT * FROM runs ORDER BY id").fetchall()
        cursor = before.execute("SELECT * FROM events ORDER BY event_id")
        old_events = cursor.fetchall()
        old_event_columns = ", ".join(d[0] for d in cursor.description)  # later steps may add columns
    store = Store(path)
    try:
        assert store.get_prompt("default", PROMPT_ID)["latest_version"] == 2
        results = store.experiment_results("default", "exp-release-1")
        assert sum(variant["runs"] for variant in results["variants"]) == len(old_runs) == 6
        # the old idempotency records still replay: a retry after the upgrade never runs the model again
        status, body = store.create_run(
            "default",
            PROMPT_ID,
            {"name": "u0"},
            "user-0",
            idempotency=("runs", "key-0", "h"),
            encode=msgspec.json.encode,
        )
        assert status == 200 and msgspec.json.decode(body)["run_id"] in {row[0] for row in old_runs}
        store.create_run(
            "default", PROMPT_ID, {"name": "new"}, "user-new", idempotency=None, encode=msgspec.json.encode
        )
        assert store.count("runs") == 7 and store.event_ids() == sorted(row[0] for row in old_events)
        assert store.event_ids("default") == store.event_ids()
        # the old data is the default project's alone: a new project sees none of it
        other = store.create_project("other")["project_id"]
        assert [prompt["prompt_id"] for prompt in store.list_prompts("default")] == [PROMPT_ID]
        assert store.list_prompts(other) == [] and store.list_experiments(other) == []
        with pytest.raises(StoreError) as missing:
            store.experiment_results(other, "exp-release-1")
        assert missing.value.status == 404
    finally:
        store.close()
    with sqlite3.connect(path) as after:
        assert after.execute("SELECT version FROM schema_version").fetchall() == [(sqlite_schema.SCHEMA_VERSION,)]
        indexes = {row[0] for row in after.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "runs_for_results" in indexes
        # every old row is the default project's, and nothing else changed
        assert after.execute(f"SELECT {old_event_columns}, project_id FROM events ORDER BY event_id").fetchall() == [
            (*row, "default") for row in old_events
        ]
        for table in ("prompts", "experiments", "runs", "idempotency", "batch_log"):
            assert {row[0] for row in after.execute(f"SELECT DISTINCT project_id FROM {table}")} == {"default"}
    Store(path).close()  # opening an up-to-date database again changes nothing
    with sqlite3.connect(path) as again:
        assert again.execute("SELECT version FROM schema_version").fetchall() == [(sqlite_schema.SCHEMA_VERSION,)]


def _schema_v2_database(path: Path, prompt_id: str, run_body: bytes, answer: bytes) -> None:
    """A database as the release before projects left it (schema version 2): a prompt, a run answered under an
    Idempotency-Key (scoped, then, by a digest of the API key), and an event."""
    with sqlite3.connect(path) as db:
        for _, script in sqlite_schema.MIGRATIONS[:2]:
            db.executescript(script)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (2)")
        db.execute("INSERT INTO prompts VALUES (?, 'v2', 0)", (prompt_id,))
        db.execute("INSERT INTO prompt_versions VALUES (?, 1, 'Hi {{name}}', '[\"name\"]', 0)", (prompt_id,))
        variants = '[{"version": null, "weight": 1.0}]'
        db.execute("INSERT INTO experiments VALUES ('e2', ?, 'default', ?, 1, 0, NULL)", (prompt_id, variants))
        db.execute("INSERT INTO runs VALUES ('r2', ?, 'e2', 1, 'v1', 'u', 'Hi u', 0)", (prompt_id,))
        db.execute(
            "INSERT INTO events VALUES ('ev2', 'click', 'r2', 'e2', '2026-11-27T10:00:00Z', 'u', 'cta', NULL, NULL,"
            " NULL, NULL, NULL, 0)"
        )
        endpoint = f"runs/{prompt_id}"
        request_hash = hashlib.sha256(endpoint.encode() + b"\x00" + run_body).hexdigest()
        scope = hashlib.sha256(API_KEY.encode()).hexdigest()[:16] + ":" + endpoint
        db.execute("INSERT INTO idempotency VALUES (?, 'retry-me', ?, 200, ?, 0)", (scope, request_hash, answer))


def test_a_schema_v2_database_upgrades_and_its_idempotent_answers_still_replay(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    prompt_id = str(uuid.uuid4())
    run_body = b'{"inputs": {"name": "u"}, "external_user_id": "u"}'
    answer = b'{"run_id": "r2", "experiment_id": "e2", "variant_assigned": "v1", "output": "Hi u"}'
    _schema_v2_database(path, prompt_id, run_body, answer)
    store = Store(path)
    try:
        with ServerThread(store, [API_KEY]) as server:
            headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "retry-me"}
            retried = httpx.post(f"{server.url}/v1/prompts/{prompt_id}/runs", content=run_body, headers=headers)
            assert retried.status_code == 200 and retried.content == answer  # replayed, the model not run again
            assert store.count("runs") == 1
            # a key of a new project sees nothing of the upgraded data
            project = store.create_project("v3")["project_id"]
            _, secret = store.create_api_key(project, "new")
            other = {"Authorization": f"Bearer {secret}"}
            assert httpx.get(f"{server.url}/v1/prompts/{prompt_id}", headers=other).status_code == 404
            assert httpx.get(f"{server.url}/v1/prompts", headers=other).json() == {"prompts": []}
        assert store.event_ids("default") == ["ev2"] and store.event_ids(project) == []
    finally:
        store.close()


def test_a_sqlite_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (sqlite_schema.SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="newer than this server"):
        Store(path)


def test_a_postgres_database_at_an_older_version_upgrades_in_place(pg_url: str) -> None:
    import psycopg

    from promptstream.server import _pg
    from promptstream.server._pgstore import PgStore

    with psycopg.connect(pg_url) as conn:  # what version 1 left: its tables, some data, its version row
        conn.execute(_pg.MIGRATIONS[0][1].encode())
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO prompts VALUES ('p1', 'old', 0)")
        conn.execute("INSERT INTO prompt_versions VALUES ('p1', 1, 'Hi {{name}}', '[\"name\"]', 0)")
        conn.execute(
            "INSERT INTO experiments VALUES ('e1', 'p1', 'default', %s, 1, 0, NULL)",
            ('[{"version": null, "weight": 1.0}]',),
        )
        conn.execute("INSERT INTO runs VALUES ('r1', 'p1', 'e1', 1, 'v1', 'u', 'Hi u', 0)")
        conn.execute(
            "INSERT INTO events VALUES ('ev1', 'click', 'r1', 'e1', '2026-11-27T10:00:00Z', 'u', NULL, NULL, NULL,"
            " NULL, NULL, NULL, 0)"
        )
        # an answer kept under the old per-key scope: "<16 hex digits of the key's digest>:<endpoint>"
        conn.execute("INSERT INTO idempotency VALUES ('0123456789abcdef:runs/p1', 'k', 'h', 200, 'old answer', 0)")
    store = PgStore(pg_url)
    try:
        assert store.get_prompt("default", "p1")["experiment_id"] == "e1"
        replayed = store.create_run(
            "default", "p1", {"name": "u"}, "u", idempotency=("runs/p1", "k", "h"), encode=msgspec.json.encode
        )
        assert replayed == (200, b"old answer")
        status, _ = store.create_run("default", "p1", {"name": "x"}, "u", idempotency=None, encode=msgspec.json.encode)
        assert status == 200 and store.count("runs") == 2
        assert store.event_ids("default") == ["ev1"]
        other = store.create_project("other")["project_id"]
        with pytest.raises(StoreError) as missing:
            store.get_prompt(other, "p1")
        assert missing.value.status == 404 and store.event_ids(other) == []
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(_pg.SCHEMA_VERSION,)]
        names = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'runs'")}
        assert "runs_for_results" in names
        conn.execute("UPDATE schema_version SET version = %s", (_pg.SCHEMA_VERSION + 1,))
    with pytest.raises(ConnectionError, match="newer than this server"):
        PgStore(pg_url)
