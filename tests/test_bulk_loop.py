"""Bulk loops lose nothing: a producer that outruns the spooler waits for it (bounded) instead of dropping, while
a consumer that makes no room at all still cannot stall the producer for more than one bounded wait."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream._agent import EventQueue

from .helpers import client_env, make_run, run_child


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queue_size=st.integers(100, 5_000), events=st.integers(5_000, 30_000))
def test_a_tight_loop_that_outruns_the_spooler_drops_nothing(
    client_factory: Any, tmp_path: Path, queue_size: int, events: int
) -> None:
    # a queue far smaller than the loop: the old agent dropped all but the first spool_interval's worth
    client = client_factory("http://127.0.0.1:9", spool_dir=tmp_path / str(queue_size), max_queue_size=queue_size)
    for _ in range(events):
        client.track_click("run", "exp", "cta")
    stats = client.stats()
    assert stats.dropped == 0 and stats.tracked == events
    assert client.flush(timeout=0) is False  # nothing lost; the events wait in the spool for the server
    assert client.stats().spooled == events


def test_a_consumer_that_makes_no_room_costs_one_bounded_wait_then_drops_are_counted() -> None:
    woken = threading.Event()
    queue: EventQueue[int] = EventQueue(10, max_wait=0.2, on_full=woken.set)
    assert all(queue.put(i) for i in range(10))
    assert queue.put(10) is False and woken.is_set()  # waited up to 0.2 s, then dropped
    assert [queue.put(i) for i in range(5)] == [False] * 5  # stalled: no further waits
    assert (queue.dropped, queue.waits) == (6, 1)
    queue.give_back(queue.take(10))  # a take undone (the spool refused the chunk) is no progress
    assert queue.put(11) is False and queue.waits == 1
    assert len(queue.take(3)) == 3  # real progress: room again, and the next full queue waits again
    assert all(queue.put(i) for i in range(3))
    assert queue.offered == 10 + 1 + 5 + 1 + 3


def test_a_waiting_producer_gets_in_as_soon_as_the_consumer_takes() -> None:
    queue: EventQueue[int] = EventQueue(5, max_wait=30.0)
    for i in range(5):
        queue.put(i)
    taker = threading.Timer(0.05, lambda: queue.take(2))
    taker.start()
    assert queue.put(5) is True  # waited for the take, not for max_wait
    taker.join()
    assert queue.dropped == 0 and queue.waits == 1


def test_a_200k_event_tight_loop_with_the_default_configuration_drops_nothing(server: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    result = run_child(
        """
        import os
        from promptstream import PromptStreamClient
        client = PromptStreamClient()
        for i in range(200_000):
            client.track_click(os.environ["RUN"], os.environ["EXP"], "cta")
        stats = client.stats()
        print(stats.tracked, stats.dropped, flush=True)
        os._exit(0)  # what was spooled is delivered by the next run: not this test's subject
        """,
        client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200000", "0"]
