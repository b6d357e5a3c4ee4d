"""The reference server speaks protocol v1 (docs/protocol.md): tested with plain httpx over loopback."""

from __future__ import annotations

import gzip
import json
import math
import uuid
from collections import Counter
from typing import Any

import httpx
import msgspec
import pytest

from promptstream.server import assign_bucket

from .helpers import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def http(server: Any) -> httpx.Client:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        yield client


def event(run: dict[str, Any], **fields: Any) -> dict[str, Any]:
    base = {
        "event_id": str(uuid.uuid4()),
        "type": "click",
        "prompt_run_id": run["run_id"],
        "experiment_id": run["experiment_id"],
        "timestamp": "2026-11-27T10:00:00.000Z",
        "label": "cta",
    }
    base.update(fields)
    return base


def batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"sent_at": "2026-11-27T10:00:01.000Z", "events": events}


def new_run(http: httpx.Client, prompt_id: str, user: str | None = None) -> dict[str, Any]:
    response = http.post(f"/v1/prompts/{prompt_id}/runs", json={"inputs": {"name": "Ada"}, "external_user_id": user})
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_error(response: httpx.Response, status: int, error_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    if error_type is not None:
        assert body["error"]["type"] == error_type
    assert response.headers["x-request-id"]


def test_every_response_has_a_request_id_and_errors_use_the_envelope(server: Any, http: httpx.Client) -> None:
    assert http.get("/v1/prompts").headers["x-request-id"]
    assert_error(http.get("/v1/nowhere"), 404, "not_found")
    assert_error(http.delete("/v1/prompts"), 405, "method_not_allowed")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}])
def test_missing_or_wrong_key_is_401(server: Any, headers: dict[str, str]) -> None:
    response = httpx.post(f"{server.url}/v1/prompts", json={"name": "x", "template": "y"}, headers=headers)
    assert_error(response, 401, "authentication_error")
    assert API_KEY not in response.text


def test_prompt_lifecycle_versions_and_default_experiment(http: httpx.Client) -> None:
    created = http.post("/v1/prompts", json={"name": "greeting", "template": "Hi {{name}}"})
    assert created.status_code == 201
    prompt = created.json()
    assert prompt["latest_version"] == 1 and prompt["name"] == "greeting"
    version = http.post(f"/v1/prompts/{prompt['prompt_id']}/versions", json={"template": "Hello {{ name }}!"})
    assert version.status_code == 201 and version.json()["version"] == 2
    # the default experiment serves the latest version
    run = new_run(http, prompt["prompt_id"])
    assert run["variant_assigned"] == "v2" and run["output"] == "Hello Ada!"
    shown = http.get(f"/v1/prompts/{prompt['prompt_id']}").json()
    assert [v["version"] for v in shown["versions"]] == [1, 2]


def test_unknown_prompt_is_404_prompt_not_found(http: httpx.Client) -> None:
    assert_error(http.post("/v1/prompts/nope/runs", json={"inputs": {}}), 404, "prompt_not_found")


def test_missing_template_input_is_422_naming_it(server: Any, http: httpx.Client) -> None:
    prompt = server.create_prompt("Dear {{name}}, about {{topic}}")
    response = http.post(f"/v1/prompts/{prompt['prompt_id']}/runs", json={"inputs": {"name": "Ada"}})
    assert_error(response, 422, "missing_input")
    assert "topic" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b'{"inputs": "nope"}', 422), (b'{"inputs": {}, "external_user_id": 5}', 422)],
)
def test_malformed_run_bodies_are_refused(server: Any, http: httpx.Client, body: bytes, status: int) -> None:
    prompt = server.create_prompt()
    response = http.post(
        f"/v1/prompts/{prompt['prompt_id']}/runs", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, status)


def test_same_idempotency_key_returns_the_same_run_without_running_again(server: Any, http: httpx.Client) -> None:
    prompt = server.create_prompt()
    path = f"/v1/prompts/{prompt['prompt_id']}/runs"
    body = {"inputs": {"name": "Ada"}, "external_user_id": "u1"}
    first = http.post(path, json=body, headers={"Idempotency-Key": "k-1"}).json()
    calls = server.store.provider.calls
    second = http.post(path, json=body, headers={"Idempotency-Key": "k-1"}).json()
    assert second == first
    assert server.store.provider.calls == calls  # the model was not called again
    assert server.store.count("runs") == 1
    other = http.post(path, json={"inputs": {"name": "Bob"}}, headers={"Idempotency-Key": "k-1"})
    assert_error(other, 422, "idempotency_key_reused")


