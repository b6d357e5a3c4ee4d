"""``Store``: the reference server's storage on SQLite, the implementation of ``Storage`` (_storage.py).

Every public method is blocking and short: one transaction under one lock (the server calls them from a thread
pool, never on its event loop). The one slow step, the model call of a run, happens outside the lock. The SQL lives
in one module per aggregate (_prompts.py, _experiments.py, _runs.py, _events.py) over _sqlite.py; this module
holds the transactions that span them; the rules both backends share are in _rules.py, projects and keys in
_projects.py. Every data method takes the project first: a project sees only its own prompts, experiments, runs and
events, and another project's are not found (404), exactly as ones that do not exist.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import _assignments, _events, _experiments, _projects, _prompts, _rules, _runs
from ._decision import GUARDRAIL_METRICS
from ._pricing import Prices
from ._projects import ProjectMethods
from ._results import results_from_aggregates
from ._results_sql import SQLITE, read_aggregates, read_timeseries
from ._sqlite import Transaction, connect, remember, replay
from ._storage import Idempotency, StoreError
from ._templates import ModelProvider, TemplateProvider, call_model, run_metrics, template_inputs
from ._timeseries import timeseries
from ._wire import BatchResult, EventBody, Rejection, VariantSpec

__all__ = ["Store", "StoreError"]


class Store(ProjectMethods):
    """The reference server's data: projects and their keys, prompts, versions, experiments, runs and events in one
    SQLite file (WAL), safe to share between threads. The HTTP app is a thin layer over it; tests and the demo also
    use it directly.

    Example:
        ```python
        store = Store("/tmp/promptstream.sqlite3")  # or Store() for an in-memory database
        prompt = store.create_prompt("default", "welcome", "Write a welcome for {{name}}")
        store.add_version("default", prompt["prompt_id"], "Say hi to {{name}}")
        store.create_experiment("default", prompt["prompt_id"], [VariantSpec(version=1), VariantSpec(version=2)])
        ```
    """

    def __init__(
        self, path: str | Path = ":memory:", provider: ModelProvider | None = None, *, prices: Prices | None = None
    ) -> None:
        self.path: str = str(path)
        self.provider: ModelProvider = provider or TemplateProvider()
        self.prices: Prices = prices or Prices()
        self._db = connect(self.path)
        self._lock = threading.Lock()
        self._random = random.Random()
        self._in_flight: dict[tuple[str, str, str], threading.Event] = {}  # idempotent runs whose model is running

    def close(self) -> None:
        """Close the database.

        Example:
            ```python
            store.close()
            ```
        """
        with self._lock:
            self._db.close()

    def _transaction(self) -> Transaction:
        return Transaction(self._db)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._transaction():
            yield self._db

    # -- prompts and experiments ----------------------------------------------------------------------------------

    def create_prompt(self, project_id: str, name: str, template: str) -> dict[str, Any]:
        """Create a prompt of the project with version 1 and its default experiment (which serves the latest
        version).

        Example:
            ```python
            prompt = store.create_prompt("default", "welcome", "Hello {{name}}")
            print(prompt["prompt_id"], prompt["experiment_id"])
            ```
        """
        _rules.check_prompt_name(name)
        prompt_id = str(uuid.uuid4())
        now = time.time()
        with self._lock, self._transaction():
            _projects.get_project(self._db, project_id)
            _prompts.insert_prompt(self._db, project_id, prompt_id, name, now)
            _prompts.insert_version(self._db, prompt_id, 1, template, now)
            _experiments.start_default_experiment(self._db, project_id, prompt_id, now)
            return _prompts.prompt(self._db, project_id, prompt_id)

    def add_version(self, project_id: str, prompt_id: str, template: str) -> dict[str, Any]:
        """Add the next version of a prompt; its inputs are the template's placeholders.

        Example:
            ```python
            store.add_version("default", prompt_id, "Hi {{name}}, welcome back")  # {"version": 2, ...}
            ```
        """
        with self._lock, self._transaction():
            latest = _prompts.latest_version(self._db, project_id, prompt_id)
            _prompts.insert_version(self._db, prompt_id, latest + 1, template, time.time())
            return {"prompt_id": prompt_id, "version": latest + 1, "inputs": template_inputs(template)}

    def get_prompt(self, project_id: str, prompt_id: str) -> dict[str, Any]:
        """A prompt of the project with all its versions; ``StoreError`` 404 if there is none.

        Example:
            ```python
            versions = store.get_prompt("default", prompt_id)["versions"]
            ```
        """
        with self._lock:
            return _prompts.prompt(self._db, project_id, prompt_id)

    def list_prompts(self, project_id: str) -> list[dict[str, Any]]:
        """Every prompt of the project, oldest first.

        Example:
            ```python
            names = [prompt["name"] for prompt in store.list_prompts("default")]
            ```
        """
        with self._lock:
            ids = _prompts.prompt_ids(self._db, project_id)
            return [_prompts.prompt(self._db, project_id, prompt_id) for prompt_id in ids]

    def create_experiment(
        self,
        project_id: str,
        prompt_id: str,
        variants: list[VariantSpec],
        name: str | None = None,
        *,
        experiment_id: str | None = None,
    ) -> dict[str, Any]:
        """Start an experiment over some of the prompt's versions, ending the prompt's previous one.

        ``experiment_id`` is for a reproducible demo (assignment hashes it); the HTTP API always makes a new one.

        Example:
            ```python
            variants = [VariantSpec(version=1, weight=1.0), VariantSpec(version=2, weight=1.0)]
            experiment = store.create_experiment("default", prompt_id, variants, name="shorter greeting")
            ```
        """
        stored = _rules.check_variants(variants, experiment_id)
        with self._lock, self._transaction():
            _rules.check_versions(variants, _prompts.latest_version(self._db, project_id, prompt_id))
            now = time.time()
            _experiments.end_live_experiment(self._db, prompt_id, now)
            experiment_id = experiment_id or str(uuid.uuid4())
            _experiments.insert_experiment(
                self._db, project_id, experiment_id, prompt_id, name, stored, is_default=False, now=now
            )
            return _experiments.experiment(self._db, project_id, experiment_id)

    def end_experiment(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        """End an experiment; idempotent (ending an ended one answers it unchanged). A prompt always has one live
        experiment, so ending the live one starts a new default experiment serving the prompt's latest version:
        new runs go there, and events for the ended experiment's runs are still accepted.

        Example:
            ```python
            ended = store.end_experiment("default", experiment_id)  # ended["active"] is False
            ```
        """
        with self._lock, self._transaction():
            prompt_id = _experiments.experiment(self._db, project_id, experiment_id)["prompt_id"]  # 404 if unknown
            now = time.time()
            if _experiments.end_experiment(self._db, experiment_id, now):
                _experiments.start_default_experiment(self._db, project_id, prompt_id, now)
            return _experiments.experiment(self._db, project_id, experiment_id)

    def get_experiment(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        """An experiment of the project: its prompt, variants, and whether it is still live.

        Example:
            ```python
            live = store.get_experiment("default", experiment_id)["active"]
            ```
        """
        with self._lock:
            return _experiments.experiment(self._db, project_id, experiment_id)

    def list_experiments(self, project_id: str, prompt_id: str | None = None) -> list[dict[str, Any]]:
        """Every experiment of the project (of one prompt, if given), oldest first.

        Example:
            ```python
            experiments = store.list_experiments("default", prompt_id)
            ```
        """
        with self._lock:
            ids = _experiments.experiment_ids(self._db, project_id, prompt_id)
            return [_experiments.experiment(self._db, project_id, experiment_id) for experiment_id in ids]

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
        """Run a prompt in its live experiment. With ``idempotency`` (scope, key, hash) the answer is stored in the
        same transaction as the run, so a retry replays it and never runs the model twice; a concurrent request with
        the same key (in the same project) waits for the first one's answer. The model is called holding no lock.
        Returns the status and the encoded response body.

        Example:
            ```python
            status, body = store.create_run(
                "default", prompt_id, {"name": "Ada"}, "ada", idempotency=None, encode=json_encode
            )
            ```
        """
        if idempotency is None:
            return self._run_once(project_id, prompt_id, inputs, external_user_id, None, encode)
        claim = (project_id, *idempotency[:2])
        deadline = time.monotonic() + _rules.IN_FLIGHT_WAIT
        while True:
            with self._lock:
                answered = replay(self._db, project_id, idempotency)
                if answered is not None:
                    return answered
                running = self._in_flight.get(claim)
                if running is None:
                    mine = self._in_flight[claim] = threading.Event()
                    break
            if not running.wait(max(0.0, deadline - time.monotonic())):
                raise StoreError(409, "request_in_progress", "a request with this Idempotency-Key is still running")
        try:
            return self._run_once(project_id, prompt_id, inputs, external_user_id, idempotency, encode)
        finally:
            with self._lock:
                del self._in_flight[claim]
            mine.set()

    def _run_once(
        self,
        project_id: str,
        prompt_id: str,
        inputs: dict[str, Any],
        external_user_id: str | None,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> tuple[int, bytes]:
        with self._lock:
            _prompts.require_prompt(self._db, project_id, prompt_id)
            experiment = _experiments.live_experiment(self._db, prompt_id)
            chosen = _rules.choose_variant(experiment["id"], experiment["variants"], external_user_id, self._random)
            version = (
                chosen.version
                if chosen.version is not None
                else _prompts.latest_version(self._db, project_id, prompt_id)
            )
            template = _prompts.template_of(self._db, prompt_id, version)
            names = (prompt_id, _runs.prompt_name(self._db, prompt_id)) if self.prices.prompts else (prompt_id,)
        _rules.check_inputs(template, inputs)
        completion = call_model(self.provider, template, inputs)  # no lock held: a slow model delays only this run
        output = _rules.check_output(completion.output)
        answer = {
            **_rules.run_answer(str(uuid.uuid4()), experiment["id"], prompt_id, version, output),
            **run_metrics(completion, self.prices, names),
        }
        response: bytes = encode(answer)
        with self._lock, self._transaction():
            _runs.insert_run(self._db, project_id, answer, external_user_id)
            if idempotency is not None:
                remember(self._db, project_id, idempotency, response)
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
        """The live experiment's variant for this user, recorded as a run without output (_assignments.py); a
        retry with the same Idempotency-Key replays the first answer. Returns the status and the encoded body.

        Example:
            ```python
            status, body = store.assign("default", prompt_id, "ada", idempotency=None, encode=json_encode)
            ```
        """
        with self._lock, self._transaction():
            answered = replay(self._db, project_id, idempotency)
            if answered is not None:
                return answered
            assigned = _assignments.assign(self._db, self._random, project_id, prompt_id, external_user_id)
            response: bytes = encode(assigned)
            if idempotency is not None:
                remember(self._db, project_id, idempotency, response)
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
        """Store the new events of a batch whose events were decoded and checked one by one by the caller (one bad
        event never rejects its neighbours; ``rejected`` lists those it refused), count the ones the project stored
        already (dedup by event_id, per project), keep the rejections' reasons, and record the answer under the
        batch's Idempotency-Key, all in one transaction. An event of another project's run is rejected as an unknown
        run. Returns the encoded response body.

        Example:
            ```python
            body = store.ingest_events(
                "default", len(events), list(enumerate(events)), [], idempotency=None, encode=json_encode
            )
            ```
        """
        rejected = list(rejected)
        with self._lock:
            answered = replay(self._db, project_id, idempotency)
            if answered is not None:
                assert idempotency is not None
                _events.log_batch(self._db, project_id, idempotency[1], total, 0, 0, 0, replayed=True)
                return answered[1]
            runs = _runs.run_experiments(self._db, project_id, {event.prompt_run_id for _, event in decoded})
            stored = _events.existing_events(self._db, project_id, {event.event_id for _, event in decoded})
            fresh, duplicates = _rules.sort_events(decoded, runs, stored, rejected)
            result = BatchResult(accepted=len(fresh), duplicates=duplicates, rejected=rejected)
            response: bytes = encode(result)
            now = time.time()
            key = idempotency[1] if idempotency else None
            with self._transaction():
                _events.insert_events(self._db, project_id, fresh, now)
                if idempotency is not None:
                    remember(self._db, project_id, idempotency, response)
                _events.log_batch(self._db, project_id, key, total, len(fresh), duplicates, len(rejected))
                _projects.keep_rejections(self._db, project_id, rejected, key, now)
            return response

    # -- reading, for results, the CLI and tests ------------------------------------------------------------------

    def experiment_results(
        self, project_id: str, experiment_id: str, *, guardrails: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """Per-variant results with intervals, lifts against the control and p-values (docs/experiments.md).

        Example:
            ```python
            results = store.experiment_results("default", experiment_id)
            print(results["control"], [variant["conversion"]["per_user"]["rate"] for variant in results["variants"]])
            ```
        """
        with self._lock:
            experiment = _experiments.experiment(self._db, project_id, experiment_id)
            aggregates = read_aggregates(SQLITE, self._fetch, project_id, experiment_id)
        return results_from_aggregates(experiment, aggregates, GUARDRAIL_METRICS if guardrails is None else guardrails)

    def experiment_timeseries(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        """Per UTC day and variant: runs, users, conversions and the cumulative conversion rate per user with its
        always-valid interval (docs/protocol.md, "Time series").

        Example:
            ```python
            for row in store.experiment_timeseries("default", experiment_id)["days"]:
                print(row["date"], row["variant"], row["conversion_rate"])
            ```
        """
        with self._lock:
            experiment = _experiments.experiment(self._db, project_id, experiment_id)  # 404 in another project
            days = read_timeseries(SQLITE, self._fetch, project_id, experiment_id)
        return timeseries(experiment, days)

    def _fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return self._db.execute(sql, tuple(args)).fetchall()

    def event_ids(self, project_id: str | None = None) -> list[str]:
        """Every stored event's id (of one project, if given), sorted: what tests compare with the ids ``track_*``
        returned.

        Example:
            ```python
            assert sorted(tracked_ids) == store.event_ids()
            ```
        """
        with self._lock:
            return _events.event_ids(self._db, project_id)

    def count(self, table: str, where: str = "", args: Iterable[Any] = ()) -> int:
        """Rows of one of the store's tables (all projects'), optionally filtered by a ``WHERE`` clause with ``?``
        arguments.

        Example:
            ```python
            clicks = store.count("events", "WHERE type = ?", ["click"])
            ```
        """
        if table not in _TABLES:
            raise ValueError(table)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {table} {where}", tuple(args)).fetchone()[0])

    def batch_log(self) -> list[dict[str, Any]]:
        """Every event batch the server answered (for every project), in order (for tests of retries and
        idempotency).

        Example:
            ```python
            keys = [entry["idempotency_key"] for entry in store.batch_log()]
            ```
        """
        with self._lock:
            return _events.batch_log(self._db)


_TABLES = ("events", "runs", "batch_log", "prompts", "experiments", "idempotency", "projects", "api_keys", "rejections")
