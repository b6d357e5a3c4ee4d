"""Every constructor option is checked once, at construction: a wrong type or a value out of its documented range
is a ConfigurationError naming the option and its range; any configuration the constructor accepts delivers events
end to end to the real reference server (no option can stop a background thread or make every send fail)."""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from promptstream import AgentConfig, AsyncPromptStreamClient, ConfigurationError, PromptStreamClient
from promptstream._config import _AGENT_RANGES

from .helpers import API_KEY, fast, make_run, wait_until

# The values issue 13 found getting through, each with the option it must be refused for.
FOUND_IN_ISSUE_13: list[tuple[str, Any]] = [
    ("base_url", 123),
    ("base_url", "http://[::1"),
    ("base_url", "ftp://example.com"),
    ("base_url", "http://127.0.0.1:99999"),
    ("spool_dir", 123),
    ("spool_dir", ""),
    ("max_spool_bytes", "1"),
    ("agent_config", "x"),
    ("agent_config", {"spool": False}),
    ("flush_interval", math.inf),
    ("flush_interval", math.nan),
    ("timeout", "abc"),
    ("timeout", -1),
    ("timeout", 0),
    ("timeout", math.inf),
    ("timeout", httpx.Timeout(None)),
    ("timeout", httpx.Timeout(5.0, pool=None)),
    ("max_queue_size", 1.5),
    ("max_queue_size", 0),
    ("batch_max_events", 0),
    ("batch_max_events", 1001),
    ("batch_max_events", True),
    ("max_retries", -1),
    ("max_retries", 2.0),
    ("max_retries", 10**6),
    ("shutdown_timeout", -0.1),
    ("encoding", "xml"),
    ("encoding", 1),
    ("durable", "yes"),
    ("spool", 1),
    ("disabled", "no"),
    ("on_error", "print"),
    ("before_send", 42),
    ("hash_user_ids", 123),
]


@pytest.mark.parametrize(("option", "value"), FOUND_IN_ISSUE_13, ids=[f"{o}={v!r:.20}" for o, v in FOUND_IN_ISSUE_13])
@pytest.mark.parametrize("client_class", [PromptStreamClient, AsyncPromptStreamClient])
def test_each_bad_option_is_a_configuration_error_naming_it(
    client_class: type[PromptStreamClient], option: str, value: Any, tmp_path: Path
) -> None:
    options = {"spool_dir": tmp_path, option: value}
    with pytest.raises(ConfigurationError) as info:
        client_class(API_KEY, **options)
    assert option in str(info.value) or (option == "hash_user_ids" and "salt" in str(info.value))


@pytest.mark.parametrize(("field", "value"), [("lease_seconds", 1e300), ("spool_interval", math.inf)])
def test_agent_config_fields_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=field):
        AgentConfig(**{field: value})


def junk() -> st.SearchStrategy[Any]:
    """Values of every type a careless caller might pass."""
    return st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.binary(max_size=4),
        st.lists(st.integers(), max_size=2),
        st.just(object()),
    )


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(_AGENT_RANGES)), value=junk())
def test_generated_agent_config_values_are_in_range_or_refused(field: str, value: Any) -> None:
    kind, low, high = _AGENT_RANGES[field]
    try:
        config = AgentConfig(**{field: value})
    except ConfigurationError as exc:
        assert field in str(exc)
        return
    accepted = getattr(config, field)
    assert not isinstance(value, bool)
    assert low <= accepted <= high
    assert type(accepted) is (int if kind == "int" else float)


