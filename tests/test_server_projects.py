"""Projects and API keys (issue 16 §1), on both storage backends, over real HTTP: a key sees only its project's
prompts, experiments, runs and events; another project's are a 404 on every endpoint, exactly as ones that do not
exist; event dedup and Idempotency-Keys are per project; keys are shown once, kept only as a hash, and a revoked key
gets 401 at the next request, on every server instance sharing the database."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream.server import ServerThread, StoreError, create_app
from promptstream.server._keys import KEY_PREFIX, LAST_USED_RESOLUTION, secret_hash
from promptstream.server._storage import Storage

from .conftest import RunningServer
from .helpers import API_KEY

NAMES = st.text(st.characters(max_codepoint=0x2FFF, exclude_categories=("Cs",)), min_size=1, max_size=300)


def valid_name(name: str) -> bool:
    return bool(name.strip()) and len(name) <= 256 and not any(unicodedata.category(c) == "Cc" for c in name)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Owned:
    """A project's data made through the API with its key: a prompt with two versions, an experiment over them, a
    run and a stored event."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        prompt = self.post("/v1/prompts", {"name": f"p-{uuid.uuid4()}", "template": "Hi {{name}}"}).json()
        self.prompt_id = prompt["prompt_id"]
        self.post(f"/v1/prompts/{self.prompt_id}/versions", {"template": "Yo {{name}}"})
        variants = [{"version": 1, "weight": 1.0}, {"version": 2, "weight": 1.0}]
        experiment = self.post("/v1/experiments", {"prompt_id": self.prompt_id, "variants": variants}).json()
        self.experiment_id = experiment["experiment_id"]
        run = self.post(f"/v1/prompts/{self.prompt_id}/runs", {"inputs": {"name": "x"}, "external_user_id": "u"})
        self.run_id = run.json()["run_id"]
        self.event_id = str(uuid.uuid4())
        stored = self.post(
            "/v1/events/batch", {"sent_at": "2026-12-02T10:00:00Z", "events": [self.event(self.event_id)]}
        ).json()
        assert stored["accepted"] == 1, stored

    def post(self, path: str, body: Any, key: str | None = None, **headers: str) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers={**auth(key or self.key), **headers})

    def event(self, event_id: str) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "type": "click",
            "label": "cta",
            "prompt_run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "timestamp": "2026-12-02T10:00:00Z",
        }


def new_project_key(store: Storage, name: str = "other") -> tuple[str, str]:
    project = store.create_project(f"{name}-{uuid.uuid4()}")["project_id"]
    _, secret = store.create_api_key(project, "test key")
    return project, secret


# Every route of the app, and what a key of another project sends to it: (method, path template) -> request.
CROSS_PROJECT: dict[tuple[str, str], Callable[[Owned], tuple[str, str, Any]]] = {
    ("GET", "/v1/prompts/{prompt_id}"): lambda a: ("GET", f"/v1/prompts/{a.prompt_id}", None),
    ("POST", "/v1/prompts/{prompt_id}/versions"): lambda a: (
        "POST",
        f"/v1/prompts/{a.prompt_id}/versions",
        {"template": "stolen {{name}}"},
    ),
    ("POST", "/v1/prompts/{prompt_id}/runs"): lambda a: (
        "POST",
        f"/v1/prompts/{a.prompt_id}/runs",
        {"inputs": {"name": "x"}},
    ),
    ("POST", "/v1/experiments"): lambda a: (
        "POST",
        "/v1/experiments",
        {"prompt_id": a.prompt_id, "variants": [{"version": 1, "weight": 1.0}]},
    ),
    ("POST", "/v1/assignments"): lambda a: ("POST", "/v1/assignments", {"prompt_id": a.prompt_id}),
    ("GET", "/v1/experiments/{experiment_id}"): lambda a: ("GET", f"/v1/experiments/{a.experiment_id}", None),
    ("POST", "/v1/experiments/{experiment_id}/end"): lambda a: ("POST", f"/v1/experiments/{a.experiment_id}/end", None),
    ("GET", "/v1/experiments/{experiment_id}/results"): lambda a: (
        "GET",
        f"/v1/experiments/{a.experiment_id}/results",
        None,
    ),
    ("GET", "/v1/experiments/{experiment_id}/timeseries"): lambda a: (
        "GET",
        f"/v1/experiments/{a.experiment_id}/timeseries",
        None,
    ),
}
# The routes that name no single resource: a key of another project gets its own project's view (checked below).
LISTS_AND_CREATES = {
    ("GET", "/v1/prompts"),
    ("POST", "/v1/prompts"),
    ("GET", "/v1/experiments"),
    ("POST", "/v1/events/batch"),
}


