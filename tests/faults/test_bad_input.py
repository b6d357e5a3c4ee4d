"""Bad input, generated: every track_* argument and run_prompt argument gets wrong types, non-finite numbers, lone
surrogates, huge, deep, cyclic and oddly keyed values. Each call either succeeds or raises the documented typed error
at the call site; the agent keeps running and no other event is affected. The server is fuzzed with malformed
bodies: every answer is a 4xx with the error envelope (or a 2xx), never a 5xx, and it keeps serving."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import APIStatusError, InvalidArgumentError, PromptStreamClient

from ..helpers import API_KEY, fast, make_run

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.binary(max_size=10),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(), st.none()), inner, max_size=4),
    ),
    max_leaves=20,
)

METHODS = {
    "track_click": ["prompt_run_id", "experiment_id", "label", "external_user_id", "source", "metadata"],
    "track_conversion": ["prompt_run_id", "experiment_id", "label", "external_user_id", "source", "metadata"],
    "track_feedback": ["prompt_run_id", "experiment_id", "thumbs_up", "external_user_id", "source", "metadata"],
    "track_rating": ["prompt_run_id", "experiment_id", "rating", "external_user_id"],
    "track_engagement": ["prompt_run_id", "experiment_id", "engagement_score", "external_user_id"],
}


def test_every_track_argument_either_works_or_raises_the_typed_error(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    run_id, experiment_id = make_run(server)
    client: PromptStreamClient = client_factory(server.url, agent_config=fast(spool_dir))
    valid: list[str] = []
    accepted_odd: list[str] = []

    @SETTINGS
    @given(data=st.data())
    def attack(data: st.DataObject) -> None:
        method = data.draw(st.sampled_from(sorted(METHODS)))
        good = {
            "prompt_run_id": run_id,
            "experiment_id": experiment_id,
            "label": "ok",
            "thumbs_up": True,
            "rating": 3.0,
            "engagement_score": 1.0,
        }
        kwargs = {name: good[name] for name in METHODS[method] if name in good}
        target = data.draw(st.sampled_from(METHODS[method]))
        kwargs[target] = data.draw(values)
        try:
            event_id = getattr(client, method)(**kwargs)
        except InvalidArgumentError as exc:
            assert exc.argument == target
        else:
            if target in ("prompt_run_id", "experiment_id"):
                accepted_odd.append(event_id)  # another valid-looking id: the server will reject it, counted
            else:
                valid.append(event_id)
        # a valid neighbour is never affected
        valid.append(client.track_click(run_id, experiment_id, "neighbour"))

    attack()
    assert client.flush(timeout=60) is True
    stored = set(server.stored_event_ids())
    assert set(valid) <= stored
    stats = client.stats()
    assert stats.sent + stats.rejected == stats.tracked  # the odd-but-valid ones were rejected by the server, kept


def test_run_prompt_arguments_either_work_or_raise_the_typed_error(server: Any, client_factory: Any) -> None:
    prompt = server.create_prompt("Hi {{name}}")
    client: PromptStreamClient = client_factory(server.url, max_retries=0)

    @SETTINGS
    @given(prompt_id=st.one_of(st.just(prompt["prompt_id"]), values), inputs=values, user=values)
    def attack(prompt_id: Any, inputs: Any, user: Any) -> None:
        try:
            client.run_prompt(prompt_id, inputs, external_user_id=user)
        except InvalidArgumentError as exc:
            assert exc.argument in ("prompt_id", "inputs", "external_user_id")
        except APIStatusError:
            pass  # the server's answer to a valid but wrong call (unknown prompt, missing input)

    attack()


def bodies() -> st.SearchStrategy[tuple[bytes, dict[str, str]]]:
    jsonish = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
        lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=6)),
        max_leaves=30,
    )
    event_like = st.fixed_dictionaries(
        {"event_id": values, "type": st.sampled_from(["click", "rating", "bogus"]) | values},
        optional={
            "prompt_run_id": values,
            "experiment_id": values,
            "timestamp": values,
            "rating": values,
            "metadata": values,
            "label": values,
        },
    )
    structured = st.fixed_dictionaries({"sent_at": jsonish, "events": st.lists(event_like | jsonish, max_size=5)})

    def encode(doc: Any, how: str) -> tuple[bytes, dict[str, str]]:
        if how == "msgpack":
            try:
                return msgspec.msgpack.encode(doc), {"Content-Type": "application/msgpack"}
            except (TypeError, ValueError, OverflowError):
                return b"\xc1", {"Content-Type": "application/msgpack"}
        text = json.dumps(doc, default=repr).encode("utf-8", "surrogatepass")
        if how == "gzip":
            return gzip.compress(text), {"Content-Encoding": "gzip"}
        if how == "truncated":
            return text[: len(text) // 2], {}
        return text, {}

    return st.one_of(
        st.tuples(st.binary(max_size=200), st.just({})),
        st.builds(encode, st.one_of(structured, jsonish), st.sampled_from(["json", "msgpack", "gzip", "truncated"])),
        st.just((b"[" * 5000 + b"]" * 5000, {})),  # deeply nested
        st.just((gzip.compress(b"{" * 100), {"Content-Encoding": "gzip"})),
    )


def test_the_server_answers_malformed_bodies_with_4xx_never_5xx(server: Any) -> None:
    prompt = server.create_prompt()
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:

        @SETTINGS
        @given(
            body=bodies(),
            path=st.sampled_from(
                ["/v1/events/batch", f"/v1/prompts/{prompt['prompt_id']}/runs", "/v1/prompts", "/v1/experiments"]
            ),
        )
        def attack(body: tuple[bytes, dict[str, str]], path: str) -> None:
            content, headers = body
            response = http.post(path, content=content, headers=headers)
            assert response.status_code < 500, response.text
            if response.status_code >= 400:
                envelope = response.json()
                assert set(envelope) == {"error"} and {"type", "message"} <= set(envelope["error"])

        attack()
        assert http.get("/v1/prompts").status_code == 200  # still serving
