"""``PgStore``: the reference server's storage on PostgreSQL, the second implementation of ``Storage``
(_storage.py); the same rules as ``Store`` (SQLite), with PostgreSQL's means of keeping them across connections and
server instances: row locks where SQLite takes its one lock, an advisory lock per Idempotency-Key, a claim row for an
idempotent run whose model is running, and ``ON CONFLICT DO NOTHING`` for event dedup.

Every public method is blocking and short (the server calls them from worker threads); each takes a connection from
the pool for one transaction. The model call of a run holds no connection and no lock.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg

from . import _events, _experiments
from ._assignment import assign_bucket, pick_variant
from ._decision import GUARDRAIL_METRICS
from ._limits import MAX_OUTPUT_BYTES, weights_problem
from ._pg import insert_events, lock_key, log_batch, open_pool, remember, replay
from ._pricing import Prices
from ._results import results_from_aggregates
from ._results_sql import POSTGRESQL, pg_fetch, read_aggregates, read_timeseries
from ._storage import Idempotency, StoreError
from ._templates import ModelProvider, TemplateProvider, call_model, rendered_size, run_metrics, template_inputs
from ._timeseries import of_project, timeseries
from ._wire import BatchResult, EventBody, Rejection, VariantSpec

__all__ = ["PgStore"]

_IN_FLIGHT_WAIT = 300.0  # as Store: how long a request waits for a run with its key; older claims are abandoned
_POLL = 0.05
_TABLES = ("events", "runs", "batch_log", "prompts", "experiments", "idempotency")


class PgStore:
    """The reference server's data in a PostgreSQL database (``postgresql://user@host/db``), shared safely by
    threads, worker processes and server instances.

    Example:
        ```python
        # doc: no-run: needs a PostgreSQL server
        store = PgStore("postgresql://promptstream@localhost/promptstream")
        prompt = store.create_prompt("welcome", "Write a welcome for {{name}}")
        ```
    """

    def __init__(
        self,
        url: str,
        provider: ModelProvider | None = None,
        *,
        prices: Prices | None = None,
        max_connections: int = 16,
    ) -> None:
        self.url = url
        self.provider: ModelProvider = provider or TemplateProvider()
        self.prices: Prices = prices or Prices()
        self._pool = open_pool(url, max_size=max_connections)
        self._random = random.Random()

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()

    # -- prompts and experiments ----------------------------------------------------------------------------------

    def create_prompt(self, name: str, template: str) -> dict[str, Any]:
        """Create a prompt with version 1 and its default experiment (which serves the latest version)."""
        if not name.strip():
            raise StoreError(422, "invalid_request", "name must not be empty")
        prompt_id = str(uuid.uuid4())
        now = time.time()
        with self._pool.connection() as conn:
            conn.execute("INSERT INTO prompts VALUES (%s, %s, %s)", (prompt_id, name, now))
            _insert_version(conn, prompt_id, 1, template, now)
            conn.execute(
                "INSERT INTO experiments VALUES (%s, %s, %s, %s, 1, %s, NULL)",
                (str(uuid.uuid4()), prompt_id, "default", json.dumps(_experiments.DEFAULT_VARIANTS), now),
            )
            return _prompt(conn, prompt_id)

    def add_version(self, prompt_id: str, template: str) -> dict[str, Any]:
        """Add the next version of a prompt; its inputs are the template's placeholders."""
        with self._pool.connection() as conn:
            latest = _latest_version(conn, prompt_id, lock=True)
            _insert_version(conn, prompt_id, latest + 1, template, time.time())
            return {"prompt_id": prompt_id, "version": latest + 1, "inputs": template_inputs(template)}

    def get_prompt(self, prompt_id: str) -> dict[str, Any]:
        """A prompt with all its versions; ``StoreError`` 404 if there is none."""
        with self._pool.connection() as conn:
            return _prompt(conn, prompt_id)

    def list_prompts(self) -> list[dict[str, Any]]:
        """Every prompt, oldest first."""
        with self._pool.connection() as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM prompts ORDER BY created_at, id")]
            return [_prompt(conn, prompt_id) for prompt_id in ids]

    def create_experiment(
        self, prompt_id: str, variants: list[VariantSpec], name: str | None = None, *, experiment_id: str | None = None
    ) -> dict[str, Any]:
        """Start an experiment over some of the prompt's versions, ending the prompt's previous one."""
        if experiment_id == _events.OFFLINE_EXPERIMENT_ID:
            raise StoreError(422, "invalid_request", "the experiment id 'offline' is reserved for fallback runs")
        problem = weights_problem([spec.weight for spec in variants])
        if problem is not None:
            raise StoreError(422, "invalid_request", problem)
        if len({spec.version for spec in variants}) != len(variants):
            raise StoreError(422, "invalid_request", "each version may appear once among the variants")
        with self._pool.connection() as conn:
            latest = _latest_version(conn, prompt_id, lock=True)  # one live experiment per prompt, across instances
            for spec in variants:
                if not 1 <= spec.version <= latest:
                    raise StoreError(422, "invalid_request", f"prompt has no version {spec.version}")
            now = time.time()
            conn.execute(
                "UPDATE experiments SET ended_at = %s WHERE prompt_id = %s AND ended_at IS NULL", (now, prompt_id)
            )
            experiment_id = experiment_id or str(uuid.uuid4())
            stored = [{"version": spec.version, "weight": spec.weight} for spec in variants]
            conn.execute(
                "INSERT INTO experiments VALUES (%s, %s, %s, %s, 0, %s, NULL)",
                (experiment_id, prompt_id, name, json.dumps(stored), now),
            )
            return _experiment(conn, experiment_id)

    def end_experiment(self, experiment_id: str) -> dict[str, Any]:
        """End an experiment, idempotently; ending the live one starts a new default experiment (as ``Store``)."""
        with self._pool.connection() as conn:
            prompt_id = _experiment(conn, experiment_id)["prompt_id"]  # 404 if unknown
            _latest_version(conn, prompt_id, lock=True)  # one live experiment per prompt, across instances
            now = time.time()
            ended = conn.execute(
                "UPDATE experiments SET ended_at = %s WHERE id = %s AND ended_at IS NULL", (now, experiment_id)
            ).rowcount
            if ended:
                conn.execute(
                    "INSERT INTO experiments VALUES (%s, %s, %s, %s, 1, %s, NULL)",
                    (str(uuid.uuid4()), prompt_id, "default", json.dumps(_experiments.DEFAULT_VARIANTS), now),
                )
            return _experiment(conn, experiment_id)

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        """An experiment: its prompt, variants, and whether it is still live."""
        with self._pool.connection() as conn:
            return _experiment(conn, experiment_id)

    def list_experiments(self, prompt_id: str | None = None) -> list[dict[str, Any]]:
        """Every experiment (of one prompt, if given), oldest first."""
        with self._pool.connection() as conn:
            if prompt_id is None:
                rows = conn.execute("SELECT id FROM experiments ORDER BY created_at, id")
            else:
                rows = conn.execute(
                    "SELECT id FROM experiments WHERE prompt_id = %s ORDER BY created_at, id", (prompt_id,)
                )
            return [_experiment(conn, row[0]) for row in rows.fetchall()]

    # -- runs -----------------------------------------------------------------------------------------------------

    def create_run(
        self,
        prompt_id: str,
        inputs: dict[str, Any],
        external_user_id: str | None,
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> tuple[int, bytes]:
        """Run a prompt in its live experiment. With ``idempotency`` the request first claims its key in the
        database (a row every instance sees); a concurrent request with the same key waits for the claimant's answer
        and replays it, so the model runs once. A claim older than the wait is taken over (its server died)."""
        if idempotency is None:
            return self._run_once(prompt_id, inputs, external_user_id, None, encode)
        deadline = time.monotonic() + _IN_FLIGHT_WAIT
        while True:
            with self._pool.connection() as conn:
                lock_key(conn, idempotency)
                answered = replay(conn, idempotency)
                if answered is None or (answered[0] == 0 and self._stale(conn, idempotency)):
                    conn.execute(
                        "INSERT INTO idempotency VALUES (%s, %s, %s, 0, NULL, %s) ON CONFLICT (scope, key) DO UPDATE"
                        " SET created_at = EXCLUDED.created_at",
                        (*idempotency, time.time()),
                    )
                    break
                if answered[0] != 0:
                    return answered
            if time.monotonic() >= deadline:
                raise StoreError(409, "request_in_progress", "a request with this Idempotency-Key is still running")
            time.sleep(_POLL)
        try:
            return self._run_once(prompt_id, inputs, external_user_id, idempotency, encode)
        except BaseException:
            with self._pool.connection() as conn:  # give the key back: a retry may run
                conn.execute("DELETE FROM idempotency WHERE scope = %s AND key = %s AND status = 0", idempotency[:2])
            raise

    @staticmethod
    def _stale(conn: psycopg.Connection[Any], idempotency: Idempotency) -> bool:
        row = conn.execute(
            "SELECT created_at FROM idempotency WHERE scope = %s AND key = %s", idempotency[:2]
        ).fetchone()
        return row is not None and float(row[0]) < time.time() - _IN_FLIGHT_WAIT

    def _run_once(
        self,
        prompt_id: str,
        inputs: dict[str, Any],
        external_user_id: str | None,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> tuple[int, bytes]:
        with self._pool.connection() as conn:
            _require_prompt(conn, prompt_id)
            row = conn.execute(
                "SELECT id, variants FROM experiments WHERE prompt_id = %s AND ended_at IS NULL"
                " ORDER BY created_at DESC LIMIT 1",
                (prompt_id,),
            ).fetchone()
            assert row is not None
            experiment_id = str(row[0])
            variants = _experiments.variants_of(row[1])
            position = (
                assign_bucket(experiment_id, external_user_id)
                if external_user_id is not None
                else self._random.random()
            )
            try:
                chosen = pick_variant(variants, position)
            except ValueError as exc:
                raise StoreError(409, "experiment_misconfigured", f"the live experiment cannot assign: {exc}") from None
            version = chosen.version if chosen.version is not None else _latest_version(conn, prompt_id)
            template = str(
                conn.execute(
                    "SELECT template FROM prompt_versions WHERE prompt_id = %s AND version = %s", (prompt_id, version)
                ).fetchone()[0]  # type: ignore[index]
            )
            names: tuple[str, ...] = (prompt_id,)
            if self.prices.prompts:
                row = conn.execute("SELECT name FROM prompts WHERE id = %s", (prompt_id,)).fetchone()
                names = (prompt_id, str(row[0]) if row else "")
        missing = [name for name in template_inputs(template) if name not in inputs]
        if missing:
            raise StoreError(422, "missing_input", f"missing template input(s): {', '.join(missing)}")
        size = rendered_size(template, inputs)
        if size > MAX_OUTPUT_BYTES:
            raise StoreError(
                422, "output_too_large", f"the rendered prompt would be {size} bytes, more than {MAX_OUTPUT_BYTES}"
            )
        completion = call_model(self.provider, template, inputs)  # no connection and no lock held
        output = completion.output
        size = len(output.encode("utf-8", "surrogatepass"))
        if size > MAX_OUTPUT_BYTES:
            raise StoreError(422, "output_too_large", f"the output is {size} bytes, more than {MAX_OUTPUT_BYTES}")
        run_id = str(uuid.uuid4())
        variant = f"v{version}"
        body = {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "variant_assigned": variant,
            "output": output,
            "prompt_id": prompt_id,
            "version": version,
            **run_metrics(completion, self.prices, names),
        }
        response: bytes = encode(body)
        metrics = (body["latency_ms"], body["input_tokens"], body["output_tokens"], body["cost_usd"])
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output,"
                " created_at, latency_ms, input_tokens, output_tokens, cost_usd)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (run_id, prompt_id, experiment_id, version, variant, external_user_id, output, time.time(), *metrics),
            )
            if idempotency is not None:
                remember(conn, idempotency, response)
        return 200, response

    # -- events ---------------------------------------------------------------------------------------------------

    def ingest_events(
        self,
        total: int,
        decoded: list[tuple[int, EventBody]],
        rejected: list[Rejection],
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> bytes:
        """Store a batch's new events with one multi-row ``INSERT ... ON CONFLICT (event_id) DO NOTHING``: an event
        stored meanwhile by another connection or instance counts as a duplicate, never twice. The answer is kept
        under the batch's Idempotency-Key in the same transaction (same-key batches are serialised)."""
        rejected = list(rejected)
        with self._pool.connection() as conn:
            if idempotency is not None:
                lock_key(conn, idempotency)
            answered = replay(conn, idempotency)
            if answered is not None:
                assert idempotency is not None
                log_batch(conn, idempotency[1], total, 0, 0, 0, replayed=True)
                return answered[1]
            run_ids = list({event.prompt_run_id for _, event in decoded})
            rows = conn.execute("SELECT id, experiment_id FROM runs WHERE id = ANY(%s)", (run_ids,)).fetchall()
            runs: dict[str, str] = {str(row[0]): str(row[1]) for row in rows}
            candidates: list[tuple[int, EventBody]] = []
            seen: set[str] = set()
            duplicates = 0
            for index, event in decoded:
                run_experiment = runs.get(event.prompt_run_id)
                if run_experiment is None and _events.is_offline_run(event.prompt_run_id, event.experiment_id):
                    run_experiment = event.experiment_id  # stored as an offline event: in no experiment's results
                if run_experiment is None:
                    rejected.append(Rejection(index, event.event_id, "unknown prompt_run_id"))
                elif run_experiment != event.experiment_id:
                    rejected.append(Rejection(index, event.event_id, "experiment_id does not match the run's"))
                elif event.event_id in seen:
                    duplicates += 1
                else:
                    seen.add(event.event_id)
                    candidates.append((index, event))
            inserted = insert_events(conn, [event for _, event in candidates], time.time())
            duplicates += len(candidates) - len(inserted)
            rejected.sort(key=lambda r: r.index)
            result = BatchResult(accepted=len(inserted), duplicates=duplicates, rejected=rejected)
            response: bytes = encode(result)
            if idempotency is not None:
                remember(conn, idempotency, response)
            key = idempotency[1] if idempotency else None
            log_batch(conn, key, total, len(inserted), duplicates, len(rejected))
            return response

    # -- reading, for results, the CLI and tests ------------------------------------------------------------------

    def experiment_results(self, experiment_id: str, *, guardrails: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Per-variant results, aggregated by PostgreSQL in one consistent snapshot (the same SQL as Store's)."""
        with self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            experiment = _experiment(conn, experiment_id)
            aggregates = read_aggregates(POSTGRESQL, pg_fetch(conn), experiment_id)
        return results_from_aggregates(experiment, aggregates, GUARDRAIL_METRICS if guardrails is None else guardrails)

    def experiment_timeseries(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        """Per UTC day and variant: runs, users, conversions and the cumulative conversion rate per user with its
        always-valid interval (docs/protocol.md, "Time series")."""
        with self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            experiment = of_project(_experiment(conn, experiment_id), project_id)
            days = read_timeseries(POSTGRESQL, pg_fetch(conn), experiment_id)
        return timeseries(experiment, days)

    def event_ids(self) -> list[str]:
        """Every stored event's id, sorted (byte order, as SQLite's)."""
        with self._pool.connection() as conn:
            return [row[0] for row in conn.execute('SELECT event_id FROM events ORDER BY event_id COLLATE "C"')]

    def count(self, table: str, where: str = "", args: Iterable[Any] = ()) -> int:
        """Rows of one of the store's tables, optionally filtered by a ``WHERE`` clause with ``?`` arguments."""
        if table not in _TABLES:
            raise ValueError(table)
        with self._pool.connection() as conn:
            query = f"SELECT COUNT(*) FROM {table} {where.replace('?', '%s')}"
            return int(conn.execute(query.encode(), tuple(args)).fetchone()[0])  # type: ignore[index]

    def batch_log(self) -> list[dict[str, Any]]:
        """Every event batch the server answered, in order."""
        with self._pool.connection() as conn:
            cursor = conn.execute("SELECT * FROM batch_log ORDER BY seq")
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _insert_version(conn: psycopg.Connection[Any], prompt_id: str, version: int, template: str, now: float) -> None:
    conn.execute(
        "INSERT INTO prompt_versions VALUES (%s, %s, %s, %s, %s)",
        (prompt_id, version, template, json.dumps(template_inputs(template)), now),
    )


def _require_prompt(conn: psycopg.Connection[Any], prompt_id: str, *, lock: bool = False) -> None:
    query = "SELECT 1 FROM prompts WHERE id = %s" + (" FOR UPDATE" if lock else "")
    if conn.execute(query.encode(), (prompt_id,)).fetchone() is None:
        raise StoreError(404, "prompt_not_found", f"no prompt with id {prompt_id!r}")


def _latest_version(conn: psycopg.Connection[Any], prompt_id: str, *, lock: bool = False) -> int:
    _require_prompt(conn, prompt_id, lock=lock)
    row = conn.execute("SELECT MAX(version) FROM prompt_versions WHERE prompt_id = %s", (prompt_id,)).fetchone()
    assert row is not None
    return int(row[0])


def _prompt(conn: psycopg.Connection[Any], prompt_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT id, name, created_at FROM prompts WHERE id = %s", (prompt_id,)).fetchone()
    if row is None:
        raise StoreError(404, "prompt_not_found", f"no prompt with id {prompt_id!r}")
    versions = [
        {"version": v, "template": t, "inputs": json.loads(i)}
        for v, t, i in conn.execute(
            "SELECT version, template, inputs FROM prompt_versions WHERE prompt_id = %s ORDER BY version",
            (prompt_id,),
        ).fetchall()
    ]
    live = conn.execute(
        "SELECT id FROM experiments WHERE prompt_id = %s AND ended_at IS NULL ORDER BY created_at DESC LIMIT 1",
        (prompt_id,),
    ).fetchone()
    assert live is not None
    return {
        "prompt_id": row[0],
        "name": row[1],
        "latest_version": versions[-1]["version"],
        "versions": versions,
        "experiment_id": live[0],
        "created_at": row[2],
    }


def _experiment(conn: psycopg.Connection[Any], experiment_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT id, prompt_id, name, variants, is_default, created_at, ended_at FROM experiments WHERE id = %s",
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