def test_assignment_is_sticky_per_user(server: Any, http: httpx.Client) -> None:
    prompt = server.create_prompt()
    http.post(f"/v1/prompts/{prompt['prompt_id']}/versions", json={"template": "Yo {{name}}"})
    experiment = http.post(
        "/v1/experiments",
        json={"prompt_id": prompt["prompt_id"], "variants": [{"version": 1, "weight": 1}, {"version": 2, "weight": 1}]},
    ).json()
    for user in ("alice", "bob", "carol", "dave"):
        variants = {new_run(http, prompt["prompt_id"], user)["variant_assigned"] for _ in range(5)}
        assert len(variants) == 1
        expected = "v1" if assign_bucket(experiment["experiment_id"], user) < 0.5 else "v2"
        assert variants == {expected}


def test_weighted_assignment_without_user_follows_weights(server: Any, http: httpx.Client) -> None:
    prompt = server.create_prompt()
    http.post(f"/v1/prompts/{prompt['prompt_id']}/versions", json={"template": "Yo {{name}}"})
    http.post(
        "/v1/experiments",
        json={"prompt_id": prompt["prompt_id"], "variants": [{"version": 1, "weight": 1}, {"version": 2, "weight": 3}]},
    )
    n = 800
    counts = Counter(new_run(http, prompt["prompt_id"])["variant_assigned"] for _ in range(n))
    # share of v2 should be 0.75; 5 standard deviations keeps this test from flaking (p < 1e-6)
    sd = math.sqrt(0.75 * 0.25 / n)
    assert abs(counts["v2"] / n - 0.75) < 5 * sd


def test_new_experiment_ends_the_previous_one(server: Any, http: httpx.Client) -> None:
    prompt = server.create_prompt()
    before = new_run(http, prompt["prompt_id"])
    experiment = http.post(
        "/v1/experiments", json={"prompt_id": prompt["prompt_id"], "variants": [{"version": 1, "weight": 1}]}
    )
    assert experiment.status_code == 201
    after = new_run(http, prompt["prompt_id"])
    assert after["experiment_id"] == experiment.json()["experiment_id"] != before["experiment_id"]
    old = http.get(f"/v1/experiments/{before['experiment_id']}").json()
    assert old["active"] is False


def test_experiment_with_unknown_version_is_422(server: Any, http: httpx.Client) -> None:
    prompt = server.create_prompt()
    response = http.post("/v1/experiments", json={"prompt_id": prompt["prompt_id"], "variants": [{"version": 9}]})
    assert_error(response, 422)


def test_batch_stores_events_and_deduplicates_by_event_id(server: Any, http: httpx.Client) -> None:
    run = new_run(http, server.create_prompt()["prompt_id"])
    events = [event(run) for _ in range(5)]
    first = http.post("/v1/events/batch", json=batch(events), headers={"Idempotency-Key": "b-1"}).json()
    assert first == {"accepted": 5, "duplicates": 0, "rejected": []}
    # the same events re-formed into another batch (another key) are counted once
    again = http.post("/v1/events/batch", json=batch([*events[:3], event(run)]), headers={"Idempotency-Key": "b-2"})
    assert again.json() == {"accepted": 1, "duplicates": 3, "rejected": []}
    assert server.store.count("events") == 6


def test_a_retried_batch_replays_its_answer_and_a_reused_key_with_other_events_is_422(
    server: Any, http: httpx.Client
) -> None:
    run = new_run(http, server.create_prompt()["prompt_id"])
    body = batch([event(run)])
    first = http.post("/v1/events/batch", json=body, headers={"Idempotency-Key": "b-1"}).json()
    assert http.post("/v1/events/batch", json=body, headers={"Idempotency-Key": "b-1"}).json() == first
    other = http.post("/v1/events/batch", json=batch([event(run)]), headers={"Idempotency-Key": "b-1"})
    assert_error(other, 422, "idempotency_key_reused")
    assert server.store.count("events") == 1