def app_routes() -> set[tuple[str, str]]:
    from promptstream.server import Store

    app: Any = create_app(Store(), [API_KEY])
    while not hasattr(app, "routes"):  # the middlewares (request ids, tracing) around the Starlette app
        app = app.app
    routes = app.routes
    # the API's routes; the dashboard (a Mount under /dashboard, and / redirecting there) keeps each project's data
    # to its session's project: tests/test_dashboard_http.py, test_a_project_sees_only_its_own_data
    api = [route for route in routes if getattr(route, "path", "").startswith("/v1/")]
    return {(method, route.path) for route in api for method in route.methods if method != "HEAD"}


def test_every_route_of_the_app_is_covered_by_the_cross_project_tests() -> None:
    missing = app_routes() - set(CROSS_PROJECT) - LISTS_AND_CREATES
    assert not missing, f"add these routes to CROSS_PROJECT or LISTS_AND_CREATES: {sorted(missing)}"


def _same_as_unknown(response: httpx.Response, unknown: httpx.Response) -> None:
    """A 404 that tells nothing: the same status and error type as for an id that exists nowhere."""
    assert response.status_code == unknown.status_code == 404, (response.status_code, response.text)
    assert response.json()["error"]["type"] == unknown.json()["error"]["type"]


@pytest.mark.parametrize("owner_is_default", [True, False], ids=["default-owns", "new-project-owns"])
def test_a_key_of_another_project_gets_404_on_every_resource_endpoint(
    server: RunningServer, owner_is_default: bool
) -> None:
    project, secret = new_project_key(server.store)
    owner_project, owner_key, intruder_key = (
        ("default", API_KEY, secret) if owner_is_default else (project, secret, API_KEY)
    )
    owned = Owned(server.url, owner_key)
    prompt_before = server.store.get_prompt(owner_project, owned.prompt_id)
    experiments_before = server.store.list_experiments(owner_project)
    runs_before = server.store.count("runs")
    for route, request in CROSS_PROJECT.items():
        method, path, body = request(owned)
        response = httpx.request(method, server.url + path, json=body, headers=auth(intruder_key))
        unknown_path = path.replace(owned.prompt_id, str(uuid.uuid4())).replace(owned.experiment_id, str(uuid.uuid4()))
        unknown = httpx.request(method, server.url + unknown_path, json=body, headers=auth(intruder_key))
        _same_as_unknown(response, unknown)
        assert "template" not in response.text and "variants" not in response.text, route  # nothing of the owner's
    # nothing of the owner's changed: no version added, no experiment started or ended, no run
    assert server.store.get_prompt(owner_project, owned.prompt_id) == prompt_before
    assert server.store.list_experiments(owner_project) == experiments_before
    assert server.store.count("runs") == runs_before
    assert httpx.get(f"{server.url}/v1/experiments/{owned.experiment_id}", headers=auth(owner_key)).status_code == 200


def test_lists_creates_and_events_stay_within_the_callers_project(server: RunningServer) -> None:
    _, secret = new_project_key(server.store)
    owned = Owned(server.url, API_KEY)
    mine = Owned(server.url, secret)
    prompts = httpx.get(f"{server.url}/v1/prompts", headers=auth(secret)).json()["prompts"]
    assert [p["prompt_id"] for p in prompts] == [mine.prompt_id]
    experiments = httpx.get(f"{server.url}/v1/experiments", headers=auth(secret)).json()["experiments"]
    assert {e["prompt_id"] for e in experiments} == {mine.prompt_id}
    filtered = httpx.get(f"{server.url}/v1/experiments", params={"prompt_id": owned.prompt_id}, headers=auth(secret))
    assert filtered.status_code == 200 and filtered.json() == {"experiments": []}
    default_prompts = httpx.get(f"{server.url}/v1/prompts", headers=auth(API_KEY)).json()["prompts"]
    assert mine.prompt_id not in {p["prompt_id"] for p in default_prompts}
    # an event for another project's run is refused as an unknown run, and not stored
    stolen = str(uuid.uuid4())
    answer = mine.post("/v1/events/batch", {"sent_at": "2026-12-02T10:00:00Z", "events": [owned.event(stolen)]}).json()
    assert answer["accepted"] == 0 and answer["rejected"][0]["reason"] == "unknown prompt_run_id"
    assert stolen not in server.store.event_ids()
    # the owner's results count none of the intruder's traffic
    results = httpx.get(f"{server.url}/v1/experiments/{owned.experiment_id}/results", headers=auth(API_KEY)).json()
    assert sum(variant["runs"] for variant in results["variants"]) == 1


