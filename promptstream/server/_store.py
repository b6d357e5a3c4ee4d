"""The reference server's storage: prompts, versions, experiments, runs, events and idempotency records in SQLite.

Every public method is blocking and short: one transaction under one lock (the server calls them from a thread
pool, never on its event loop). The one slow step, the model call of a run, happens outside the lock.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._assignment import Variant, assign_bucket, pick_variant
from ._limits import MAX_OUTPUT_BYTES, weights_problem
from ._results import compute_results
from ._templates import ModelProvider, TemplateProvider, rendered_size, template_inputs
from ._wire import BatchResult, EventBody, Rejection, VariantSpec

# How long a request waits for a concurrent request with the same Idempotency-Key (a run whose model is slow) before
# it answers 409 rather than running the model a second time.
_IN_FLIGHT_WAIT = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS prompt_versions (
    prompt_id TEXT NOT NULL REFERENCES prompts(id), version INTEGER NOT NULL, template TEXT NOT NULL,
    inputs TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (prompt_id, version));
-- variants: JSON list of {"version": int|null, "weight": float}; null means "the prompt's latest version"
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, prompt_id TEXT NOT NULL REFERENCES prompts(id), name TEXT, variants TEXT NOT NULL,
    is_default INTEGER NOT NULL, created_at REAL NOT NULL, ended_at REAL);
CREATE INDEX IF NOT EXISTS experiments_by_prompt ON experiments(prompt_id, ended_at);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, prompt_id TEXT NOT NULL, experiment_id TEXT NOT NULL, version INTEGER NOT NULL,
    variant TEXT NOT NULL, external_user_id TEXT, output TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment_id);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, prompt_run_id TEXT NOT NULL, experiment_id TEXT NOT NULL,
    timestamp TEXT NOT NULL, external_user_id TEXT, label TEXT, source TEXT, metadata TEXT,
    thumbs_up INTEGER, rating REAL, engagement_score REAL, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_experiment ON events(experiment_id, type);
-- One row per idempotent request: the first answer is replayed for a retry with the same key and body.
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, status INTEGER NOT NULL,
    response BLOB NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (scope, key));
-- Every batch request the server processed (replays included), for operators and for tests of the SDK.
CREATE TABLE IF NOT EXISTS batch_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, idempotency_key TEXT, events INTEGER NOT NULL, accepted INTEGER NOT NULL,
    duplicates INTEGER NOT NULL, rejected INTEGER NOT NULL, replayed INTEGER NOT NULL, received_at REAL NOT NULL);
"""

_SQL_CHUNK = 500  # stays below SQLite's host-parameter limit on old builds (999)