def test_one_bad_event_never_rejects_its_neighbours(server: Any, http: httpx.Client) -> None:
    run = new_run(http, server.create_prompt()["prompt_id"])
    other = new_run(http, server.create_prompt(name="other")["prompt_id"])
    events = [
        event(run),
        event(run, prompt_run_id="no-such-run"),
        event(run, experiment_id=other["experiment_id"]),
        event(run, type="rating", label=None, rating="five"),
        event(run, type="feedback", label=None),
        event(run, timestamp="yesterday"),
        event(run, type="unknown"),
        event(run, type="rating", label=None, rating=4.5),
    ]
    result = http.post("/v1/events/batch", json=batch(events)).json()
    assert result["accepted"] == 2
    assert [r["index"] for r in result["rejected"]] == [1, 2, 3, 4, 5, 6]
    assert all(r["event_id"] == events[r["index"]]["event_id"] for r in result["rejected"])
    assert server.store.count("events") == 2


def test_msgpack_and_gzip_bodies_are_accepted(server: Any, http: httpx.Client) -> None:
    run = new_run(http, server.create_prompt()["prompt_id"])
    body = msgspec.msgpack.encode(batch([event(run, metadata={"k": [1, 2]}), event(run)]))
    response = http.post(
        "/v1/events/batch",
        content=gzip.compress(body),
        headers={"Content-Type": "application/msgpack", "Content-Encoding": "gzip"},
    )
    assert response.json()["accepted"] == 2


def test_non_finite_numbers_in_msgpack_are_rejected_per_event(server: Any, http: httpx.Client) -> None:
    run = new_run(http, server.create_prompt()["prompt_id"])
    events = [event(run, type="rating", label=None, rating=float("nan")), event(run)]
    response = http.post(
        "/v1/events/batch",
        content=msgspec.msgpack.encode(batch(events)),
        headers={"Content-Type": "application/msgpack"},
    )
    result = response.json()
    assert result["accepted"] == 1 and result["rejected"][0]["index"] == 0


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{", {}, 400),
        (b'{"sent_at": "x", "events": 5}', {}, 422),
        (b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, 400),
        (b"{}", {"Content-Encoding": "br"}, 415),
        (b"{}", {"Content-Type": "text/plain"}, 415),
    ],
)
def test_malformed_batches_get_a_4xx_envelope(
    http: httpx.Client, content: bytes, headers: dict[str, str], status: int
) -> None:
    assert_error(http.post("/v1/events/batch", content=content, headers=headers), status)


def test_oversized_bodies_are_413_also_after_decompression(server_factory: Any) -> None:
    server = server_factory(max_body_bytes=10_000)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        assert_error(http.post("/v1/events/batch", content=b"x" * 20_000), 413, "payload_too_large")
        bomb = gzip.compress(json.dumps(batch([{"pad": "a" * 50_000}])).encode())
        assert len(bomb) < 10_000
        assert_error(
            http.post("/v1/events/batch", content=bomb, headers={"Content-Encoding": "gzip"}), 413, "payload_too_large"
        )


def test_rate_limit_answers_429_with_retry_after(server_factory: Any) -> None:
    server = server_factory(rate_limit=2)
    with httpx.Client(base_url=server.url, headers=AUTH) as http:
        statuses = [http.get("/v1/prompts") for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert_error(limited[0], 429, "rate_limited")


def test_results_count_runs_and_events_per_variant(server: Any, http: httpx.Client) -> None:
    prompt = server.create_prompt()
    run = new_run(http, prompt["prompt_id"], "u1")
    http.post("/v1/events/batch", json=batch([event(run), event(run, type="conversion")]))
    results = http.get(f"/v1/experiments/{run['experiment_id']}/results").json()
    (variant,) = results["variants"]
    assert (variant["variant"], variant["runs"], variant["users"]) == ("v1", 1, 1)
    assert variant["events"] == {"click": 1, "conversion": 1}
    assert variant["conversion"]["per_user"]["successes"] == 1 and variant["conversion"]["per_user"]["p_value"] is None
    assert results["control"] == "v1" and not results["sufficient_sample"]  # the default experiment, one run
    assert_error(http.get("/v1/experiments/nope/results"), 404, "experiment_not_found")
