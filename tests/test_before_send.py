"""``before_send`` receives plain, typed data (metadata a dict) and what it returns is what the server stores; the
scrubbing example in docs/examples/scrub_before_send.py runs here against the reference server."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import Event, PromptStreamClient
from promptstream.testing import RecordingClient

from .helpers import REPO_ROOT, client_env, make_run

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
metadata_dicts = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def stored_metadata(server: Any) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{server.store.path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT event_id, metadata FROM events").fetchall()
    finally:
        db.close()
    return {event_id: None if metadata is None else json.loads(metadata) for event_id, metadata in rows}


@given(metadata=st.one_of(st.none(), metadata_dicts))
def test_the_hook_sees_metadata_as_the_dict_that_was_tracked(metadata: dict[str, Any] | None) -> None:
    seen: list[Event] = []
    client = RecordingClient(before_send=lambda event: seen.append(event) or event)
    client.track_click("run", "exp", "cta", metadata=metadata)
    (event,) = seen
    assert event.metadata == metadata and (metadata is None or isinstance(event.metadata, dict))
    assert dict(event.metadata or {}) == (metadata or {})
    assert client.recorded_events[0].metadata == metadata


def test_metadata_the_hook_returns_is_validated_like_an_argument() -> None:
    client = RecordingClient(
        before_send=lambda event: msgspec.structs.replace(event, metadata={"bad": float("nan")}),
    )
    client.track_click("run", "exp", "cta", metadata={"a": 1})
    assert client.recorded_events == [] and client.stats().hook_errors == 1


@pytest.mark.sqlite_only  # a test of the SDK's hook: the server is only its peer, and it reads the SQLite file
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metadata=metadata_dicts, email=st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.com", fullmatch=True))
def test_the_documented_scrubber_scrubs_what_the_server_stores(
    server: Any, spool_dir: Path, monkeypatch: pytest.MonkeyPatch, metadata: dict[str, Any], email: str
) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT / "docs" / "examples"))
    for name, value in client_env(server.url, spool_dir).items():
        monkeypatch.setenv(name, value)
    import scrub_before_send

    run_id, experiment_id = make_run(server)
    client: PromptStreamClient = scrub_before_send.make_client()
    try:
        sent = {**metadata, "email": email, "note": f"write to {email}", "nested": {"phone": "555", "x": [email]}}
        kept = client.track_click(run_id, experiment_id, "cta", metadata=sent)
        dropped = client.track_click(run_id, experiment_id, "internal", metadata=sent)
        assert client.flush(timeout=20) is True
    finally:
        client.close()
        sys.modules.pop("scrub_before_send", None)
    stored = stored_metadata(server)
    assert dropped not in stored
    assert stored[kept] == scrub_before_send.scrub_value(sent)
    assert email not in json.dumps(stored[kept])
    assert stored[kept]["email"] == "[redacted]" and stored[kept]["nested"]["phone"] == "[redacted]"