class StoreError(Exception):
    """A request the store refuses; the app turns it into an error response.

    Example:
        ```python
        try:
            store.get_prompt("no-such-prompt")
        except StoreError as exc:
            print(exc.status, exc.error_type)  # 404 prompt_not_found
        ```
    """

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class Store:
    """The reference server's data: prompts, versions, experiments, runs and events in one SQLite file (WAL), safe
    to share between threads. The HTTP app is a thin layer over it; tests and the demo also use it directly.

    Example:
        ```python
        store = Store("/tmp/promptstream.sqlite3")  # or Store() for an in-memory database
        prompt = store.create_prompt("welcome", "Write a welcome for {{name}}")
        store.add_version(prompt["prompt_id"], "Say hi to {{name}}")
        store.create_experiment(prompt["prompt_id"], [VariantSpec(version=1), VariantSpec(version=2)])
        ```
    """

    def __init__(self, path: str | Path = ":memory:", provider: ModelProvider | None = None) -> None:
        self.path = str(path)
        self.provider: ModelProvider = provider or TemplateProvider()
        if self.path != ":memory:" and not self.path.startswith("file:"):
            _create_owner_only(Path(self.path))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._random = random.Random()
        self._in_flight: dict[tuple[str, str], threading.Event] = {}  # idempotent runs whose model is running
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database.

        Example:
            ```python
            store.close()
            ```
        """
        with self._lock:
            self._db.close()

    # -- prompts and experiments ----------------------------------------------------------------------------------

    def create_prompt(self, name: str, template: str) -> dict[str, Any]:
        """Create a prompt with version 1 and its default experiment (which serves the latest version).

        Example:
            ```python
            prompt = store.create_prompt("welcome", "Hello {{name}}")
            print(prompt["prompt_id"], prompt["experiment_id"])
            ```
        """
        if not name.strip():
            raise StoreError(422, "invalid_request", "name must not be empty")
        prompt_id = str(uuid.uuid4())
        now = time.time()
        with self._lock, self._transaction():
            self._db.execute("INSERT INTO prompts VALUES (?, ?, ?)", (prompt_id, name, now))
            self._insert_version(prompt_id, 1, template, now)
            self._db.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, 1, ?, NULL)",
                (
                    str(uuid.uuid4()),
                    prompt_id,
                    "default",
                    json.dumps([{"version": None, "weight": 1.0}]),
                    now,
                ),
            )
            return self._prompt(prompt_id)

    def add_version(self, prompt_id: str, template: str) -> dict[str, Any]:
        """Add the next version of a prompt; its inputs are the template's placeholders.

        Example:
            ```python
            store.add_version(prompt_id, "Hi {{name}}, welcome back")  # {"version": 2, ...}
            ```
        """
        with self._lock, self._transaction():
            latest = self._latest_version(prompt_id)
            self._insert_version(prompt_id, latest + 1, template, time.time())
            return {"prompt_id": prompt_id, "version": latest + 1, "inputs": template_inputs(template)}

    def get_prompt(self, prompt_id: str) -> dict[str, Any]:
        """A prompt with all its versions; ``StoreError`` 404 if there is none.

        Example:
            ```python
            versions = store.get_prompt(prompt_id)["versions"]
            ```
        """
        with self._lock:
            return self._prompt(prompt_id)

    def list_prompts(self) -> list[dict[str, Any]]:
        """Every prompt, oldest first.

        Example:
            ```python
            names = [prompt["name"] for prompt in store.list_prompts()]
            ```
        """
        with self._lock:
            ids = [row[0] for row in self._db.execute("SELECT id FROM prompts ORDER BY created_at")]
            return [self._prompt(prompt_id) for prompt_id in ids]

    def create_experiment(
        self, prompt_id: str, variants: list[VariantSpec], name: str | None = None, *, experiment_id: str | None = None
    ) -> dict[str, Any]:
        """Start an experiment over some of the prompt's versions, ending the prompt's previous one.

        ``experiment_id`` is for a reproducible demo (assignment hashes it); the HTTP API always makes a new one.

        Example:
            ```python
            variants = [VariantSpec(version=1, weight=1.0), VariantSpec(version=2, weight=1.0)]
            experiment = store.create_experiment(prompt_id, variants, name="shorter greeting")
            ```
        """
        problem = weights_problem([spec.weight for spec in variants])
        if problem is not None:
            raise StoreError(422, "invalid_request", problem)
        if len({spec.version for spec in variants}) != len(variants):
            raise StoreError(422, "invalid_request", "each version may appear once among the variants")
        with self._lock, self._transaction():
            latest = self._latest_version(prompt_id)
            for spec in variants:
                if not 1 <= spec.version <= latest:
                    raise StoreError(422, "invalid_request", f"prompt has no version {spec.version}")
            now = time.time()
            # A prompt has one live experiment: creating one ends the previous one, so new runs go to the new one.
            self._db.execute(
                "UPDATE experiments SET ended_at = ? WHERE prompt_id = ? AND ended_at IS NULL",
                (now, prompt_id),
            )
            experiment_id = experiment_id or str(uuid.uuid4())
            stored = [{"version": spec.version, "weight": spec.weight} for spec in variants]
            self._db.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, 0, ?, NULL)",
                (experiment_id, prompt_id, name, json.dumps(stored), now),
            )
            return self._experiment(experiment_id)

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        """An experiment: its prompt, variants, and whether it is still live.

        Example:
            ```python
            live = store.get_experiment(experiment_id)["active"]
            ```
        """
        with self._lock:
            return self._experiment(experiment_id)

    def list_experiments(self, prompt_id: str | None = None) -> list[dict[str, Any]]:
        """Every experiment (of one prompt, if given), oldest first.

        Example:
            ```python
            experiments = store.list_experiments(prompt_id)
            ```
        """
        with self._lock:
            query = "SELECT id FROM experiments"
            args: tuple[str, ...] = ()
            if prompt_id is not None:
                query += " WHERE prompt_id = ?"
                args = (prompt_id,)
            ids = [row[0] for row in self._db.execute(query + " ORDER BY created_at", args)]
            return [self._experiment(experiment_id) for experiment_id in ids]

    # -- runs -----------------------------------------------------------------------------------------------------

    def create_run(
        self,
        prompt_id: str,
        inputs: dict[str, Any],
        external_user_id: str | None,
        *,
        idempotency: tuple[str, str, str] | None,
        encode: Any,
    ) -> tuple[int, bytes]:
        """Run a prompt in its live experiment. With ``idempotency`` (scope, key, hash) the answer is stored in the
        same transaction as the run, so a retry replays it and never runs the model twice; a concurrent request with
        the same key waits for the first one's answer. The model is called holding no lock. Returns the status and
        the encoded response body.

        Example:
            ```python
            status, body = store.create_run(prompt_id, {"name": "Ada"}, "ada", idempotency=None, encode=json_encode)
            ```
        """
        if idempotency is None:
            return self._run_once(prompt_id, inputs, external_user_id, None, encode)
        claim = idempotency[:2]
        deadline = time.monotonic() + _IN_FLIGHT_WAIT
        while True:
            with self._lock:
                replay = self._replay(idempotency)
                if replay is not None:
                    return replay
                running = self._in_flight.get(claim)
                if running is None:
                    mine = self._in_flight[claim] = threading.Event()
                    break
            if not running.wait(max(0.0, deadline - time.monotonic())):
                raise StoreError(409, "request_in_progress", "a request with this Idempotency-Key is still running")
        try:
            return self._run_once(prompt_id, inputs, external_user_id, idempotency, encode)
        finally:
            with self._lock:
                del self._in_flight[claim]
            mine.set()

    def _run_once(
        self,
        prompt_id: str,
        inputs: dict[str, Any],
        external_user_id: str | None,
        idempotency: tuple[str, str, str] | None,
        encode: Any,
    ) -> tuple[int, bytes]:
        with self._lock:
            self._require_prompt(prompt_id)
            experiment = self._live_experiment(prompt_id)
            variants = [Variant(v["version"], v["weight"]) for v in json.loads(experiment["variants"])]
            position = (
                assign_bucket(experiment["id"], external_user_id)
                if external_user_id is not None
                else self._random.random()
            )
            try:
                chosen = pick_variant(variants, position)
            except ValueError as exc:  # only a database written by hand or by another tool holds such weights
                raise StoreError(409, "experiment_misconfigured", f"the live experiment cannot assign: {exc}") from None
            version = chosen.version if chosen.version is not None else self._latest_version(prompt_id)
            template = self._db.execute(
                "SELECT template FROM prompt_versions WHERE prompt_id = ? AND version = ?",
                (prompt_id, version),
            ).fetchone()[0]
        missing = [name for name in template_inputs(template) if name not in inputs]
        if missing:
            raise StoreError(422, "missing_input", f"missing template input(s): {', '.join(missing)}")
        size = rendered_size(template, inputs)
        if size > MAX_OUTPUT_BYTES:
            raise StoreError(
                422, "output_too_large", f"the rendered prompt would be {size} bytes, more than {MAX_OUTPUT_BYTES}"
            )
        output = self.provider.complete(template, inputs)  # no lock held: a slow model delays only this run
        if not isinstance(output, str):
            raise TypeError(f"the model provider returned {type(output).__name__}, not str")
        size = len(output.encode("utf-8", "surrogatepass"))
        if size > MAX_OUTPUT_BYTES:
            raise StoreError(422, "output_too_large", f"the output is {size} bytes, more than {MAX_OUTPUT_BYTES}")
        run_id = str(uuid.uuid4())
        variant = f"v{version}"
        body = {
            "run_id": run_id,
            "experiment_id": experiment["id"],
            "variant_assigned": variant,
            "output": output,
            "prompt_id": prompt_id,
            "version": version,
        }
        response: bytes = encode(body)
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, prompt_id, experiment["id"], version, variant, external_user_id, output, time.time()),
            )
            if idempotency is not None:
                self._db.execute(
                    "INSERT INTO idempotency VALUES (?, ?, ?, 200, ?, ?)",
                    (*idempotency, response, time.time()),
                )
        return 200, response

    # -- events ---------------------------------------------------------------------------------------------------

    def ingest_events(
        self,
        total: int,
        decoded: list[tuple[int, EventBody]],
        rejected: list[Rejection],
        *,
        idempotency: tuple[str, str, str] | None,
        encode: Any,
    ) -> bytes:
        """Store the new events of a batch whose events were decoded and checked one by one by the caller (one bad
        event never rejects its neighbours; ``rejected`` lists those it refused), count the ones already stored
        (dedup by event_id) and record the answer under the batch's Idempotency-Key, all in one transaction.
        Returns the encoded response body.

        Example:
            ```python
            body = store.ingest_events(len(events), list(enumerate(events)), [], idempotency=None, encode=json_encode)
            ```
        """
        rejected = list(rejected)
        with self._lock:
            replay = self._replay(idempotency)
            if replay is not None:
                assert idempotency is not None
                self._log_batch(idempotency[1], total, 0, 0, 0, replayed=True)
                return replay[1]
            runs = self._run_experiments({event.prompt_run_id for _, event in decoded})
            fresh: list[EventBody] = []
            seen: set[str] = set()
            already = self._existing_events({event.event_id for _, event in decoded})
            duplicates = 0
            for index, event in decoded:
                run_experiment = runs.get(event.prompt_run_id)
                if run_experiment is None:
                    rejected.append(Rejection(index, event.event_id, "unknown prompt_run_id"))
                elif run_experiment != event.experiment_id:
                    rejected.append(Rejection(index, event.event_id, "experiment_id does not match the run's"))
                elif event.event_id in already or event.event_id in seen:
                    duplicates += 1
                else:
                    seen.add(event.event_id)
                    fresh.append(event)
            rejected.sort(key=lambda r: r.index)
            result = BatchResult(accepted=len(fresh), duplicates=duplicates, rejected=rejected)
            response: bytes = encode(result)
            now = time.time()
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            e.event_id,
                            e.type,
                            e.prompt_run_id,
                            e.experiment_id,
                            e.timestamp,
                            e.external_user_id,
                            e.label,
                            e.source,
                            None if e.metadata is None else json.dumps(e.metadata),
                            None if e.thumbs_up is None else int(e.thumbs_up),
                            e.rating,
                            e.engagement_score,
                            now,
                        )
                        for e in fresh
                    ],
                )
                if idempotency is not None:
                    self._db.execute(
                        "INSERT INTO idempotency VALUES (?, ?, ?, 200, ?, ?)", (*idempotency, response, now)
                    )
                self._log_batch(
                    idempotency[1] if idempotency else None,
                    total,
                    len(fresh),
                    duplicates,
                    len(rejected),
                )
            return response

    # -- reading, for results, the CLI and tests ------------------------------------------------------------------

    def experiment_results(self, experiment_id: str) -> dict[str, Any]:
        """Per-variant results with intervals, lifts against the control and p-values (docs/experiments.md).

        Example:
            ```python
            results = store.experiment_results(experiment_id)
            print(results["control"], [variant["conversion"]["per_user"]["rate"] for variant in results["variants"]])
            ```
        """
        with self._lock:
            experiment = self._experiment(experiment_id)
            runs = self._db.execute(
                "SELECT id, variant, external_user_id FROM runs WHERE experiment_id = ?", (experiment_id,)
            ).fetchall()
            events = self._db.execute(
                "SELECT prompt_run_id, type, thumbs_up, rating, engagement_score, timestamp, event_id FROM events"
                " WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchall()
        return compute_results(experiment, runs, events)

    def event_ids(self) -> list[str]:
        """Every stored event's id, sorted: what tests compare with the ids ``track_*`` returned.

        Example:
            ```python
            assert sorted(tracked_ids) == store.event_ids()
            ```
        """
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT event_id FROM events ORDER BY event_id")]

    def count(self, table: str, where: str = "", args: Iterable[Any] = ()) -> int:
        """Rows of one of the store's tables, optionally filtered by a ``WHERE`` clause with ``?`` arguments.

        Example:
            ```python
            clicks = store.count("events", "WHERE type = ?", ["click"])
            ```
        """
        if table not in ("events", "runs", "batch_log", "prompts", "experiments", "idempotency"):
            raise ValueError(table)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {table} {where}", tuple(args)).fetchone()[0])

    def batch_log(self) -> list[dict[str, Any]]:
        """Every event batch the server answered, in order (for tests of retries and idempotency).

        Example:
            ```python
            keys = [entry["idempotency_key"] for entry in store.batch_log()]
            ```
        """
        with self._lock:
            cursor = self._db.execute("SELECT * FROM batch_log ORDER BY seq")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]

    # -- helpers; callers hold the lock ---------------------------------------------------------------------------

    def _replay(self, idempotency: tuple[str, str, str] | None) -> tuple[int, bytes] | None:
        """The stored (status, body) for a retried request; 422 when its key was used for another body."""
        if idempotency is None:
            return None
        row = self._db.execute(
            "SELECT request_hash, status, response FROM idempotency WHERE scope = ? AND key = ?", idempotency[:2]
        ).fetchone()
        if row is None:
            return None
        if row[0] != idempotency[2]:
            raise StoreError(
                422, "idempotency_key_reused", "this Idempotency-Key was already used with a different request body"
            )
        return int(row[1]), bytes(row[2])

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _insert_version(self, prompt_id: str, version: int, template: str, now: float) -> None:
        self._db.execute(
            "INSERT INTO prompt_versions VALUES (?, ?, ?, ?, ?)",
            (prompt_id, version, template, json.dumps(template_inputs(template)), now),
        )

    def _require_prompt(self, prompt_id: str) -> None:
        if self._db.execute("SELECT 1 FROM prompts WHERE id = ?", (prompt_id,)).fetchone() is None:
            raise StoreError(404, "prompt_not_found", f"no prompt with id {prompt_id!r}")

    def _latest_version(self, prompt_id: str) -> int:
        self._require_prompt(prompt_id)
        row = self._db.execute("SELECT MAX(version) FROM prompt_versions WHERE prompt_id = ?", (prompt_id,)).fetchone()
        return int(row[0])

    def _prompt(self, prompt_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT id, name, created_at FROM prompts WHERE id = ?", (prompt_id,)).fetchone()
        if row is None:
            raise StoreError(404, "prompt_not_found", f"no prompt with id {prompt_id!r}")
        versions = [
            {"version": v, "template": t, "inputs": json.loads(i)}
            for v, t, i in self._db.execute(
                "SELECT version, template, inputs FROM prompt_versions WHERE prompt_id = ? ORDER BY version",
                (prompt_id,),
            )
        ]
        return {
            "prompt_id": row[0],
            "name": row[1],
            "latest_version": versions[-1]["version"],
            "versions": versions,
            "experiment_id": self._live_experiment(prompt_id)["id"],
            "created_at": row[2],
        }

    def _live_experiment(self, prompt_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT id, variants FROM experiments WHERE prompt_id = ? AND ended_at IS NULL"
            " ORDER BY created_at DESC LIMIT 1",
            (prompt_id,),
        ).fetchone()
        return {"id": row[0], "variants": row[1]}

    def _experiment(self, experiment_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT id, prompt_id, name, variants, is_default, created_at, ended_at FROM experiments WHERE id = ?",
            (experiment_id,),
        ).fetchone()
        if row is None:
            raise StoreError(404, "experiment_not_found", f"no experiment with id {experiment_id!r}")
        return {
            "experiment_id": row[0],
            "prompt_id": row[1],
            "name": row[2],
            "variants": json.loads(row[3]),
            "is_default": bool(row[4]),
            "created_at": row[5],
            "ended_at": row[6],
            "active": row[6] is None,
        }

    def _run_experiments(self, run_ids: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ids = list(run_ids)
        for start in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"SELECT id, experiment_id FROM runs WHERE id IN ({marks})", chunk))
        return found

    def _existing_events(self, event_ids: set[str]) -> set[str]:
        found: set[str] = set()
        ids = list(event_ids)
        for start in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0] for r in self._db.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk)
            )
        return found

    def _log_batch(
        self,
        key: str | None,
        events: int,
        accepted: int,
        duplicates: int,
        rejected: int,
        *,
        replayed: bool = False,
    ) -> None:
        self._db.execute(
            "INSERT INTO batch_log (idempotency_key, events, accepted, duplicates, rejected, replayed, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, events, accepted, duplicates, rejected, int(replayed), time.time()),
        )


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _create_owner_only(path: Path) -> None:
    """Create the database file 0600 (and its directory 0700) before SQLite opens it: SQLite gives the -wal and -shm
    files the mode of the database, so all three stay owner-only. A file or directory that already exists keeps its
    mode: it is not ours to change."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