def test_event_dedup_and_idempotency_keys_are_per_project(server: RunningServer) -> None:
    project, secret = new_project_key(server.store)
    a, b = Owned(server.url, API_KEY), Owned(server.url, secret)
    shared_event = str(uuid.uuid4())
    first = a.post("/v1/events/batch", {"sent_at": "2026-12-02T10:00:00Z", "events": [a.event(shared_event)]}).json()
    second = b.post("/v1/events/batch", {"sent_at": "2026-12-02T10:00:00Z", "events": [b.event(shared_event)]}).json()
    assert first["accepted"] == 1 and second["accepted"] == 1  # the same id in two projects: two events
    again = b.post("/v1/events/batch", {"sent_at": "2026-12-02T10:00:00Z", "events": [b.event(shared_event)]}).json()
    assert again["accepted"] == 0 and again["duplicates"] == 1  # within a project: deduplicated
    assert shared_event in server.store.event_ids("default") and shared_event in server.store.event_ids(project)
    # the same Idempotency-Key in two projects: two answers, neither a replay nor a "reused key" refusal
    key = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    one = a.post("/v1/events/batch", {"sent_at": "2026-12-02T10:00:00Z", "events": [a.event(str(uuid.uuid4()))]}, **key)
    other = b.post(
        "/v1/events/batch",
        {"sent_at": "2026-12-02T10:00:00Z", "events": [b.event(str(uuid.uuid4())), b.event(str(uuid.uuid4()))]},
        **key,
    )
    assert one.json()["accepted"] == 1 and other.status_code == 200 and other.json()["accepted"] == 2
    run_key = {"Idempotency-Key": f"run-{uuid.uuid4()}"}
    run_a = a.post(f"/v1/prompts/{a.prompt_id}/runs", {"inputs": {"name": "x"}}, **run_key).json()
    run_b = b.post(f"/v1/prompts/{b.prompt_id}/runs", {"inputs": {"name": "x"}}, **run_key).json()
    assert run_a["run_id"] != run_b["run_id"]
    # two keys of one project share its Idempotency-Keys: a retry after a key rotation replays
    _, second_key = server.store.create_api_key(project, "rotated")
    replay = b.post(f"/v1/prompts/{b.prompt_id}/runs", {"inputs": {"name": "x"}}, key=second_key, **run_key).json()
    assert replay["run_id"] == run_b["run_id"]


def test_a_revoked_key_gets_401_at_once_on_every_instance(
    storage_factory: Callable[..., Storage], backend: str
) -> None:
    first = storage_factory()
    second = _same_database(first, backend)
    try:
        project, secret = new_project_key(first)
        with ServerThread(first, [API_KEY]) as one, ServerThread(second, [API_KEY]) as two:
            for url in (one.url, two.url):
                assert httpx.get(f"{url}/v1/prompts", headers=auth(secret)).status_code == 200
            key_id = first.list_api_keys(project)[0]["key_id"]
            revoked = first.revoke_api_key(project, key_id)
            assert revoked["revoked_at"] is not None
            for url in (two.url, one.url):  # the other instance first: no cache hides the revocation
                response = httpx.get(f"{url}/v1/prompts", headers=auth(secret))
                assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
            assert first.revoke_api_key(project, key_id)["revoked_at"] == revoked["revoked_at"]  # idempotent
            # the server's own keys keep working
            assert httpx.get(f"{two.url}/v1/prompts", headers=auth(API_KEY)).status_code == 200
    finally:
        second.close()


