"""The agent's delivery side and lifecycle under what a server answer, a spool or a careless caller can do: events
that cannot be encoded, answers of every status, malformed answers, spool errors on every path, calls after and
during close(), and failing deliveries that must be visible. Counts are checked against the real server's store."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    EventRejectedError,
    InvalidResponseError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PromptStreamError,
    RateLimitError,
    ServerError,
)
from promptstream._agent import (
    Delivered,
    Paused,
    Refused,
    Retry,
    SpoolCorruptError,
    SpoolUnavailableError,
    SqliteSpool,
    checked_rejections,
    outcome_for_status,
    owner_token,
    spool_file_path,
)
from promptstream._ids import rfc3339_ms

from .helpers import API_KEY, fast, make_run, wait_until

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def raw_event(run_id: str, experiment_id: str, metadata: Any = None) -> bytes:
    """An event as track_click encodes it, built by hand so that it can carry what the call site refuses."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "click",
        "prompt_run_id": run_id,
        "experiment_id": experiment_id,
        "timestamp": rfc3339_ms(int(__import__("time").time() * 1000)),
        "label": "x",
    }
    if metadata is not None:
        event["metadata"] = metadata
    return json.dumps(event).encode()


def spool_fds(path: Path) -> int:
    """Open file descriptors of this process on the spool file (or its -wal/-shm)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(str(path))
    return count


# -- 1. an event the wire encoding cannot carry is dead-lettered alone; its neighbours go out --------------------


@settings(max_examples=6, deadline=None, suppress_health_check=FIXTURES)
@given(
    before=st.integers(0, 40),
    after=st.integers(0, 40),
    big=st.one_of(st.integers(2**64, 2**200), st.integers(-(2**200), -(2**63) - 1)),
)
def test_an_event_msgpack_cannot_carry_is_dead_lettered_alone_and_its_neighbours_delivered(
    server: Any, client_factory: Any, before: int, after: int, big: int
) -> None:
    run_id, experiment_id = make_run(server)
    spool_dir = Path(tempfile.mkdtemp())
    config = fast(spool_dir, encoding="msgpack", batch_max_events=1000)
    good = [raw_event(run_id, experiment_id, {"i": i}) for i in range(before + after)]
    bad = raw_event(run_id, experiment_id, {"n": big})
    # written straight into the spool: the call site refuses such an int now; the sender must still cope with one
    spool = SqliteSpool(
        spool_file_path(config, server.url, API_KEY), owner=owner_token(), max_bytes=10**8, lease_seconds=30
    )
    spool.append([*good[:before], bad, *good[before:]], 0)
    spool.close()
    errors: list[PromptStreamError] = []
    client = client_factory(server.url, agent_config=config, on_error=errors.append)
    assert client.flush(timeout=30) is True
    stored = set(server.stored_event_ids())
    assert {json.loads(p)["event_id"] for p in good} <= stored
    assert json.loads(bad)["event_id"] not in stored
    stats = client.stats()
    assert (stats.rejected, stats.dead_lettered, stats.pending, stats.sent) == (1, 1, 0, before + after)
    assert stats.retries == 0  # refused and split, never retried
    assert any(isinstance(e, EventRejectedError) and "msgpack" in e.reason for e in errors)


# -- 4. every HTTP answer maps to one action and one typed error --------------------------------------------------


@given(status=st.integers(100, 599))
def test_every_status_maps_to_one_action_and_its_own_error_type(status: int) -> None:
    body = b'{"accepted": 1}' if 200 <= status < 300 else b'{"error": {"type": "x", "message": "m"}}'
    outcome = outcome_for_status(httpx.Response(status, content=body))
    if 200 <= status < 300:
        assert isinstance(outcome, Delivered)
        return
    assert not isinstance(outcome, Delivered)
    error = outcome.error
    assert isinstance(error, APIStatusError) and error.status_code == status
    if status >= 500 or status in (408, 425, 429):
        assert isinstance(outcome, Retry)
        assert isinstance(error, ServerError if status >= 500 else RateLimitError if status == 429 else APIStatusError)
    elif status in (400, 413, 422):
        assert isinstance(outcome, Refused)
        assert isinstance(error, PayloadTooLargeError if status == 413 else BadRequestError)
    else:
        assert isinstance(outcome, Paused)
        expected = {401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError}.get(status)
        assert type(error) is (expected or APIStatusError)  # only a 401 ever says the key was rejected


def test_a_wrong_base_url_answering_404_pauses_as_not_found_not_as_a_rejected_key(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    run_id, experiment_id = make_run(server)
    errors: list[PromptStreamError] = []
    client = client_factory(f"{server.url}/not-the-api", agent_config=fast(spool_dir), on_error=errors.append)
    client.track_click(run_id, experiment_id, "x")
    assert wait_until(lambda: client.stats().paused, timeout=30)
    assert client.stats().pending == 1 and server.stored_event_ids() == []
    assert [type(e) for e in errors] == [NotFoundError]
    assert "404" in (client.stats().last_error or "")


def test_a_single_event_too_large_is_reported_as_payload_too_large(
    server_factory: Any, client_factory: Any, spool_dir: Path
) -> None:
    server = server_factory(max_body_bytes=4_000)
    run_id, experiment_id = make_run(server)
    errors: list[PromptStreamError] = []
    config = fast(spool_dir, gzip_threshold_bytes=10**9)
    client = client_factory(server.url, agent_config=config, on_error=errors.append)
    ok = client.track_click(run_id, experiment_id, "x")
    client.track_click(run_id, experiment_id, "x", metadata={"pad": "h" * 6_000})
    assert client.flush(timeout=20) is True
    assert server.stored_event_ids() == [ok]
    assert [type(e) for e in errors] == [PayloadTooLargeError]


def test_events_the_server_rejects_are_reported_as_event_rejected(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    run_id, experiment_id = make_run(server)
    errors: list[PromptStreamError] = []
    client = client_factory(server.url, agent_config=fast(spool_dir), on_error=errors.append)
    client.track_click(run_id, experiment_id, "ok")
    client.track_click("no-such-run", experiment_id, "bad")
    assert client.flush(timeout=10) is True
    (error,) = errors
    assert isinstance(error, EventRejectedError) and error.count == 1
    assert not isinstance(error, APIStatusError)  # not a "BadRequestError with status 200"


# -- 6. the server's rejection list is checked before it is counted ---------------------------------------------


@given(
    size=st.integers(1, 50),
    indexes=st.lists(st.integers(-5, 60), max_size=80),
    duplicates=st.integers(-3, 80),
)
def test_a_malformed_rejection_list_cannot_skew_the_counts(size: int, indexes: list[int], duplicates: int) -> None:
    delivered = Delivered([(i, "r") for i in indexes], duplicates)
    kept, dups, problem = checked_rejections(delivered, size)
    kept_indexes = [i for i, _ in kept]
    assert len(set(kept_indexes)) == len(kept_indexes) and all(0 <= i < size for i in kept_indexes)
    assert 0 <= dups <= size - len(kept)
    sound = len(set(indexes)) == len(indexes) and all(0 <= i < size for i in indexes)
    sound = sound and 0 <= duplicates <= size - len(set(indexes))
    assert (problem is None) == sound
    if problem is not None:
        assert isinstance(problem, InvalidResponseError)


def test_a_garbled_answer_from_the_server_keeps_sent_plus_rejected_equal_to_tracked(
    server_factory: Any, client_factory: Any, spool_dir: Path
) -> None:
    def garble(app: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            async def rewrite(message: Any) -> None:
                if message["type"] == "http.response.body" and scope.get("path") == "/v1/events/batch":
                    body = json.loads(message["body"])
                    body["rejected"] = [{"index": i, "reason": "garbled"} for i in (0, 0, 1, -1, 10**6)]
                    body["duplicates"] = 10**6
                    message = {**message, "body": json.dumps(body).encode()}
                if message["type"] == "http.response.start":
                    headers = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, rewrite)

        return wrapped

    server = server_factory(wrap=garble)
    run_id, experiment_id = make_run(server)
    errors: list[PromptStreamError] = []
    client = client_factory(server.url, agent_config=fast(spool_dir), on_error=errors.append)
    for _ in range(20):
        client.track_click(run_id, experiment_id, "x")
    assert client.flush(timeout=10) is True
    stats = client.stats()
    assert stats.sent + stats.rejected == 20 and stats.duplicates <= stats.sent
    assert stats.dead_lettered == stats.rejected
    assert any(isinstance(e, InvalidResponseError) for e in errors)


# -- 5. spool errors on any path never escape flush(), close() or stats() ----------------------------------------

SPOOL_METHODS = ["split", "dead_letter", "ack", "claim", "last_seq", "has_pending_through", "counts", "renew"]
ERRORS = [SpoolUnavailableError("disk"), SpoolCorruptError("bad"), sqlite3.OperationalError("locked"), OSError(5)]


@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURES)
@given(method=st.sampled_from(SPOOL_METHODS), error=st.sampled_from(ERRORS))
def test_a_spool_error_on_any_delivery_path_never_escapes_flush_close_or_stats(
    server_factory: Any, client_factory: Any, monkeypatch: pytest.MonkeyPatch, method: str, error: Exception
) -> None:
    server = server_factory(max_body_bytes=3_000)  # 413 for a batch: the refuse path, split and dead_letter
    run_id, experiment_id = make_run(server)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    with monkeypatch.context() as patch:
        # no thread can start, as during interpreter shutdown: flush() and close() deliver inline, on this thread
        patch.setattr(threading.Thread, "start", lambda self: (_ for _ in ()).throw(RuntimeError("shutdown")))
        client = client_factory(server.url, agent_config=fast(Path(tempfile.mkdtemp()), gzip_threshold_bytes=10**9))
    for _ in range(10):
        client.track_click(run_id, experiment_id, "x", metadata={"pad": "p" * 500})
    client.track_click(run_id, experiment_id, "x", metadata={"pad": "p" * 4_000})  # refused even alone
    monkeypatch.setattr(SqliteSpool, method, fail)
    assert isinstance(client.flush(timeout=3), bool)
    assert isinstance(client.stats().tracked, int)
    monkeypatch.undo()
    assert client.flush(timeout=20) is True  # and once the spool heals, everything is delivered or dead-lettered
    if client.stats().spool_quarantined:  # a "corrupt" spool is moved aside, with its events, and reported
        assert isinstance(error, SpoolCorruptError)
    else:
        assert len(server.stored_event_ids()) == 10


# -- 3. after close(), nothing reopens the spool ------------------------------------------------------------------


@settings(max_examples=8, deadline=None, suppress_health_check=FIXTURES)
@given(calls=st.lists(st.sampled_from(["stats", "flush", "close", "track"]), min_size=1, max_size=6))
def test_after_close_no_call_reopens_the_spool(server: Any, client_factory: Any, calls: list[str]) -> None:
    run_id, experiment_id = make_run(server)
    spool_dir = Path(tempfile.mkdtemp())
    config = fast(spool_dir)
    client = client_factory(server.url, agent_config=config)
    client.track_click(run_id, experiment_id, "x")
    assert client.flush(timeout=10) is True
    path = spool_file_path(config, server.url, API_KEY)
    client.close()
    assert spool_fds(path) == 0
    before = client.stats()
    for call in calls:
        if call == "stats":
            assert client.stats().sent == before.sent == 1
        elif call == "flush":
            client.flush(timeout=0.5)
        elif call == "close":
            client.close()
        else:
            client.track_click(run_id, experiment_id, "late")
        assert spool_fds(path) == 0
    stats = client.stats()
    assert stats.tracked == 1 + calls.count("track") and stats.dropped == calls.count("track")


# -- 7. close() tells the truth, and nothing tracked while it runs is lost uncounted -----------------------------


def test_a_second_close_reports_the_same_failure_as_the_first(client_factory: Any, spool_dir: Path) -> None:
    client = client_factory("http://127.0.0.1:9", agent_config=fast(spool_dir))
    client.track_click("r", "e", "x")
    assert client.close(0.3) is False  # the server is down: the event is still pending
    assert client.close(0.3) is False
    assert client.flush(0.3) is False
    assert client.stats().pending == 1


def test_close_returns_true_once_everything_was_delivered_and_says_so_again(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    client.track_click(run_id, experiment_id, "x")
    assert client.close(10) is True
    assert client.close() is True and client.flush() is True
    client.track_click(run_id, experiment_id, "late")  # dropped and counted: no longer "everything delivered"
    assert client.stats().dropped == 1 and len(server.stored_event_ids()) == 1


@pytest.mark.parametrize("producers", [1, 4])
def test_events_tracked_while_close_runs_are_delivered_or_counted(
    server: Any, client_factory: Any, spool_dir: Path, producers: int
) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    stop = threading.Event()
    returned: list[str] = []

    def produce() -> None:
        for _ in range(20_000):
            if stop.is_set():
                return
            returned.append(client.track_click(run_id, experiment_id, "x"))

    threads = [threading.Thread(target=produce) for _ in range(producers)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(returned) > 2000, timeout=10)
    client.close(timeout=2)
    wait_until(lambda: len(returned) > 4000, timeout=2)  # and they go on tracking after close()
    stop.set()
    for thread in threads:
        thread.join(10)
    wait_until(lambda: not any(t.name.startswith("promptstream-") for t in threading.enumerate()), timeout=10)
    stats = client.stats()
    stored = set(server.stored_event_ids())
    assert stats.tracked == len(returned)
    assert stats.queued == 0  # nothing stuck in memory, unaccounted for
    assert stats.sent + stats.pending + stats.dropped == stats.tracked
    # a batch in flight when close() gave up may be stored and still pending here: it is resent, and deduped, later
    assert stats.sent <= len(stored) <= stats.sent + stats.pending
    assert stored <= set(returned)


# -- 10. a failing delivery is visible: one warning, one report, one recovery line ---------------------------------


def test_a_failing_delivery_warns_once_reports_once_and_says_when_it_recovers(
    server_factory: Any, client_factory: Any, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()
    errors: list[PromptStreamError] = []
    caplog.set_level(logging.INFO, logger="promptstream")
    client = client_factory(server.url, agent_config=fast(spool_dir), on_error=errors.append)
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(5)]
    assert wait_until(lambda: client.stats().retries >= 4, timeout=20)
    stats = client.stats()
    assert stats.oldest_pending_age is not None and stats.oldest_pending_age > 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "delivery" in r.getMessage()]
    assert len(warnings) == 1
    assert server.url.split("//")[1] in warnings[0].getMessage()
    assert [type(e) for e in errors] == [APIConnectionError]
    from promptstream.server import ServerThread

    server.thread = ServerThread(server.store, [API_KEY], port=server.thread.port).start()
    assert client.flush(timeout=20) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)
    recovered = [r for r in caplog.records if r.levelno == logging.INFO and "recovered" in r.getMessage()]
    assert len(recovered) == 1
    assert len(errors) == 1
    assert client.stats().oldest_pending_age is None
    assert API_KEY not in caplog.text


@pytest.mark.parametrize("userinfo", ["someone:hunter2@", "hunter2@", "someone:hunter2%40x@"])
def test_the_failing_delivery_warning_never_shows_userinfo_or_the_key(
    client_factory: Any, spool_dir: Path, caplog: pytest.LogCaptureFixture, userinfo: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="promptstream")
    client = client_factory(f"http://{userinfo}127.0.0.1:9/api", agent_config=fast(spool_dir))
    client.track_click("run", "exp", "x")
    assert wait_until(lambda: client.stats().retries >= 1, timeout=10)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING and "delivery" in r.getMessage()]
    assert "127.0.0.1:9/api" in warning.getMessage()
    assert "hunter2" not in warning.getMessage() and API_KEY not in caplog.text