def options_strategy() -> st.SearchStrategy[dict[str, Any]]:
    def near(low: float, high: float, integer: bool) -> st.SearchStrategy[Any]:
        edges = st.sampled_from([low, high, (low + high) / 2])
        outside = st.sampled_from([low - 1, high + 1, -1])
        if integer:
            inside = st.integers(min_value=int(low), max_value=min(int(high), int(low) + 10_000))
            return st.one_of(edges.map(int), inside, outside.map(int))
        return st.one_of(edges, st.floats(min_value=low, max_value=min(high, 2.0)), outside)

    per_option: dict[str, st.SearchStrategy[Any]] = {
        "max_spool_bytes": near(*_AGENT_RANGES["max_spool_bytes"][1:], integer=True),
        "max_queue_size": near(*_AGENT_RANGES["max_queue_size"][1:], integer=True),
        "flush_interval": near(0.001, 2.0, integer=False),
        "batch_max_events": near(*_AGENT_RANGES["batch_max_events"][1:], integer=True),
        "shutdown_timeout": near(0.0, 2.0, integer=False),
        "encoding": st.sampled_from(["json", "msgpack", "JSON", ""]),
        "durable": st.booleans(),
        "spool": st.booleans(),
        "timeout": st.one_of(st.floats(min_value=0.5, max_value=3600.0), st.sampled_from([0.0, -1.0, 3601.0])),
        "max_retries": st.integers(min_value=-1, max_value=11),
    }
    agent_fields: dict[str, st.SearchStrategy[Any]] = {
        "spool_interval": near(0.001, 60.0, integer=False),
        "lease_seconds": st.sampled_from([0.1, 0.05, 1.0, 86_400.0, 86_401.0, 1e300]),
        "batch_max_bytes": near(*_AGENT_RANGES["batch_max_bytes"][1:], integer=True),
        "gzip_threshold_bytes": near(0, 2**31 - 1, integer=True),
        "max_backoff": near(0.01, 3600.0, integer=False),
    }
    keywords = st.dictionaries(st.sampled_from(sorted(per_option)), st.just(None), max_size=3).flatmap(
        lambda chosen: st.fixed_dictionaries(
            {name: st.one_of(per_option[name], per_option[name], per_option[name], junk()) for name in chosen}
        )
    )
    fields = st.dictionaries(st.sampled_from(sorted(agent_fields)), st.just(None), max_size=2).flatmap(
        lambda chosen: st.fixed_dictionaries(
            {name: st.one_of(agent_fields[name], agent_fields[name], agent_fields[name], junk()) for name in chosen}
        )
    )
    return st.tuples(keywords, fields).map(lambda pair: {**pair[0], "agent_config_fields": pair[1]})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=options_strategy())
def test_any_accepted_configuration_delivers_end_to_end(server: Any, tmp_path: Path, options: dict[str, Any]) -> None:
    fields = options.pop("agent_config_fields")
    spool_dir = tmp_path / uuid.uuid4().hex
    named = set(options) | set(fields)
    try:
        config = AgentConfig(spool_dir=spool_dir, **fields) if fields else None
        client = PromptStreamClient(
            API_KEY, base_url=server.url, agent_config=config, **({} if config else {"spool_dir": spool_dir}), **options
        )
    except ConfigurationError as exc:
        assert any(name in str(exc) for name in named), (exc, named)
        event("refused")
        return
    event("accepted")
    try:
        run_id, experiment_id = make_run(server)
        ids = [
            client.track_click(run_id, experiment_id, "cta", metadata={"n": 1}),
            client.track_rating(run_id, experiment_id, 4),
            client.track_feedback(run_id, experiment_id, True),
        ]
        assert client.flush(timeout=20), client.stats()
        assert wait_until(lambda: set(ids) <= set(server.stored_event_ids()), timeout=5)
        for thread_name in ("promptstream-spooler", "promptstream-sender"):
            assert any(t.name.startswith(thread_name) and t.is_alive() for t in _threads()), thread_name
    finally:
        client.close(timeout=2)


def _threads() -> list[Any]:
    import threading

    return threading.enumerate()


def test_explicit_keywords_override_agent_config(server: Any, spool_dir: Path) -> None:
    """One way to configure: agent_config is the base, a keyword given explicitly wins over its field; spool=False
    is honoured even when agent_config says spool=True."""
    config = fast(spool_dir, batch_max_events=10)
    client = PromptStreamClient(
        API_KEY, base_url=server.url, agent_config=config, spool=False, batch_max_events=7, flush_interval=0.02
    )
    try:
        assert client._agent is not None
        effective = client._agent._config
        assert (effective.spool, effective.batch_max_events, effective.flush_interval) == (False, 7, 0.02)
        assert effective.max_backoff == config.max_backoff  # untouched fields come from agent_config
        run_id, experiment_id = make_run(server)
        event_id = client.track_click(run_id, experiment_id, "cta")
        assert client.flush(timeout=10)
        assert event_id in server.stored_event_ids()
        assert client.stats().spool_path is None  # memory-only, as spool=False said
        assert not any(path.suffix == ".sqlite3" for path in spool_dir.glob("*")) if spool_dir.exists() else True
    finally:
        client.close(timeout=2)


def test_spool_dir_accepts_str_and_pathlike(tmp_path: Path) -> None:
    for value in (str(tmp_path / "a"), tmp_path / "b"):
        config = AgentConfig(spool_dir=value)  # type: ignore[arg-type]
        assert config.spool_dir == Path(os.fspath(value))