def _same_database(store: Storage, backend: str) -> Storage:
    if backend == "postgresql":
        from promptstream.server._pgstore import PgStore

        return PgStore(store.url)  # type: ignore[attr-defined]
    from promptstream.server import Store

    return Store(store.path)  # type: ignore[attr-defined]


def test_keys_are_shown_once_kept_only_as_a_hash_and_recognisable(server: RunningServer) -> None:
    project, secret = new_project_key(server.store)
    record = server.store.list_api_keys(project)[0]
    assert secret.startswith(record["prefix"] + "_") and record["prefix"].startswith(KEY_PREFIX)
    assert set(record) == {"key_id", "project_id", "name", "prefix", "created_at", "last_used_at", "revoked_at"}
    assert record["project_id"] == project and record["last_used_at"] is None and record["revoked_at"] is None
    db = server.database()
    try:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
    finally:
        db.close()
    stored = repr(rows)
    assert secret not in stored and secret[len(record["prefix"]) + 1 :] not in stored
    assert secret_hash(secret) in stored
    assert server.store.project_for_key(secret) == project
    assert server.store.project_for_key(secret + "x") is None and server.store.project_for_key(API_KEY) is None


@pytest.mark.sqlite_only
def test_no_secret_reaches_the_database_files_or_the_logs(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    from pathlib import Path

    caplog.set_level(logging.DEBUG)
    _, secret = new_project_key(server.store)
    for _ in range(3):
        httpx.get(f"{server.url}/v1/prompts", headers=auth(secret))
    server.store.count("prompts")  # let SQLite settle its WAL
    files = [p for p in Path(server.store.path).parent.iterdir() if p.name.startswith(Path(server.store.path).name)]
    assert files and all(secret.encode() not in p.read_bytes() for p in files)
    assert secret not in caplog.text


def test_last_used_at_is_written_at_most_once_a_minute(server: RunningServer) -> None:
    project, secret = new_project_key(server.store)
    for _ in range(5):
        assert httpx.get(f"{server.url}/v1/prompts", headers=auth(secret)).status_code == 200
    used = server.store.list_api_keys(project)[0]["last_used_at"]
    assert used is not None
    for _ in range(5):  # within the minute: no write
        httpx.get(f"{server.url}/v1/prompts", headers=auth(secret))
    assert server.store.list_api_keys(project)[0]["last_used_at"] == used
    db = server.database()
    with db:
        db.execute(
            "UPDATE api_keys SET last_used_at = ? WHERE project_id = ?", (used - LAST_USED_RESOLUTION - 1, project)
        )
    db.close()
    httpx.get(f"{server.url}/v1/prompts", headers=auth(secret))
    assert server.store.list_api_keys(project)[0]["last_used_at"] >= used


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(project_name=NAMES.filter(valid_name), key_name=NAMES)
def test_projects_and_keys_with_generated_names(server: RunningServer, project_name: str, key_name: str) -> None:
    existing = {p["name"] for p in server.store.list_projects()}
    if project_name in existing:
        with pytest.raises(StoreError) as clash:
            server.store.create_project(project_name)
        assert clash.value.status == 409
        return
    project = server.store.create_project(project_name)
    assert server.store.get_project(project["project_id"]) == project
    if not valid_name(key_name):
        with pytest.raises(StoreError) as refused:
            server.store.create_api_key(project["project_id"], key_name)
        assert refused.value.status == 422
        return
    record, secret = server.store.create_api_key(project["project_id"], key_name)
    assert record["name"] == key_name and server.store.list_api_keys(project["project_id"]) == [record]
    assert httpx.get(f"{server.url}/v1/prompts", headers=auth(secret)).json() == {"prompts": []}


def test_unknown_projects_and_keys_are_404(server: RunningServer) -> None:
    missing = str(uuid.uuid4())
    for call in (
        lambda: server.store.get_project(missing),
        lambda: server.store.create_api_key(missing, "k"),
        lambda: server.store.list_api_keys(missing),
        lambda: server.store.revoke_api_key("default", missing),
        lambda: server.store.create_prompt(missing, "p", "t"),
    ):
        with pytest.raises(StoreError) as refused:
            call()
        assert refused.value.status == 404
    project, _ = new_project_key(server.store)
    key_id = server.store.list_api_keys(project)[0]["key_id"]
    with pytest.raises(StoreError) as other:  # another project's key: as if it did not exist
        server.store.revoke_api_key("default", key_id)
    assert other.value.status == 404 and server.store.list_api_keys(project)[0]["revoked_at"] is None


def _batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"sent_at": "2026-12-02T10:00:00Z", "events": events}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=st.lists(st.sampled_from(["good", "bad_type", "unknown_run", "no_label"]), min_size=1, max_size=20))
def test_rejected_events_keep_their_reasons_per_project_newest_first(server: RunningServer, layout: list[str]) -> None:
    project, secret = new_project_key(server.store)
    owned = Owned(server.url, secret)
    events: list[dict[str, Any]] = []
    for kind in layout:
        event = owned.event(str(uuid.uuid4()))
        if kind == "bad_type":
            event["type"] = "purchase"
        elif kind == "unknown_run":
            event["prompt_run_id"] = str(uuid.uuid4())
        elif kind == "no_label":
            del event["label"]
        events.append(event)
    answer = owned.post("/v1/events/batch", _batch(events), **{"Idempotency-Key": f"b-{uuid.uuid4()}"}).json()
    kept = server.store.recent_rejections(project, limit=1000)
    assert len(kept) == len(answer["rejected"]) == sum(kind != "good" for kind in layout)
    # newest first: the last rejection of the batch comes first; each with the reason the client was given
    expected = [(r["event_id"], r["reason"], r["index"]) for r in reversed(answer["rejected"])]
    assert [(r["event_id"], r["reason"], r["index"]) for r in kept] == expected
    assert all(r["received_at"] > 0 and r["idempotency_key"].startswith("b-") for r in kept)
    assert all(
        r["event_id"] not in {k["event_id"] for k in server.store.recent_rejections("default", 1000)} for r in kept
    )


