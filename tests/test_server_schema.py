"""Schema versions on both backends: a database created by the previous release (tests/data/server-release-1.sqlite3,
written by the code at tag `main` before schema versions existed) opens, upgrades to this release's version in
place and keeps every row; a PostgreSQL database at an older version upgrades the same way; a database newer than
the code is refused rather than written to."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import msgspec
import pytest

from promptstream.server import Store
from promptstream.server import _sqlite as sqlite_schema

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
        assert store.get_prompt(PROMPT_ID)["latest_version"] == 2
        results = store.experiment_results("exp-release-1")
        assert sum(variant["runs"] for variant in results["variants"]) == len(old_runs) == 6
        # the old idempotency records still replay: a retry after the upgrade never runs the model again
        status, body = store.create_run(
            PROMPT_ID, {"name": "u0"}, "user-0", idempotency=("runs", "key-0", "h"), encode=msgspec.json.encode
        )
        assert status == 200 and msgspec.json.decode(body)["run_id"] in {row[0] for row in old_runs}
        store.create_run(PROMPT_ID, {"name": "new"}, "user-new", idempotency=None, encode=msgspec.json.encode)
        assert store.count("runs") == 7 and store.event_ids() == sorted(row[0] for row in old_events)
    finally:
        store.close()
    with sqlite3.connect(path) as after:
        assert after.execute("SELECT version FROM schema_version").fetchall() == [(sqlite_schema.SCHEMA_VERSION,)]
        indexes = {row[0] for row in after.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "runs_for_results" in indexes
        assert after.execute(f"SELECT {old_event_columns} FROM events ORDER BY event_id").fetchall() == old_events
    Store(path).close()  # opening an up-to-date database again changes nothing
    with sqlite3.connect(path) as again:
        assert again.execute("SELECT version FROM schema_version").fetchall() == [(sqlite_schema.SCHEMA_VERSION,)]


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
    store = PgStore(pg_url)
    try:
        assert store.get_prompt("p1")["experiment_id"] == "e1"
        status, _ = store.create_run("p1", {"name": "x"}, "u", idempotency=None, encode=msgspec.json.encode)
        assert status == 200 and store.count("runs") == 1
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(_pg.SCHEMA_VERSION,)]
        names = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'runs'")}
        assert "runs_for_results" in names
        conn.execute("UPDATE schema_version SET version = %s", (_pg.SCHEMA_VERSION + 1,))
    with pytest.raises(ConnectionError, match="newer than this server"):
        PgStore(pg_url)
