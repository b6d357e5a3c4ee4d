"""Whatever an old database holds (ratings of 1e308, ±inf, NaN, text in a REAL column, thumbs_up of 7, weights of
1e308 or 10**400), ``GET /v1/experiments/{id}/results`` answers 200 with finite figures, leaves out what is beyond
the wire limits and says so in ``data_quality``. The rows are written straight into a real server's database file
with a second SQLite connection, as an old version or another tool would have left them."""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import ExperimentResults

from .helpers import API_KEY

VALUE_LIMIT = 1e9
_ids = itertools.count()

stored_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 1e9, -1e9, 1e9 + 1, 5e-324, 0.0]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=4),
    st.sampled_from(["1e400", "-1e400", "NaN", "3.5", "x"]),
    st.none(),
)
stored_weights = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, 1.7976931348623157e308, 0.0, -1.0, 5e-324]),
    st.integers(min_value=-(2**70), max_value=10**400),
    st.just("heavy"),
)


def _usable(value: Any) -> bool:
    """What the documented rule keeps: a number, not bool, finite, within ±1e9."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) <= VALUE_LIMIT and math.isfinite(float(value))


@pytest.mark.sqlite_only  # stores values of the wrong type, which only SQLite's dynamic typing accepts
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    weights=st.lists(stored_weights, min_size=2, max_size=3),
    ratings=st.lists(stored_numbers, min_size=0, max_size=25),
    engagement=st.lists(stored_numbers, min_size=0, max_size=25),
    thumbs=st.lists(st.one_of(st.integers(-(2**62), 2**62), st.text(max_size=3), st.none()), max_size=10),
)
def test_results_answer_for_any_stored_values_and_say_what_they_left_out(
    server: Any, weights: list[Any], ratings: list[Any], engagement: list[Any], thumbs: list[Any]
) -> None:
    prompt = server.create_prompt()
    experiment_id = f"old-{next(_ids)}"
    variants = [{"version": 1, "weight": weight} for weight in weights]
    db = sqlite3.connect(server.store.path, timeout=10)
    try:
        with db:
            db.execute(
                "INSERT INTO experiments (id, prompt_id, name, variants, is_default, created_at, ended_at)"
                " VALUES (?, ?, NULL, ?, 0, 0, NULL)",
                (experiment_id, prompt["prompt_id"], json.dumps(variants)),  # floats beyond JSON as Infinity/NaN
            )
            kinds = [("rating", value) for value in ratings] + [("engagement", value) for value in engagement]
            kinds += [("feedback", value) for value in thumbs]
            for number, (kind, value) in enumerate(kinds):
                run_id = f"{experiment_id}-run-{number}"
                variant = "v1" if number % 2 else "v2"
                db.execute(
                    "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output,"
                    " created_at)"
                    " VALUES (?, ?, ?, 1, ?, ?, '', 0)",
                    (run_id, prompt["prompt_id"], experiment_id, variant, f"user-{number}"),
                )
                db.execute(
                    "INSERT INTO events (event_id, type, prompt_run_id, experiment_id, timestamp, thumbs_up, rating,"
                    " engagement_score, received_at) VALUES (?, ?, ?, ?, '2024-01-01T00:00:00Z', ?, ?, ?, 0)",
                    (
                        f"{run_id}-event",
                        kind,
                        run_id,
                        experiment_id,
                        value if kind == "feedback" else None,
                        value if kind == "rating" else None,
                        value if kind == "engagement" else None,
                    ),
                )
        # what SQLite really holds (NaN became NULL, numeric text became a REAL): the expectation is built from it
        stored = {
            column: [
                row[0]
                for row in db.execute(
                    f"SELECT {column} FROM events WHERE experiment_id = ? AND type = ? AND {column} IS NOT NULL",
                    (experiment_id, kind),
                )
            ]
            for column, kind in (("rating", "rating"), ("engagement_score", "engagement"), ("thumbs_up", "feedback"))
        }
    finally:
        db.close()

    response = httpx.get(
        f"{server.url}/v1/experiments/{experiment_id}/results",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert b"NaN" not in response.content and b"Infinity" not in response.content
    results = msgspec.json.decode(response.content, type=ExperimentResults)
    assert results.decision is not None and results.data_quality is not None

    usable_ratings = [float(v) for v in stored["rating"] if _usable(v)]
    usable_engagement = [float(v) for v in stored["engagement_score"] if _usable(v)]
    valid_thumbs = [v for v in stored["thumbs_up"] if v in (0, 1) and not isinstance(v, str)]
    excluded = results.data_quality.excluded
    assert excluded.get("rating", 0) == len(stored["rating"]) - len(usable_ratings)
    assert excluded.get("engagement_score", 0) == len(stored["engagement_score"]) - len(usable_engagement)
    assert excluded.get("thumbs_up", 0) == len(stored["thumbs_up"]) - len(valid_thumbs)
    if excluded:
        assert any(w.startswith("left out") for w in results.warnings)
    assert sum(v.rating.n for v in results.variants) == len(usable_ratings)
    assert sum(v.engagement.n for v in results.variants) == len(usable_engagement)
    assert sum(v.thumbs_up.trials for v in results.variants) == len(valid_thumbs)
    for variant in results.variants:
        for mean in (variant.rating, variant.engagement):
            for figure in (mean.mean, mean.ci_low, mean.ci_high, mean.lift, mean.p_value):
                assert figure is None or math.isfinite(figure)
            if mean.mean is not None:
                assert abs(mean.mean) <= VALUE_LIMIT
        for estimate in (variant.rating.always_valid, variant.engagement.fixed_horizon):
            if estimate is not None:
                assert estimate.p_value is None or 0.0 <= estimate.p_value <= 1.0


def test_two_ratings_of_1e308_no_longer_break_the_results_for_good(server: Any) -> None:
    """The case issue 13 found: two ratings of 1e308 (and an engagement spread of ±1e308) made every later read a
    500 because math.fsum overflowed."""
    prompt = server.create_prompt()
    db = server.database()
    with db:
        db.execute(
            "INSERT INTO experiments (id, prompt_id, name, variants, is_default, created_at, ended_at)"
            " VALUES ('e308', ?, NULL, ?, 0, 0, NULL)",
            (prompt["prompt_id"], json.dumps([{"version": 1, "weight": 1e308}, {"version": 1, "weight": 1e308}])),
        )
        rows = [("rating", 1e308, None), ("rating", 1e308, None), ("engagement", None, 1e308)]
        rows += [("engagement", None, -1e308), ("rating", 4.0, None), ("rating", 2.0, None)]
        for number, (kind, rating, score) in enumerate(rows):
            db.execute(
                "INSERT INTO runs (id, prompt_id, experiment_id, version, variant, external_user_id, output,"
                " created_at)"
                " VALUES (?, ?, 'e308', 1, 'v1', NULL, '', 0)",
                (f"r{number}", prompt["prompt_id"]),
            )
            db.execute(
                "INSERT INTO events (event_id, type, prompt_run_id, experiment_id, timestamp, rating, engagement_score,"
                " received_at) VALUES (?, ?, ?, 'e308', '2024-01-01T00:00:00Z', ?, ?, 0)",
                (f"ev{number}", kind, f"r{number}", rating, score),
            )
    db.close()
    response = httpx.get(
        f"{server.url}/v1/experiments/e308/results", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    results = msgspec.json.decode(response.content, type=ExperimentResults)
    assert results.data_quality is not None
    assert results.data_quality.excluded == {"engagement_score": 2, "rating": 2}
    assert results.variant("v1").rating.mean == 3.0 and results.variant("v1").rating.n == 2


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3))
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["version", "weight", "x"]), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    variants=json_like,
    runs=st.lists(st.tuples(st.sampled_from(["r1", "r2", "r3"]), st.sampled_from(["v1", "v2", "v9"]), st.none())),
    events=st.lists(
        st.tuples(
            st.sampled_from(["r1", "r2", "r3", "r4"]),
            st.sampled_from(["click", "conversion", "feedback", "rating", "engagement", "other"]),
            scalars,
            scalars,
            scalars,
            st.one_of(st.text(max_size=3), st.none()),
            st.one_of(st.text(max_size=3), st.none()),
        )
    ),
)
def test_the_computation_never_raises_and_never_answers_a_non_finite_figure(
    variants: Any, runs: list[Any], events: list[Any]
) -> None:
    """The computation itself, on any Python values a row or a variants column could decode to."""
    from promptstream.server._results import compute_results

    answer = compute_results({"experiment_id": "e", "prompt_id": "p", "variants": variants}, runs, events)
    encoded = msgspec.json.encode(answer)
    assert b"NaN" not in encoded and b"Infinity" not in encoded
    msgspec.json.decode(encoded, type=ExperimentResults)
