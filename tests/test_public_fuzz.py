"""A fuzzing pass over the SDK's public signature (issue 13): every public method of both clients, called with
generated arguments of every type against the real reference server. Only PromptStreamError subclasses may
escape, and afterwards the agent's threads are alive and a valid event is still delivered."""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import AsyncPromptStreamClient, PromptStreamClient, PromptStreamError

from .helpers import API_KEY, fast, make_run

# Methods whose effect ends the client: called once at the end, not fuzzed in the middle.
_LAST = {"close", "aclose"}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**309), 2**64, -(2**63) - 1, 1e308, 1e9, -1e9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "é", "\x00", "\ud800", "x" * 300, "run", " key ", "\n"]),
    st.binary(max_size=8),
    st.just(object()),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(), st.sampled_from(["\ud800"])), inner, max_size=3),
    ),
    max_leaves=12,
)


def public_methods(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member) and name not in _LAST
    )


def fuzz_arguments(method: Callable[..., Any], real: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``method``: each parameter omitted (if optional), its real value, or anything."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, parameter in inspect.signature(method).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        choice = st.one_of(st.just(real[name]), values) if name in real else values
        (fields if parameter.default is parameter.empty else optional)[name] = choice
    return st.fixed_dictionaries(fields, optional=optional)


@pytest.fixture
def world(server: Any, spool_dir: Path) -> dict[str, Any]:
    run_id, experiment_id = make_run(server)
    prompt = server.create_prompt()
    return {
        "prompt_run_id": run_id,
        "experiment_id": experiment_id,
        "prompt_id": prompt["prompt_id"],
        "inputs": {"name": "x"},
        "label": "cta",
        "thumbs_up": True,
        "rating": 4,
        "engagement_score": 1.5,
        "timeout": 0.05,
        "name": "fuzzed",
        "template": "Hi {{name}}",
        "prompt": prompt["prompt_id"],
        "variants": [(1, 1.0)],
    }


def agent_threads_alive(client: Any) -> bool:
    names = {t.name for t in threading.enumerate() if t.is_alive()}
    return all(any(n.startswith(prefix) for n in names) for prefix in ("promptstream-spooler", "promptstream-sender"))


def targets(client: Any) -> list[tuple[Any, str]]:
    """Every public method of the client and of its ``prompts`` and ``experiments`` resources."""
    owners = [client, client.prompts, client.experiments]
    return [(owner, name) for owner in owners for name in public_methods(type(owner))]


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_sync_client_raises_only_its_own_errors(server: Any, spool_dir: Path, world: dict[str, Any]) -> None:
    client = PromptStreamClient(API_KEY, base_url=server.url, max_retries=0, timeout=5, agent_config=fast(spool_dir))
    escaped: list[str] = []

    @FUZZ
    @given(data=st.data())
    def call_anything(data: st.DataObject) -> None:
        owner, name = data.draw(st.sampled_from(targets(client)), label="method")
        method = getattr(owner, name)
        kwargs = data.draw(fuzz_arguments(method, world), label="kwargs")
        try:
            method(**kwargs)
        except PromptStreamError:
            pass
        except BaseException as exc:  # anything else is a bug: record it with what caused it
            escaped.append(f"{name}({kwargs!r:.300}) raised {type(exc).__name__}: {exc!s:.200}")

    try:
        call_anything()
        assert not escaped, "\n".join(escaped[:10])
        assert agent_threads_alive(client)
        event_id = client.track_click(world["prompt_run_id"], world["experiment_id"], "after-the-fuzz")
        assert client.flush(timeout=20)
        assert event_id in server.stored_event_ids()
    finally:
        client.close(timeout=2)


def test_async_client_raises_only_its_own_errors(server: Any, spool_dir: Path, world: dict[str, Any]) -> None:
    loop = asyncio.new_event_loop()
    client = AsyncPromptStreamClient(
        API_KEY, base_url=server.url, max_retries=0, timeout=5, agent_config=fast(spool_dir)
    )
    escaped: list[str] = []

    @FUZZ
    @given(data=st.data())
    def call_anything(data: st.DataObject) -> None:
        owner, name = data.draw(st.sampled_from(targets(client)), label="method")
        method = getattr(owner, name)
        kwargs = data.draw(fuzz_arguments(method, world), label="kwargs")
        try:
            result = method(**kwargs)
            if inspect.isawaitable(result):
                loop.run_until_complete(result)
        except PromptStreamError:
            pass
        except BaseException as exc:
            escaped.append(f"{name}({kwargs!r:.300}) raised {type(exc).__name__}: {exc!s:.200}")

    try:
        call_anything()
        assert not escaped, "\n".join(escaped[:10])
        assert agent_threads_alive(client)
        event_id = client.track_click(world["prompt_run_id"], world["experiment_id"], "after-the-fuzz")
        assert loop.run_until_complete(client.flush(timeout=20))
        assert event_id in server.stored_event_ids()
    finally:
        loop.run_until_complete(client.aclose(timeout=2))
        loop.close()


@pytest.mark.parametrize("timeout", [None, 0, 0.01, math.inf, 10**400, -1, math.nan, "x", b"1"])
def test_close_accepts_any_timeout_or_refuses_it_typed(client_factory: Any, timeout: Any) -> None:
    client = client_factory("http://127.0.0.1:9", spool=False)
    try:
        client.close(timeout=timeout)
    except PromptStreamError:
        client.close(timeout=0)
