"""``PgStore``: the reference server's storage on PostgreSQL, the second implementation of ``Storage``
(_storage.py); the same rules as ``Store`` (SQLite), with PostgreSQL's means of keeping them across connections and
server instances: row locks where SQLite takes its one lock, an advisory lock per Idempotency-Key, a claim row for an
idempotent run whose model is running, and ``ON CONFLICT DO NOTHING`` for event dedup.

Every public method is blocking and short (the server calls them from worker threads); each takes a connection from
the pool for one transaction. The model call of a run holds no connection and no lock.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg

from . import _pgaggregates, _pgassignments, _projects, _rules
from ._decision import GUARDRAIL_METRICS
from ._pg import (
    POOL_WAIT,
    PgSql,
    claim,
    claimed_at,
    insert_events,
    lock_key,
    log_batch,
    open_pool,
    release,
    remember,
    replay,
    take_token,
)
from ._pricing import Prices
from ._projects import ProjectMethods
from ._ratelimit import bucket_size
from ._results import results_from_aggregates
from ._results_sql import POSTGRESQL, pg_fetch, read_aggregates, read_timeseries
from ._storage import Idempotency, StoreError
from ._templates import ModelProvider, TemplateProvider, call_model, run_metrics, template_inputs
from ._timeseries import timeseries
from ._wire import BatchResult, EventBody, Rejection, VariantSpec

__all__ = ["PgStore"]

_POLL = 0.05
_TABLES = ("events", "runs", "batch_log", "prompts", "experiments", "idempotency", "projects", "api_keys", "rejections")


class PgStore(ProjectMethods):
    """The reference server's data in a PostgreSQL database (``postgresql://user@host/db``), shared safely by
    threads, worker processes and server instances. At most ``max_connections`` pooled connections; a request that
    finds none free within ``pool_wait`` seconds is answered 503 with Retry-After.

    Example:
        ```python
        # doc: no-run: needs a PostgreSQL server
        store = PgStore("postgresql://promptstream@localhost/promptstream")
        prompt = store.create_prompt("default", "welcome", "Write a welcome for {{name}}")
        ```
    """

    def __init__(
        self,
        url: str,
        provider: ModelProvider | None = None,
        *,
        prices: Prices | None = None,
        max_connections: int = 16,
        pool_wait: float = POOL_WAIT,
    ) -> None:
        self.url = url
        self.provider: ModelProvider = provider or TemplateProvider()
        self.prices: Prices = prices or Prices()
        self._pool = open_pool(url, max_size=max_connections, wait=pool_wait)
        self._random = random.Random()

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[PgSql]:
        with self._pool.connection() as conn:
            yield PgSql(conn)

    _writing = _reading  # each pooled connection is one transaction, committed when it is given back

    # -- prompts and experiments ----------------------------------------------------------------------------------

    def create_prompt(self, project_id: str, name: str, template: str) -> dict[str, Any]:
        """Create a prompt of the project with version 1 and its default experiment (which serves the latest
        version)."""
        _rules.check_prompt_name(name)
        prompt_id = str(uuid.uuid4())
        now = time.time()
        with self._pool.connection() as conn:
            _projects.get_project(PgSql(conn), project_id)
            conn.execute(
                "INSERT INTO prompts (id, name, created_at, project_id) VALUES (%s, %s, %s, %s)",
                (prompt_id, name, now, project_id),
            )
            _pgaggregates.insert_version(conn, prompt_id, 1, template, now)
            _pgaggregates.start_default_experiment(conn, project_id, prompt_id, now)
            return _pgaggregates.prompt(conn, project_id, prompt_id)

    def add_version(self, project_id: str, prompt_id: str, template: str) -> dict[str, Any]:
        """Add the next version of a prompt; its inputs are the template's placeholders."""
        with self._pool.connection() as conn:
            latest = _pgaggregates.latest_version(conn, project_id, prompt_id, lock=True)
            _pgaggregates.insert_version(conn, prompt_id, latest + 1, template, time.time())
            return {"prompt_id": prompt_id, "version": latest + 1, "inputs": template_inputs(template)}

    def get_prompt(self, project_id: str, prompt_id: str) -> dict[str, Any]:
        """A prompt of the project with all its versions; ``StoreError`` 404 if there is none."""
        with self._pool.connection() as conn:
            return _pgaggregates.prompt(conn, project_id, prompt_id)

    def list_prompts(self, project_id: str) -> list[dict[str, Any]]:
        """Every prompt of the project, oldest first."""
        with self._pool.connection() as conn:
            query = "SELECT id FROM prompts WHERE project_id = %s ORDER BY created_at, id"
            ids = [row[0] for row in conn.execute(query, (project_id,))]
            return [_pgaggregates.prompt(conn, project_id, prompt_id) for prompt_id in ids]

    def create_experiment(
        self,
        project_id: str,
        prompt_id: str,
        variants: list[VariantSpec],
        name: str | None = None,
        *,
        experiment_id: str | None = None,
    ) -> dict[str, Any]:
        """Start an experiment over some of the prompt's versions, ending the prompt's previous one."""
        stored = _rules.check_variants(variants, experiment_id)
        with self._pool.connection() as conn:
            # the prompt's row lock: one live experiment per prompt, across instances
            _rules.check_versions(variants, _pgaggregates.latest_version(conn, project_id, prompt_id, lock=True))
            now = time.time()
            conn.execute(
                "UPDATE experiments SET ended_at = %s WHERE prompt_id = %s AND ended_at IS NULL", (now, prompt_id)
            )
            experiment_id = experiment_id or str(uuid.uuid4())
            _pgaggregates.insert_experiment(conn, project_id, experiment_id, prompt_id, name, stored, now=now)
            return _pgaggregates.experiment(conn, project_id, experiment_id)

    def end_experiment(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        """End an experiment, idempotently; ending the live one starts a new default experiment (as ``Store``)."""
        with self._pool.connection() as conn:
            prompt_id = _pgaggregates.experiment(conn, project_id, experiment_id)["prompt_id"]  # 404 if unknown
            _pgaggregates.latest_version(
                conn, project_id, prompt_id, lock=True
            )  # one live experiment per prompt, across instances
            now = time.time()
            ended = conn.execute(
                "UPDATE experiments SET ended_at = %s WHERE id = %s AND ended_at IS NULL", (now, experiment_id)
            ).rowcount
            if ended:
                _pgaggregates.start_default_experiment(conn, project_id, prompt_id, now)
            return _pgaggregates.experiment(conn, project_id, experiment_id)

    def get_experiment(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        """An experiment of the project: its prompt, variants, and whether it is still live."""
        with self._pool.connection() as conn:
            return _pgaggregates.experiment(conn, project_id, experiment_id)

    def list_experiments(self, project_id: str, prompt_id: str | None = None) -> list[dict[str, Any]]:
        """Every experiment of the project (of one prompt, if given), oldest first."""
        query = "SELECT id FROM experiments WHERE project_id = %s"
        args: tuple[str, ...] = (project_id,)
        if prompt_id is not None:
            query += " AND prompt_id = %s"
            args += (prompt_id,)
        with self._pool.connection() as conn:
            rows = conn.execute((query + " ORDER BY created_at, id").encode(), args).fetchall()
            return [_pgaggregates.experiment(conn, project_id, row[0]) for row in rows]

    # -- runs -----------------------------------------------------------------------------------------------------

    def create_run(
        self,
        project_id: str,
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
            return self._run_once(project_id, prompt_id, inputs, external_user_id, None, encode)
        deadline = time.monotonic() + _rules.IN_FLIGHT_WAIT
        while True:
            with self._pool.connection() as conn:
                lock_key(conn, project_id, idempotency)
                answered = replay(conn, project_id, idempotency)
                if answered is None or (answered[0] == 0 and self._stale(conn, project_id, idempotency)):
                    claim(conn, project_id, idempotency)
                    break
                if answered[0] != 0:
                    return answered
            if time.monotonic() >= deadline:
                raise StoreError(409, "request_in_progress", "a request with this Idempotency-Key is still running")
            time.sleep(_POLL)
        try:
            return self._run_once(project_id, prompt_id, inputs, external_user_id, idempotency, encode)
        except BaseException:
            # the claim must go whatever the pool's state: wait for a connection as long as a retry would wait on it
            with self._pool.connection(_rules.IN_FLIGHT_WAIT) as conn:
                release(conn, project_id, idempotency)
            raise

    @staticmethod
    def _stale(conn: psycopg.Connection[Any], project_id: str, idempotency: Idempotency) -> bool:
        created_at = claimed_at(conn, project_id, idempotency)
        return created_at is not None and created_at < time.time() - _rules.IN_FLIGHT_WAIT

    def _run_once(
        self,
        project_id: str,
        prompt_id: str,
        inputs: dict[str, Any],
        external_user_id: str | None,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> tuple[int, bytes]:
        with self._pool.statement() as conn:  # versions never change once added: no snapshot needed across reads
            live = _pgaggregates.live_experiment(conn, project_id, prompt_id)
            experiment_id = live.experiment_id
            chosen = _rules.choose_variant(experiment_id, live.variants, external_user_id, self._random)
            version = chosen.version if chosen.version is not None else live.latest
            template = live.template(conn, prompt_id, version)
        names: tuple[str, ...] = (prompt_id, live.prompt_name) if self.prices.prompts else (prompt_id,)
        _rules.check_inputs(template, inputs)
        completion = call_model(self.provider, template, inputs)  # no connection and no lock held
        output = _rules.check_output(completion.output)
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
        # with an Idempotency-Key the run and its stored answer commit together; alone, the insert needs no
        # transaction. The model has run: wait for a connection as long as it takes rather than answer 503 and lose it
        wait = _rules.IN_FLIGHT_WAIT
        writing = self._pool.connection(wait) if idempotency is not None else self._pool.statement(wait)
        with writing as conn:
            conn.execute(
                "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output,"
                " created_at, project_id, latency_ms, input_tokens, output_tokens, cost_usd)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    run_id,
                    prompt_id,
                    experiment_id,
                    version,
                    variant,
                    external_user_id,
                    output,
                    time.time(),
                    project_id,
                    *metrics,
                ),
            )
            if idempotency is not None:
                remember(conn, project_id, idempotency, response)
        return 200, response

    def assign(
        self,
        project_id: str,
        prompt_id: str,
        external_user_id: str | None,
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> tuple[int, bytes]:
        """As ``Store.assign``: a run without output in one transaction; the key's advisory lock makes a concurrent
        retry wait and replay the first answer."""
        with self._pool.connection() as conn:
            if idempotency is not None:
                lock_key(conn, project_id, idempotency)
                answered = replay(conn, project_id, idempotency)
                if answered is not None:
                    return answered
            assigned = _pgassignments.assign(conn, self._random, project_id, prompt_id, external_user_id)
            response: bytes = encode(assigned)
            if idempotency is not None:
                remember(conn, project_id, idempotency, response)
            return 200, response

    # -- events ---------------------------------------------------------------------------------------------------

    def ingest_events(
        self,
        project_id: str,
        total: int,
        decoded: list[tuple[int, EventBody]],
        rejected: list[Rejection],
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> bytes:
        """Store a batch's new events with one multi-row ``INSERT ... ON CONFLICT (project_id, event_id) DO
        NOTHING``: an event stored meanwhile by another connection or instance counts as a duplicate, never twice.
        The answer is kept under the batch's Idempotency-Key in the same transaction (same-key batches are
        serialised), with the rejections' reasons."""
        rejected = list(rejected)
        with self._pool.connection() as conn:
            if idempotency is not None:
                lock_key(conn, project_id, idempotency)
            answered = replay(conn, project_id, idempotency)
            if answered is not None:
                assert idempotency is not None
                log_batch(conn, project_id, idempotency[1], total, 0, 0, 0, replayed=True)
                return answered[1]
            run_ids = list({event.prompt_run_id for _, event in decoded})
            rows = conn.execute(
                "SELECT id, experiment_id FROM runs WHERE project_id = %s AND id = ANY(%s)", (project_id, run_ids)
            ).fetchall()
            runs: dict[str, str] = {str(row[0]): str(row[1]) for row in rows}
            # dedup against stored events happens in the insert itself (ON CONFLICT), atomically across instances
            candidates, duplicates = _rules.sort_events(decoded, runs, set(), rejected)
            inserted = insert_events(conn, project_id, candidates, time.time())
            duplicates += len(candidates) - len(inserted)
            result = BatchResult(accepted=len(inserted), duplicates=duplicates, rejected=rejected)
            response: bytes = encode(result)
            if idempotency is not None:
                remember(conn, project_id, idempotency, response)
            key = idempotency[1] if idempotency else None
            log_batch(conn, project_id, key, total, len(inserted), duplicates, len(rejected))
            _projects.keep_rejections(PgSql(conn), project_id, rejected, key, time.time())
            return response

    def take_rate_token(self, scope: str, rate: float) -> float:
        """The shared rate limit (_ratelimit.py): a token from ``scope``'s bucket, which every worker and instance on
        this database draws from; 0.0 when granted, else the seconds until one is free."""
        with self._pool.connection() as conn:
            return take_token(conn, scope, rate, bucket_size(rate))

    # -- reading, for results, the CLI and tests ------------------------------------------------------------------

    def experiment_results(
        self, project_id: str, experiment_id: str, *, guardrails: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """Per-variant results, aggregated by PostgreSQL in one consistent snapshot (the same SQL as Store's)."""
        with self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            experiment = _pgaggregates.experiment(conn, project_id, experiment_id)
            aggregates = read_aggregates(POSTGRESQL, pg_fetch(conn), project_id, experiment_id)
        return results_from_aggregates(experiment, aggregates, GUARDRAIL_METRICS if guardrails is None else guardrails)

    def experiment_timeseries(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        """Per UTC day and variant: runs, users, conversions and the cumulative conversion rate per user with its
        always-valid interval (docs/protocol.md, "Time series")."""
        with self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            experiment = _pgaggregates.experiment(conn, project_id, experiment_id)  # 404 in another project
            days = read_timeseries(POSTGRESQL, pg_fetch(conn), project_id, experiment_id)
        return timeseries(experiment, days)

    def event_ids(self, project_id: str | None = None) -> list[str]:
        """Every stored event's id (of one project, if given), sorted (byte order, as SQLite's)."""
        with self._pool.connection() as conn:
            if project_id is None:
                rows = conn.execute('SELECT event_id FROM events ORDER BY event_id COLLATE "C"')
            else:
                query = 'SELECT event_id FROM events WHERE project_id = %s ORDER BY event_id COLLATE "C"'
                rows = conn.execute(query, (project_id,))
            return [row[0] for row in rows]

    def count(self, table: str, where: str = "", args: Iterable[Any] = ()) -> int:
        """Rows of one of the store's tables (all projects'), optionally filtered by a ``WHERE`` clause with ``?``
        arguments."""
        if table not in _TABLES:
            raise ValueError(table)
        with self._pool.connection() as conn:
            query = f"SELECT COUNT(*) FROM {table} {where.replace('?', '%s')}"
            return int(conn.execute(query.encode(), tuple(args)).fetchone()[0])  # type: ignore[index]

    def batch_log(self) -> list[dict[str, Any]]:
        """Every event batch the server answered (for every project), in order."""
        with self._pool.connection() as conn:
            cursor = conn.execute("SELECT * FROM batch_log ORDER BY seq")
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