def test_rejections_are_bounded_per_project_and_the_oldest_go_first(server: RunningServer) -> None:
    from promptstream.server._projects import MAX_REJECTIONS_KEPT

    project, secret = new_project_key(server.store)
    owned = Owned(server.url, secret)
    other = Owned(server.url, API_KEY)
    other.post("/v1/events/batch", _batch([{**other.event(str(uuid.uuid4())), "type": "purchase"}]))

    def bad(count: int) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        owned.post("/v1/events/batch", _batch([{**owned.event(i), "type": "purchase"} for i in ids]))
        return ids

    first = bad(MAX_REJECTIONS_KEPT)
    last = bad(7)
    kept = server.store.recent_rejections(project, limit=1000)
    assert len(kept) == MAX_REJECTIONS_KEPT == server.store.count("rejections", "WHERE project_id = ?", [project])
    assert [r["event_id"] for r in kept[:7]] == last[::-1]
    assert {r["event_id"] for r in kept} == set(first[7:]) | set(last)  # the 7 oldest were pruned
    assert len(server.store.recent_rejections("default")) == 1  # another project's are not touched


def test_recent_events_show_what_the_project_stored_newest_first(server: RunningServer) -> None:
    project, secret = new_project_key(server.store)
    owned = Owned(server.url, secret)
    later = {**owned.event(str(uuid.uuid4())), "metadata": {"plan": "pro", "n": [1, 2]}, "external_user_id": "u1"}
    owned.post("/v1/events/batch", _batch([later]))
    recent = server.store.recent_events(project, owned.experiment_id, limit=10)
    assert [event["event_id"] for event in recent] == [later["event_id"], owned.event_id]
    assert recent[0]["metadata"] == {"plan": "pro", "n": [1, 2]} and recent[0]["external_user_id"] == "u1"
    assert recent[0]["type"] == "click" and recent[0]["label"] == "cta" and recent[0]["received_at"] > 0
    assert server.store.recent_events(project, owned.experiment_id, limit=1)[0]["event_id"] == later["event_id"]
    for call in (
        lambda: server.store.recent_events("default", owned.experiment_id),  # another project's experiment
        lambda: server.store.recent_events(project, str(uuid.uuid4())),
        lambda: server.store.recent_rejections(str(uuid.uuid4())),
    ):
        with pytest.raises(StoreError) as missing:
            call()
        assert missing.value.status == 404
    with pytest.raises(StoreError) as bad_limit:
        server.store.recent_events(project, owned.experiment_id, limit=0)
    assert bad_limit.value.status == 422
