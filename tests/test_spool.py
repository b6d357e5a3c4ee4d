"""Contract tests of the spool interface, run against both implementations (SqliteSpool and MemorySpool): dead
letters are bounded (count and bytes, oldest first, pruned ones counted), count against max_spool_bytes, can be read,
replayed and purged, and the spool accepts and acknowledges in every state."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream._agent import MemorySpool, Spool, SqliteSpool
from promptstream._agent._spool import MAX_DEAD_LETTERS, dead_letter_byte_cap

SpoolFactory = Callable[..., Spool]


@pytest.fixture(params=["sqlite", "memory"])
def make_spool(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SpoolFactory]:
    opened: list[Spool] = []

    def make(max_bytes: int, name: str = "spool") -> Spool:
        spool: Spool
        if request.param == "sqlite":
            path = tmp_path / f"{name}.sqlite3"
            spool = SqliteSpool(path, owner=f"1:{name}", max_bytes=max_bytes, lease_seconds=60)
        else:
            spool = MemorySpool(max_bytes=max_bytes)
        opened.append(spool)
        return spool

    yield make
    for spool in opened:
        spool.close()


def event(n: int, pad: int = 0) -> bytes:
    return json.dumps({"event_id": f"e{n:07d}", "pad": "x" * pad}).encode()


def reject_everything(spool: Spool, reason: str = "unknown prompt_run_id") -> int:
    """Claim and acknowledge every pending event with all of it refused, as a server would; returns how many."""
    refused = 0
    while (batch := spool.claim(1000, 10**7, "t")) is not None:
        spool.ack(batch, [(i, reason) for i in range(len(batch.seqs))])
        refused += len(batch.seqs)
    return refused


def test_dead_letters_are_bounded_in_number_oldest_pruned_first(make_spool: SpoolFactory) -> None:
    spool = make_spool(max_bytes=64 * 1024 * 1024)
    total = MAX_DEAD_LETTERS + 1_234
    for start in range(0, total, 5_000):
        spool.append([event(n) for n in range(start, min(total, start + 5_000))], 0)
        reject_everything(spool)
    counts = spool.counts()
    assert (counts.dead_lettered, counts.dead_letters_pruned, counts.pending) == (MAX_DEAD_LETTERS, 1_234, 0)
    kept = spool.dead_letters()
    assert json.loads(kept[0].payload)["event_id"] == "e0001234"  # the oldest went first
    assert json.loads(kept[-1].payload)["event_id"] == f"e{total - 1:07d}"
    assert kept[0].reason == "unknown prompt_run_id"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cap=st.integers(min_value=2_000, max_value=40_000),
    rounds=st.lists(
        st.tuples(st.lists(st.integers(0, 300), min_size=1, max_size=60), st.floats(0, 1)), min_size=1, max_size=12
    ),
)
def test_dead_letters_stay_within_their_share_of_the_cap_and_the_spool_keeps_accepting(
    make_spool: SpoolFactory, cap: int, rounds: list[tuple[list[int], float]]
) -> None:
    spool = make_spool(max_bytes=cap, name=f"s{cap}-{len(rounds)}-{sum(len(r[0]) for r in rounds)}")
    spool.purge_dead_letters()
    before = spool.counts()
    appended = refused = delivered = dropped = 0
    n = 0
    for pads, refuse_share in rounds:
        result = spool.append([event(n + i, pad) for i, pad in enumerate(pads)], 0)
        n += len(pads)
        appended += result.stored
        dropped += result.dropped
        while (batch := spool.claim(17, 10**7, "t")) is not None:
            bad = [(i, "bad") for i in range(len(batch.seqs)) if i < refuse_share * len(batch.seqs)]
            spool.ack(batch, bad)  # never raises, whatever the spool holds
            refused += len(bad)
            delivered += len(batch.seqs) - len(bad)
        counts = spool.counts()
        assert counts.dead_letter_bytes <= dead_letter_byte_cap(cap)
        assert counts.pending_bytes + counts.dead_letter_bytes <= cap
        assert counts.dead_lettered + counts.dead_letters_pruned - before.dead_letters_pruned == refused
        # with nothing pending, a small event always finds room: dead letters never use the whole cap
        probe = spool.append([event(10**6)], 0)
        assert probe.stored == 1
        batch = spool.claim(1, 10**7, "t")
        assert batch is not None
        spool.ack(batch, [])
    assert appended + dropped == n


def test_dead_letters_count_against_the_cap(make_spool: SpoolFactory) -> None:
    cap = 80_000
    spool = make_spool(max_bytes=cap)
    spool.append([event(n, 900) for n in range(10)], 0)
    reject_everything(spool)
    dead_bytes = spool.counts().dead_letter_bytes
    assert 0 < dead_bytes <= dead_letter_byte_cap(cap)
    result = spool.append([event(100 + n, 900) for n in range(200)], 0)
    assert result.stored * len(event(0, 900)) <= cap - dead_bytes < (result.stored + 1) * len(event(0, 900))


def test_dead_letters_can_be_read_replayed_and_purged(make_spool: SpoolFactory) -> None:
    spool = make_spool(max_bytes=10**6)
    spool.append([event(n) for n in range(5)], 0)
    batch = spool.claim(10, 10**7, "t")
    assert batch is not None
    spool.ack(batch, [(1, "experiment_id does not match the run's"), (3, "unknown prompt_run_id")])
    letters = spool.dead_letters()
    assert [(json.loads(d.payload)["event_id"], d.reason) for d in letters] == [
        ("e0000001", "experiment_id does not match the run's"),
        ("e0000003", "unknown prompt_run_id"),
    ]
    assert spool.replay_dead_letters() == 2
    assert spool.counts().dead_lettered == 0 and spool.counts().pending == 2
    again = spool.claim(10, 10**7, "t")
    assert again is not None and [json.loads(p)["event_id"] for p in again.payloads] == ["e0000001", "e0000003"]
    spool.ack(again, [(0, "still bad")])
    assert spool.purge_dead_letters() == 1
    counts = spool.counts()
    assert (counts.pending, counts.dead_lettered, counts.dead_letter_bytes) == (0, 0, 0)


def test_a_spool_at_its_page_ceiling_still_acknowledges_and_then_accepts(tmp_path: Path) -> None:
    """The disk (or max_page_count) leaves no page to grow into: refusals must not make the ack fail, or the batch
    is resent and new events refused for ever."""
    spool = SqliteSpool(tmp_path / "full.sqlite3", owner="1:x", max_bytes=10**8, lease_seconds=60)
    try:
        spool.append([event(n, 2000) for n in range(400)], 0)
        batch = spool.claim(1000, 10**8, "t")
        assert batch is not None
        db = spool._db
        assert db is not None
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count={pages}")  # no room to grow from here on
        spool.ack(batch, [(i, "bad") for i in range(len(batch.seqs))])
        counts = spool.counts()
        assert counts.pending == 0
        assert counts.dead_lettered + counts.dead_letters_pruned == 400
        assert spool.append([event(10**6)], 0).stored == 1
    finally:
        spool.close()


def test_an_old_spool_full_of_dead_letters_is_brought_within_the_bounds_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    spool = SqliteSpool(path, owner="1:a", max_bytes=10**8, lease_seconds=60)
    spool.append([event(n, 500) for n in range(3000)], 0)
    reject_everything(spool)
    spool.close()
    reopened = SqliteSpool(path, owner="1:b", max_bytes=400_000, lease_seconds=60)
    try:
        counts = reopened.counts()
        assert counts.dead_letter_bytes <= dead_letter_byte_cap(400_000)
        assert counts.dead_lettered + counts.dead_letters_pruned == 3000
        assert reopened.append([event(10**6)], 0).stored == 1
    finally:
        reopened.close()


def test_refusals_round_after_round_never_wedge_the_spool(make_spool: SpoolFactory) -> None:
    """Before the bounds, ~120 rounds of refused events filled a 64 KiB spool's file to its page ceiling: every ack
    failed with "database or disk is full" from then on."""
    spool = make_spool(max_bytes=64 * 1024)
    for round_ in range(200):
        stored = spool.append([event(round_ * 100 + n, 600) for n in range(100)], 0).stored
        assert stored > 0
        assert reject_everything(spool) == stored
    counts = spool.counts()
    assert counts.pending == 0 and counts.dead_letter_bytes <= dead_letter_byte_cap(64 * 1024)


def test_a_full_disk_makes_room_for_new_events_from_the_oldest_dead_letters(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "full.sqlite3", owner="1:x", max_bytes=10**8, lease_seconds=60)
    try:
        spool.append([event(n, 3000) for n in range(300)], 0)
        reject_everything(spool)
        db = spool._db
        assert db is not None
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count={pages}")  # the disk is full from here on
        result = spool.append([event(1000 + n, 3000) for n in range(40)], 0)
        assert result.stored == 40  # room came from the dead letters, not from the new events
        counts = spool.counts()
        assert counts.dead_letters_pruned > 0 and counts.dead_lettered + counts.dead_letters_pruned == 300
        assert [json.loads(d.payload)["event_id"] for d in spool.dead_letters()][-1] == "e0000299"  # newest kept
    finally:
        spool.close()
