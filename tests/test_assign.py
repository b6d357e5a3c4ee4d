"""``client.assign`` / ``POST /v1/assignments`` (issue 18 §3): the server's sticky assignment without a model,
recorded as a run without output, so events tracked against it are accepted and counted in the results. Runs on
both storage backends (the ``server`` fixture)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import (
    AsyncPromptStreamClient,
    BadRequestError,
    InvalidArgumentError,
    PromptNotFoundError,
    PromptStreamClient,
)

from .helpers import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _two_variant_prompt(server: Any, client: PromptStreamClient, template2: str = "Hi {{name}}, v2") -> str:
    prompt = server.create_prompt(template="Hello {{name}}!")
    server.store.add_version("default", prompt["prompt_id"], template2)
    client.experiments.create(prompt["prompt_id"], [(1, 1.0), (2, 1.0)], name="tone")
    return str(prompt["prompt_id"])


def _stored_run(server: Any, run_id: str) -> tuple[Any, ...] | None:
    db = server.database()
    try:
        row = db.execute(
            "SELECT r.variant, r.external_user_id, r.output, a.run_id FROM runs r"
            " LEFT JOIN assignments a ON a.run_id = r.id WHERE r.id = ?",
            (run_id,),
        ).fetchone()
    finally:
        db.close()
    if row is None:
        return None
    if hasattr(server.store, "url"):  # PostgreSQL: texts are stored through the store's reversible NUL escape
        from promptstream.server._pg import _unescape

        return tuple(_unescape(value) if isinstance(value, str) else value for value in row)
    return tuple(row)


user_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=st.lists(user_ids, min_size=1, max_size=5, unique=True), name=st.text(max_size=30))
def test_assign_gives_the_variant_run_prompt_serves_and_its_template_renders_the_same_output(
    server: Any, client: PromptStreamClient, users: list[str], name: str
) -> None:
    prompt_id = _two_variant_prompt(server, client)
    for user in users:
        assignment = client.assign(prompt_id, external_user_id=user)
        again = client.assign(prompt_id, external_user_id=user)
        run = client.run_prompt(prompt_id, {"name": name}, external_user_id=user)
        assert assignment.variant_assigned == again.variant_assigned == run.variant_assigned  # sticky, one rule
        assert assignment.experiment_id == run.experiment_id and assignment.prompt_id == prompt_id
        assert assignment.variant_assigned == f"v{assignment.version}" and assignment.external_user_id == user
        assert assignment.render({"name": name}) == run.output
        assert assignment.run_id != again.run_id  # each assignment is an exposure of its own
        assert _stored_run(server, assignment.run_id) == (assignment.variant_assigned, user, "", assignment.run_id)
        assert _stored_run(server, run.run_id) == (run.variant_assigned, user, run.output, None)  # a normal run


def test_events_on_an_assignment_are_accepted_and_counted_in_the_results(
    server: Any, client: PromptStreamClient
) -> None:
    prompt_id = _two_variant_prompt(server, client)
    assignments = [client.assign(prompt_id, external_user_id=f"user-{n}") for n in range(40)]
    converted = assignments[::3]
    for assignment in converted:
        client.track_conversion(assignment.run_id, assignment.experiment_id)
        client.track_click(assignment.run_id, assignment.experiment_id, label="copy")
    assert client.flush(timeout=10)
    assert client.stats().rejected == 0
    results = client.get_experiment_results(assignments[0].experiment_id)
    for variant in results.variants:
        mine = [a for a in assignments if a.variant_assigned == variant.variant]
        assert variant.runs == len(mine) and variant.users == len(mine)
        assert variant.conversion.per_user.successes == sum(a in converted for a in mine)
        assert variant.click_through.per_run.successes == sum(a in converted for a in mine)


def test_without_a_user_the_assignment_is_recorded_with_none(server: Any, client: PromptStreamClient) -> None:
    prompt_id = _two_variant_prompt(server, client)
    seen = {client.assign(prompt_id).variant_assigned for _ in range(40)}
    assert seen == {"v1", "v2"}  # random without a user: 40 draws of a fair coin give both (1 in 5e11 not)
    assignment = client.assign(prompt_id)
    assert _stored_run(server, assignment.run_id) == (assignment.variant_assigned, None, "", assignment.run_id)


def test_a_retry_with_the_same_idempotency_key_records_one_run(server: Any, client: PromptStreamClient) -> None:
    prompt_id = _two_variant_prompt(server, client)
    first = client.assign(prompt_id, "ada", idempotency_key="assign-ada-1")
    again = client.assign(prompt_id, "ada", idempotency_key="assign-ada-1")
    assert again == first
    assert server.store.count("runs") == 1
    with pytest.raises(BadRequestError) as refused:
        client.assign(prompt_id, "grace", idempotency_key="assign-ada-1")
    assert refused.value.error_type == "idempotency_key_reused"
    assert server.store.count("runs") == 1


def test_unknown_prompt_and_bad_arguments(server: Any, client: PromptStreamClient) -> None:
    with pytest.raises(PromptNotFoundError):
        client.assign("no-such-prompt", "ada")
    for bad in ("", "x" * 257, 3):
        with pytest.raises(InvalidArgumentError):
            client.assign(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.assign("p", external_user_id="")
    assert server.store.count("runs") == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"prompt_id": ""}',
        b'{"prompt_id": 5}',
        b'{"prompt_id": "p", "external_user_id": ""}',
        json.dumps({"prompt_id": "p", "external_user_id": "u" * 257}).encode(),
        b'{"prompt_id": "p", "inputs": {}}',
        b"[1, 2]",
        b"not json",
        b'{"prompt_id": "\\ud800"}',
    ],
)
def test_the_server_refuses_a_bad_body_with_a_4xx(server: Any, body: bytes) -> None:
    answer = httpx.post(
        f"{server.url}/v1/assignments", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]["type"] in ("invalid_request", "invalid_body")
    assert server.store.count("runs") == 0


def test_the_server_wants_a_key(server: Any) -> None:
    answer = httpx.post(f"{server.url}/v1/assignments", json={"prompt_id": "p"})
    assert answer.status_code == 401


def test_async_client_assigns_too(server: Any, spool_dir: Path) -> None:
    prompt = server.create_prompt(template="Hello {{name}}!")

    async def main() -> tuple[Any, Any]:
        async with AsyncPromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir) as client:
            assignment = await client.assign(prompt["prompt_id"], "ada")
            run = await client.run_prompt(prompt["prompt_id"], {"name": "Ada"}, "ada")
            client.track_conversion(assignment.run_id, assignment.experiment_id)
            assert await client.flush(timeout=10)
            return assignment, run

    assignment, run = asyncio.run(main())
    assert assignment.variant_assigned == run.variant_assigned == "v1"
    assert assignment.render({"name": "Ada"}) == run.output == "Hello Ada!"
    assert server.store.count("events", "WHERE prompt_run_id = ?", [assignment.run_id]) == 1


def test_hashed_user_ids_are_assigned_as_run_prompt_assigns_them(server: Any, client_factory: Any) -> None:
    client = client_factory(server.url, hash_user_ids="a-salt-of-sixteen-bytes-or-more")
    prompt_id = _two_variant_prompt(server, client)
    assignment = client.assign(prompt_id, "ada@example.com")
    run = client.run_prompt(prompt_id, {"name": "x"}, "ada@example.com")
    assert assignment.variant_assigned == run.variant_assigned
    stored = _stored_run(server, assignment.run_id)
    assert stored is not None and stored[1] != "ada@example.com"  # never the raw id


def test_render_names_missing_inputs(server: Any, client: PromptStreamClient) -> None:
    prompt = server.create_prompt(template="{{greeting}}, {{ name }}! {{n}}")
    assignment = client.assign(prompt["prompt_id"])
    with pytest.raises(InvalidArgumentError, match="greeting, n"):
        assignment.render({"name": "Ada"})
    assert assignment.render({"greeting": "Hi", "name": "Ada", "n": [1, 2]}) == "Hi, Ada! [1, 2]"


def test_an_assignment_belongs_to_the_callers_project(server: Any, client_factory: Any) -> None:
    """Another project's key cannot assign on this project's prompt (404 like a missing one), its assignment lives in
    its own project, and this project's events cannot name it."""
    from .test_server_projects import new_project_key

    mine = client_factory(server.url)
    prompt_id = _two_variant_prompt(server, mine)
    project, secret = new_project_key(server.store)
    theirs = client_factory(server.url, api_key=secret)
    with pytest.raises(PromptNotFoundError):
        theirs.assign(prompt_id, "ada")
    their_prompt = server.store.create_prompt(project, "theirs", "Theirs {{name}}")
    assignment = theirs.assign(their_prompt["prompt_id"], "ada")
    assert server.store.get_prompt(project, their_prompt["prompt_id"])["prompt_id"] == assignment.prompt_id
    db = server.database()
    try:
        rows = db.execute("SELECT project_id FROM assignments WHERE run_id = ?", (assignment.run_id,)).fetchall()
    finally:
        db.close()
    assert [tuple(row) for row in rows] == [(project,)]
    mine.track_click(assignment.run_id, assignment.experiment_id, label="copy")  # the default project's key
    theirs.track_click(assignment.run_id, assignment.experiment_id, label="copy")
    assert mine.flush(timeout=10) and theirs.flush(timeout=10)
    assert mine.stats().rejected == 1 and theirs.stats().rejected == 0


def test_the_recording_client_assigns_like_the_real_one_without_a_server() -> None:
    from promptstream.testing import RecordingClient

    client = RecordingClient(responses={"greeting": "Hi {{name}}!"}, hash_user_ids="a-salt-of-sixteen-bytes-or-more")
    assignment = client.assign("greeting", external_user_id="ada")
    assert assignment.render({"name": "Ada"}) == "Hi Ada!" and assignment.variant_assigned == "v1"
    assert client.assignments == [("greeting", assignment.external_user_id)]
    assert assignment.external_user_id not in (None, "ada")  # hashed, as the real client sends it
    client.track_conversion(assignment.run_id, assignment.experiment_id)
    assert [e.prompt_run_id for e in client.events(type="conversion")] == [assignment.run_id]
    with pytest.raises(InvalidArgumentError):
        client.assign("")
    client.clear()
    assert client.assignments == []
