"""The agent's parts alone: the spool contract (both implementations), the queue, and the sender's encoding."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from promptstream._agent import (
    ArrivalMeter,
    BatchSender,
    ClaimedBatch,
    Delivered,
    EventQueue,
    MemorySpool,
    Paused,
    PayloadChunk,
    Refused,
    Retry,
    Spool,
    SqliteSpool,
    outcome_for_status,
)
from promptstream._http import HttpTransport
from promptstream._retry import RetrySchedule, parse_retry_after

MB = 1024 * 1024


def payload(i: int, pad: int = 0) -> bytes:
    return json.dumps({"event_id": f"e{i}", "pad": "x" * pad}).encode()


def ids(batch: ClaimedBatch) -> list[str]:
    return [json.loads(p)["event_id"] for p in batch.payloads]


SpoolFactory = Callable[..., Spool]


@pytest.fixture(params=["sqlite", "memory"])
def make_spool(request: pytest.FixtureRequest, tmp_path: Path) -> SpoolFactory:
    def make(owner: str = f"{os.getpid()}:a", max_bytes: int = 10 * MB, lease_seconds: float = 60) -> Spool:
        if request.param == "memory":
            return MemorySpool(max_bytes=max_bytes)
        return SqliteSpool(tmp_path / "spool.sqlite3", owner=owner, max_bytes=max_bytes, lease_seconds=lease_seconds)

    return make


def test_claims_are_fifo_and_bounded_by_count_and_bytes(make_spool: SpoolFactory) -> None:
    spool = make_spool()
    spool.append([payload(i, pad=100) for i in range(10)], 0)
    first = spool.claim(max_events=4, max_bytes=10 * MB, sent_at="t")
    assert first is not None and ids(first) == ["e0", "e1", "e2", "e3"]
    second = spool.claim(max_events=100, max_bytes=3 * len(payload(0, 100)), sent_at="t")
    assert second is not None and ids(second) == ["e4", "e5", "e6"]
    spool.ack(first, [])
    spool.ack(second, [])
    rest = spool.claim(100, 10 * MB, "t")
    assert rest is not None and ids(rest) == ["e7", "e8", "e9"]
    spool.ack(rest, [])
    assert spool.claim(100, 10 * MB, "t") is None
    assert spool.counts().pending == 0


def test_a_single_event_larger_than_max_bytes_is_still_claimed_alone(make_spool: SpoolFactory) -> None:
    spool = make_spool()
    spool.append([payload(0, pad=5000), payload(1)], 0)
    batch = spool.claim(100, 1000, "t")
    assert batch is not None and ids(batch) == ["e0"]


def test_ack_dead_letters_rejected_indexes_and_deletes_the_rest(make_spool: SpoolFactory) -> None:
    spool = make_spool()
    spool.append([payload(i) for i in range(5)], 0)
    batch = spool.claim(100, 10 * MB, "t")
    assert batch is not None
    spool.ack(batch, [(1, "bad"), (3, "worse"), (99, "out of range is ignored")])
    counts = spool.counts()
    assert (counts.pending, counts.dead_lettered, counts.pending_bytes) == (0, 2, 0)


def test_split_keeps_order_and_gives_new_keys(make_spool: SpoolFactory) -> None:
    spool = make_spool()
    spool.append([payload(i) for i in range(5)], 0)
    batch = spool.claim(100, 10 * MB, "t")
    assert batch is not None
    left, right = spool.split(batch)
    assert ids(left) + ids(right) == [f"e{i}" for i in range(5)]
    assert len({batch.batch_id, left.batch_id, right.batch_id}) == 3
    spool.dead_letter(left, "too large")
    spool.ack(right, [])
    assert spool.counts().dead_lettered == len(left.seqs)
    assert spool.counts().pending == 0


def test_byte_cap_keeps_the_oldest_and_refuses_the_newest(make_spool: SpoolFactory) -> None:
    size = len(payload(0, pad=100))
    spool = make_spool(max_bytes=size * 3)
    result = spool.append([payload(i, pad=100) for i in range(5)], 0)
    assert (result.stored, result.dropped) == (3, 2)
    assert spool.append([payload(9, pad=100)], 0).dropped == 1
    batch = spool.claim(100, 10 * MB, "t")
    assert batch is not None
    spool.ack(batch, [])
    assert spool.append([payload(10, pad=100)], 0).stored == 1  # room again once delivered


def test_pending_through_tracks_the_flush_mark(make_spool: SpoolFactory) -> None:
    spool = make_spool()
    spool.append([payload(i) for i in range(3)], 0)
    mark = spool.last_seq()
    spool.append([payload(i) for i in range(3, 5)], 0)  # tracked after the flush began
    later = spool.last_seq()
    assert later > mark and spool.has_pending_through(mark)
    batch = spool.claim(3, 10 * MB, "t")
    assert batch is not None
    spool.ack(batch, [])
    assert not spool.has_pending_through(mark)
    assert spool.has_pending_through(later)


def test_a_released_batch_is_resent_with_the_same_key_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = SqliteSpool(path, owner=f"{os.getpid()}:a", max_bytes=MB, lease_seconds=60)
    spool.append([payload(i) for i in range(3)], 0)
    first = spool.claim(100, MB, "2026-01-01T00:00:00.000Z")
    assert first is not None
    spool.release(first)
    again = spool.claim(100, MB, "a later sent_at is ignored")
    assert again is not None
    assert (again.batch_id, again.sent_at, again.payloads) == (first.batch_id, first.sent_at, first.payloads)


def test_a_live_lease_is_respected_and_a_dead_owners_batch_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ghost = SqliteSpool(path, owner=f"{int(dead_pid.stdout)}:ghost", max_bytes=MB, lease_seconds=600)
    live = SqliteSpool(path, owner=f"{os.getppid()}:live", max_bytes=MB, lease_seconds=600)
    me = SqliteSpool(path, owner=f"{os.getpid()}:me", max_bytes=MB, lease_seconds=600)
    ghost.append([payload(0)], 0)
    live.append([payload(1)], 0)
    live_batch = live.claim(1, MB, "t")  # before the ghost's batch exists, or the live one would take it over too
    ghost_batch = ghost.claim(1, MB, "t")
    assert ghost_batch is not None and live_batch is not None
    taken = me.claim(100, MB, "t")
    assert taken is not None and taken.batch_id == ghost_batch.batch_id  # its owner is dead
    assert me.claim(100, MB, "t") is None  # the live owner's lease stands
    assert not ghost.renew(ghost_batch)  # the dead owner could not send it any more


def test_an_expired_lease_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    slow = SqliteSpool(path, owner=f"{os.getppid()}:slow", max_bytes=MB, lease_seconds=0.05)
    other = SqliteSpool(path, owner=f"{os.getpid()}:other", max_bytes=MB, lease_seconds=60)
    slow.append([payload(0)], 0)
    batch = slow.claim(1, MB, "t")
    assert batch is not None
    deadline = time.monotonic() + 5
    taken = None
    while taken is None and time.monotonic() < deadline:
        taken = other.claim(1, MB, "t")
    assert taken is not None and taken.batch_id == batch.batch_id


@pytest.mark.parametrize("from_blob", [True, False], ids=["json_each", "values-fallback"])
def test_both_insert_paths_store_exact_bytes_in_order(tmp_path: Path, from_blob: bool) -> None:
    spool = SqliteSpool(tmp_path / "spool.sqlite3", owner=f"{os.getpid()}:a", max_bytes=100 * MB, lease_seconds=60)
    spool._fast_append = from_blob
    payloads = [payload(i, pad=i % 7) + bytes([0, 255, i % 256]) for i in range(25_000)]  # binary-safe, > 2 statements
    assert spool.append(payloads, 0).stored == 25_000
    seen: list[bytes] = []
    while (batch := spool.claim(10_000, 100 * MB, "t")) is not None:
        seen += batch.payloads
        spool.ack(batch, [])
    assert seen == payloads


SCHEMA_1 = """
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, created_ms INTEGER NOT NULL, size INTEGER NOT NULL,
                     payload BLOB NOT NULL, batch_id TEXT);
