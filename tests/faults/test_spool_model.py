"""A hypothesis state machine drives the real SQLite spool through appends, claims, acks (with rejections),
releases, splits and crashes with reopen, against a model small enough to be obviously right.

Invariants after every step: appended = delivered + dead-lettered + pruned + dropped + pending (nothing vanishes
uncounted); events leave in the order they came (FIFO, per producer); the spool never holds more than its byte cap,
dead letters included, and dead letters stay within their share of it, the oldest pruned first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from promptstream._agent import ClaimedBatch, SqliteSpool
from promptstream._agent._spool import MAX_DEAD_LETTERS, dead_letter_byte_cap

CAP = 4000  # bytes of payload: small, so the cap is hit often
_DEAD_PID = int(
    subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout
)


def payload(n: int) -> bytes:
    return json.dumps({"event_id": f"e{n:06d}", "pad": "x" * (n % 40)}).encode()


def ids(batch: ClaimedBatch) -> list[str]:
    return [json.loads(p)["event_id"] for p in batch.payloads]


class SpoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "spool.sqlite3"
        self.generation = 0
        self.spool = self._open()
        self.next_n = 0
        # the model
        self.order: list[str] = []  # every stored event, in append order
        self.available: list[str] = []  # stored, not in a batch of the live process
        self.in_flight: dict[str, list[str]] = {}  # batch id -> events, held by the live process
        self.abandoned: list[list[str]] = []  # batches of crashed processes, oldest first: resent as they were
        self.delivered: set[str] = set()
        self.dead: list[str] = []  # kept dead letters, oldest (by seq) first
        self.dead_sizes: dict[str, int] = {}
        self.pruned = 0
        self.dropped = 0
        self.appended = 0
        self.sizes: dict[str, int] = {}
        self.sent: list[str] = []
        self.batches: dict[str, ClaimedBatch] = {}

    def _open(self) -> SqliteSpool:
        # every "process" is the dead pid with its own token: its own batches are protected by the token, a crashed
        # process's are taken over because its pid is dead
        self.generation += 1
        return SqliteSpool(self.path, owner=f"{_DEAD_PID}:{self.generation}", max_bytes=CAP, lease_seconds=600)

    def _in_flight_ids(self) -> list[str]:
        # ordered by content, not by the (random) batch ids, so that hypothesis can replay its choices
        return sorted(self.in_flight, key=lambda batch_id: self.order.index(self.in_flight[batch_id][0]))

    def teardown(self) -> None:
        self.spool.close()
        self.dir.cleanup()

    @rule(count=st.integers(min_value=1, max_value=30))
    def append(self, count: int) -> None:
        rows = []
        for _ in range(count):
            rows.append(payload(self.next_n))
            self.next_n += 1
        result = self.spool.append(rows, 0)
        self.appended += count
        room = CAP - sum(self.sizes.values()) - sum(self.dead_sizes.values())
        stored = 0
        for data in rows:  # the model of "drop newest": the longest prefix that fits
            if len(data) > room:
                break
            room -= len(data)
            stored += 1
        assert (result.stored, result.dropped) == (stored, count - stored)
        for data in rows[:stored]:
            event_id = json.loads(data)["event_id"]
            self.order.append(event_id)
            self.available.append(event_id)
            self.sizes[event_id] = len(data)
        self.dropped += count - stored

    @rule(max_events=st.integers(min_value=1, max_value=25))
    def claim(self, max_events: int) -> None:
        batch = self.spool.claim(max_events, 10**6, "t")
        if self.abandoned:
            expected = self.abandoned.pop(0)
            assert batch is not None and ids(batch) == expected  # taken over exactly as it was formed
        elif not self.available:
            assert batch is None
            return
        else:
            expected = self.available[:max_events]
            assert batch is not None and ids(batch) == expected  # the oldest first
            del self.available[: len(expected)]
        assert batch is not None
        self.in_flight[batch.batch_id] = ids(batch)
        self.batches[batch.batch_id] = batch

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        batch_id = data.draw(st.sampled_from(self._in_flight_ids()))
        events = self.in_flight.pop(batch_id)
        rejected = data.draw(st.sets(st.integers(min_value=0, max_value=len(events) - 1), max_size=2))
        self.spool.ack(self.batches.pop(batch_id), [(i, "bad") for i in sorted(rejected)])
        for index, event_id in enumerate(events):
            if index in rejected:
                self.dead.append(event_id)
                self.dead_sizes[event_id] = self.sizes[event_id]
            else:
                self.delivered.add(event_id)
            self.sent.append(event_id)
            del self.sizes[event_id]
        self.dead.sort(key=self.order.index)
        while len(self.dead) > MAX_DEAD_LETTERS or sum(self.dead_sizes.values()) > dead_letter_byte_cap(CAP):
            del self.dead_sizes[self.dead.pop(0)]
            self.pruned += 1

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def fail_and_release(self, data: st.DataObject) -> None:
        batch_id = data.draw(st.sampled_from(self._in_flight_ids()))
        events = self.in_flight.pop(batch_id)
        self.spool.release(self.batches.pop(batch_id))
        self.abandoned.append(events)  # a released batch is resent as it was, before newer events
        self.abandoned.sort(key=lambda batch: self.order.index(batch[0]))

    @precondition(lambda self: any(len(e) > 1 for e in self.in_flight.values()))
    @rule(data=st.data())
    def split(self, data: st.DataObject) -> None:
        batch_id = data.draw(st.sampled_from([b for b in self._in_flight_ids() if len(self.in_flight[b]) > 1]))
        events = self.in_flight.pop(batch_id)
        halves = self.spool.split(self.batches.pop(batch_id))
        assert [i for half in halves for i in ids(half)] == events
        for half in halves:
            self.in_flight[half.batch_id] = ids(half)
            self.batches[half.batch_id] = half

    @rule()
    def crash_and_reopen(self) -> None:
        # the process dies without releasing anything; a new one opens the same file
        self.abandoned += list(self.in_flight.values())
        self.abandoned.sort(key=lambda batch: self.order.index(batch[0]))
        self.in_flight.clear()
        self.batches = {}
        self.spool = self._open()

    @invariant()
    def nothing_vanishes(self) -> None:
        counts = self.spool.counts()
        pending = len(self.available) + sum(map(len, self.in_flight.values())) + sum(map(len, self.abandoned))
        assert counts.pending == pending
        assert counts.dead_lettered == len(self.dead)
        assert counts.dead_letters_pruned == self.pruned
        assert [json.loads(d.payload)["event_id"] for d in self.spool.dead_letters()] == self.dead
        assert self.appended == len(self.delivered) + len(self.dead) + self.pruned + self.dropped + pending
        assert counts.pending_bytes == sum(self.sizes.values())
        assert counts.dead_letter_bytes == sum(self.dead_sizes.values()) <= dead_letter_byte_cap(CAP)
        assert counts.pending_bytes + counts.dead_letter_bytes <= CAP

    @invariant()
    def nothing_is_sent_twice(self) -> None:
        # (FIFO is asserted at every claim: a claim returns exactly the oldest abandoned batch, else the oldest
        # available events)
        assert len(self.sent) == len(set(self.sent))


TestSpoolModel = SpoolMachine.TestCase
TestSpoolModel.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
