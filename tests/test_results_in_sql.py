"""Results computed by the database (issue 17): on both backends, ``experiment_results`` aggregates in SQL, and for
any stored runs and events (generated, including values the results must leave out) it answers what the in-memory
computation answers from the very same rows; the queries use the indexes docs/experiments.md shows."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream.server._results import compute_results

from .conftest import RunningServer

_ids = itertools.count()

numbers = st.one_of(
    st.none(),
    st.floats(min_value=0.0, max_value=5.0),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e9 - 1, 2e9]),
)
metric = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e5), st.sampled_from([-1.0, math.inf, 5e9]))
tokens = st.one_of(st.none(), st.integers(min_value=0, max_value=100_000), st.sampled_from([-5, 2**40]))
run_rows = st.lists(
    st.tuples(
        st.sampled_from(["v1", "v2", "v3"]),
        st.sampled_from([None, "u0", "u1", "u2", "u3"]),
        metric,
        tokens,
        tokens,
        metric,
    ),
    min_size=1,
    max_size=40,
)
event_rows = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=39),
        st.sampled_from(["click", "conversion", "feedback", "rating", "engagement", "other"]),
        st.sampled_from([None, 0, 1, 2, -1]),
        numbers,
        numbers,
        st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5Z", "2024-01-02T10:00:00Z"]),
    ),
    max_size=80,
)


def _close(ours: Any, theirs: Any, path: str = "") -> None:
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), path
        for key in ours:
            _close(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(ours, list):
        assert len(ours) == len(theirs), path
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _close(a, b, f"{path}[{index}]")
    elif isinstance(ours, float) and isinstance(theirs, float):
        assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-9), path
    else:
        assert ours == theirs, path


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=run_rows, events=event_rows)
def test_sql_aggregates_answer_what_the_rows_say(storage_factory: Any, runs: list[Any], events: list[Any]) -> None:
    store = _store(storage_factory)
    prompt_id = _prompt(store)
    experiment_id = f"exp-{next(_ids)}"
    db = RunningServer(store, None).database()  # type: ignore[arg-type]
    variants = [{"version": 1, "weight": 1.0}, {"version": 2, "weight": 1.0}]
    with db:
        db.execute(
            "INSERT INTO experiments (id, prompt_id, name, variants, is_default, created_at, ended_at)"
            " VALUES (?, ?, NULL, ?, 0, 0, 1)",
            (experiment_id, prompt_id, json.dumps(variants)),
        )
        for number, (variant, user, latency, input_tokens, output_tokens, cost) in enumerate(runs):
            db.execute(
                "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output,"
                " created_at, latency_ms, input_tokens, output_tokens, cost_usd)"
                " VALUES (?, ?, ?, 1, ?, ?, '', ?, ?, ?, ?, ?)",
                (f"{experiment_id}-r{number}", prompt_id, experiment_id, variant, user, 1.7e9, latency, input_tokens,
                 output_tokens, cost),
            )  # fmt: skip
        for number, (run, kind, thumbs, rating, engagement, timestamp) in enumerate(events):
            db.execute(
                "INSERT INTO events (event_id, type, prompt_run_id, experiment_id, timestamp, thumbs_up, rating,"
                " engagement_score, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (f"{experiment_id}-e{number}", kind, f"{experiment_id}-r{run}", experiment_id, timestamp, thumbs,
                 rating, engagement),
            )  # fmt: skip
        stored_runs = db.execute(
            "SELECT id, variant, external_user_id, latency_ms, input_tokens, output_tokens, cost_usd FROM runs"
            " WHERE experiment_id = ?",
            (experiment_id,),
        ).fetchall()
        stored_events = db.execute(
            "SELECT prompt_run_id, type, thumbs_up, rating, engagement_score, timestamp, event_id FROM events"
            " WHERE experiment_id = ?",
            (experiment_id,),
        ).fetchall()
    db.close()
    in_sql = store.experiment_results("default", experiment_id)
    in_memory = compute_results(store.get_experiment("default", experiment_id), stored_runs, stored_events)
    _close(in_sql, in_memory)


_stores: dict[int, Any] = {}


def _store(storage_factory: Any) -> Any:
    """One store per test (hypothesis calls the test many times with the same fixture)."""
    key = id(storage_factory)
    if key not in _stores:
        _stores.clear()
        _stores[key] = storage_factory()
    return _stores[key]


def _prompt(store: Any) -> str:
    prompts = store.list_prompts("default")
    return str(prompts[0]["prompt_id"] if prompts else store.create_prompt("default", "p", "Hello")["prompt_id"])


@pytest.mark.sqlite_only  # SQLite's EXPLAIN QUERY PLAN; PostgreSQL's plans are in docs/experiments.md
def test_the_results_queries_read_the_indexes_not_whole_tables(storage_factory: Any) -> None:
    from promptstream.server import _results_sql as sql

    store = storage_factory()
    plans = []
    for query, args in (
        (sql.SQLITE.sql(sql._VARIANTS), ["p", "e"] * 3),
        (sql.SQLITE.sql(sql._EVENTS), ["p", "e", "e"]),
        (sql.SQLITE.sql(sql._LATENCY).replace("{positions}", "1, 2"), ["p", "e"]),
    ):
        plans += [row[3] for row in store._db.execute("EXPLAIN QUERY PLAN " + query, args)]
    assert any(step.startswith("SEARCH events USING INDEX") and "(experiment_id=?" in step for step in plans)
    assert any(
        step.startswith("SEARCH runs USING") and "INDEX runs_by_latency (experiment_id=?" in step for step in plans
    )
    assert not [step for step in plans if step.startswith("SCAN") and ("events" in step or "runs" in step)]