CREATE INDEX events_by_batch ON events(batch_id, seq);
CREATE TABLE batches (id TEXT PRIMARY KEY, sent_at TEXT NOT NULL, bytes INTEGER NOT NULL, lease_owner TEXT,
                      lease_until_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE dead_letters (seq INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, payload BLOB NOT NULL,
                           reason TEXT NOT NULL, dead_at_ms INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
PRAGMA application_id=1347638352; PRAGMA user_version=1;
"""


def test_a_schema_1_backlog_is_migrated_and_sent_in_full(tmp_path: Path) -> None:
    """A desktop tool upgraded over a backlog (part of it claimed under schema 1) sends every event afterwards."""
    import sqlite3

    path = tmp_path / "spool.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_1)
    with old:
        for i in range(10):
            data = payload(i)
            old.execute(
                "INSERT INTO events (created_ms, size, payload, batch_id) VALUES (?, ?, ?, ?)",
                (0, len(data), data, "old-batch" if i < 4 else None),
            )
        old.execute("INSERT INTO batches VALUES ('old-batch', 't', 1, 'gone:1', 0, 2)")
        old.execute("INSERT INTO meta VALUES ('pending_bytes', ?)", (sum(len(payload(i)) for i in range(10)),))
    old.close()

    spool = SqliteSpool(path, owner=f"{os.getpid()}:a", max_bytes=10 * MB, lease_seconds=60)
    assert not spool.quarantined
    batch = spool.claim(100, MB, "t")
    assert batch is not None and ids(batch) == [f"e{i}" for i in range(10)]
    spool.ack(batch, [])
    assert spool.counts().pending == 0 and spool.counts().pending_bytes == 0
    spool.append([payload(10)], 0)  # and the migrated file takes new events
    again = spool.claim(100, MB, "t")
    assert again is not None and ids(again) == ["e10"]


def test_the_wal_is_truncated_when_the_spool_drains(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = SqliteSpool(path, owner=f"{os.getpid()}:a", max_bytes=100 * MB, lease_seconds=60)
    spool.append([payload(i, pad=500) for i in range(5000)], 0)
    while (batch := spool.claim(1000, 100 * MB, "t")) is not None:
        spool.ack(batch, [])
    spool.compact_if_empty()
    assert Path(f"{path}-wal").stat().st_size == 0
    assert spool.integrity_ok()


def test_appends_leave_checkpoints_to_the_spooler_until_the_valve(tmp_path: Path) -> None:
    # SQLite's default would checkpoint inside the append that takes the WAL past 1,000 pages (16 MiB here), and a
    # checkpointing append is what let bursts outrun the spooler; now only checkpoint_if_due() (or the valve) does it.
    path, wal = tmp_path / "spool.sqlite3", tmp_path / "spool.sqlite3-wal"
    spool = SqliteSpool(path, owner=f"{os.getpid()}:a", max_bytes=100 * MB, lease_seconds=60)
    assert not spool.checkpoint_if_due()  # nothing written yet
    chunk_of_8_mib = [payload(i, pad=900) for i in range(9_000)]
    for _ in range(3):
        spool.append(chunk_of_8_mib, 0)
    assert wal.stat().st_size > 24 * MB  # three chunks in the WAL, none checkpointed by an append

    assert spool.checkpoint_if_due()
    assert not spool.checkpoint_if_due()  # nothing new since
    spool.append([payload(0)], 0)  # the next write starts the WAL over and trims it (journal_size_limit, 4 MiB)
    assert wal.stat().st_size <= 4 * MB
    assert spool.counts().pending == 27_001
    assert spool.integrity_ok()


@pytest.mark.parametrize(("max_bytes", "valve_mb"), [(4 * MB, 16), (128 * MB, 256), (4096 * MB, 512)])
def test_the_wal_valve_follows_the_spool_cap(tmp_path: Path, max_bytes: int, valve_mb: int) -> None:
    """A producer that never lets the spooler catch up still gets checkpoints: SQLite's own, at twice the cap."""
    spool = SqliteSpool(tmp_path / "spool.sqlite3", owner=f"{os.getpid()}:a", max_bytes=max_bytes, lease_seconds=60)
    with spool._using_connection() as db:
        (pages,) = db.execute("PRAGMA wal_autocheckpoint").fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    assert pages * page_size == valve_mb * MB


@pytest.mark.parametrize("size", [0, 1, 7])
def test_a_payload_chunk_is_the_sequence_of_its_payloads(size: int) -> None:
    payloads = [payload(i, pad=i * 3) for i in range(size)]
    chunk = PayloadChunk(payloads)
    assert len(chunk) == size and list(chunk) == payloads
    assert chunk.blob == b"".join(payloads) and list(chunk.lengths) == [len(p) for p in payloads]
    for index in range(-size, size):
        assert chunk[index] == payloads[index]
    for bad in (size, -size - 1):
        with pytest.raises(IndexError):
            chunk[bad]
    for part in (
        slice(None, 3),
        slice(2, None),
        slice(1, -1),
        slice(5, 2),
        slice(None, None, 2),
        slice(None, None, -1),
    ):
        sliced = chunk[part]
        assert isinstance(sliced, PayloadChunk) and list(sliced) == payloads[part], part
        assert sliced.blob == b"".join(payloads[part])


def test_both_spools_store_a_payload_chunk_like_the_payloads(make_spool: SpoolFactory) -> None:
    spool = make_spool(max_bytes=len(payload(0)) * 4)
    result = spool.append(PayloadChunk([payload(i) for i in range(6)]), 0)  # the cap takes a prefix of the chunk
    assert (result.stored, result.dropped) == (4, 2)
    batch = spool.claim(100, MB, "t")
    assert batch is not None and ids(batch) == ["e0", "e1", "e2", "e3"]


def test_queue_is_fifo_bounded_and_counts_drops() -> None:
    queue: EventQueue[int] = EventQueue(max_size=3)
    assert [queue.put(i) for i in range(5)] == [True, True, True, False, False]
    assert queue.dropped == 2
    taken = queue.take(2)
    assert taken == [0, 1] and queue.taken == 2
    queue.give_back(taken)
    assert queue.take(10) == [0, 1, 2] and queue.taken == 3 and len(queue) == 0


def batch_of(n: int, pad: int = 0) -> ClaimedBatch:
    payloads = tuple(payload(i, pad) for i in range(n))
    return ClaimedBatch("key-1", "2026-01-01T00:00:00.000Z", tuple(range(n)), payloads, 0)


def test_queue_counts_every_item_offered_whatever_became_of_it() -> None:
    queue: EventQueue[int] = EventQueue(max_size=2)
    for i in range(3):
        queue.put(i)  # the third is refused
    taken = queue.take(1)
    assert (queue.offered, queue.taken, len(queue), queue.dropped) == (3, 1, 1, 1)
    queue.give_back(taken)
    assert queue.offered == 3


def test_the_arrival_meter_needs_a_full_window_to_tell_a_lull_from_a_burst() -> None:
    meter = ArrivalMeter(0.05, now=0.0)
    assert meter.rate(1_000, now=0.01) is None  # too short: the window goes on
    assert meter.rate(50_000, now=0.1) == pytest.approx(500_000)  # a burst: 50,000 in 100 ms
    # the queue ran dry for a moment inside the burst: nothing new in 1 ms says nothing yet
    assert meter.rate(50_000, now=0.101) is None
    assert meter.rate(51_000, now=0.2) == pytest.approx(10_000)  # 1,000 in the 100 ms since: a lull
    assert meter.rate(51_000, now=1.2) == 0.0


def test_sender_bodies_are_valid_deterministic_and_gzipped_above_the_threshold() -> None:
    transport = HttpTransport("http://127.0.0.1:9", "k", httpx.Timeout(1))
    sender = BatchSender(transport, gzip_threshold=1000)
    small_body, small_headers = sender.encode(batch_of(2))
    assert json.loads(small_body) == {
        "sent_at": "2026-01-01T00:00:00.000Z",
        "events": [json.loads(payload(0)), json.loads(payload(1))],
    }
    assert small_headers["Idempotency-Key"] == "key-1" and "Content-Encoding" not in small_headers
    big = batch_of(50, pad=100)
    body, headers = sender.encode(big)
    assert headers["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(body))["events"]) == 50
    assert sender.encode(big) == (body, headers)  # a retry sends the very same bytes
    packed, packed_headers = BatchSender(transport, encoding="msgpack", gzip_threshold=10**9).encode(batch_of(2))
    assert packed_headers["Content-Type"] == "application/msgpack"
    assert msgspec.msgpack.decode(packed)["events"][1]["event_id"] == "e1"


@pytest.mark.parametrize(
    ("status", "headers", "kind"),
    [
        (200, {}, Delivered),
        (408, {}, Retry),
        (429, {"Retry-After": "7"}, Retry),
        (500, {}, Retry),
        (503, {}, Retry),
        (400, {}, Refused),
        (413, {}, Refused),
        (422, {}, Refused),
        (401, {}, Paused),
        (403, {}, Paused),
        (404, {}, Paused),
    ],
)
def test_sender_classifies_every_status(status: int, headers: dict[str, str], kind: type[Any]) -> None:
    body = b'{"accepted": 1, "duplicates": 0, "rejected": []}' if status == 200 else b"{}"
    outcome = outcome_for_status(httpx.Response(status, headers=headers, content=body))
    assert isinstance(outcome, kind)
    if status == 429:
        assert isinstance(outcome, Retry) and outcome.retry_after == 7


def test_backoff_is_capped_jittered_and_respects_retry_after() -> None:
    schedule = RetrySchedule(first=0.5, cap=4.0)
    delays = [schedule.next_delay() for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 40  # full jitter: spread out, not a fixed ladder
    assert schedule.next_delay(retry_after=30) == 30


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("Thu, 01 Jan 2026 00:00:10 GMT", 10.0),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=1767225600.0) == expected
