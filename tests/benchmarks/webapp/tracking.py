"""What the two benchmark apps share: the variant's tracker (one of ``contenders.py``'s adapters, or none), the
request handler's work (a ~2 KB JSON answer and 3 track calls with a different user id each), and the per-worker
meter of the time spent inside those 3 calls.

The variant, the sink and the spool directory come from the environment (``BENCH_VARIANT``, ``BENCH_SINK_URL``,
``BENCH_SPOOL_DIR``), set by bench.py. Under gunicorn ``--preload`` the SDKs that handle a fork themselves are built
in the master, before it, as such an app would: PromptStream's (each worker gets a fresh agent, see
docs/examples/gunicorn_app.py) and PostHog's (it rebuilds its queues and consumers in ``os.register_at_fork``).
Segment's background thread does not survive a fork, so each worker builds its own in gunicorn's ``post_fork``.
Under uvicorn every worker builds its own in the lifespan, on the event loop: PromptStream's and PostHog's async
clients (``AsyncPromptStreamClient``, ``AsyncPosthog``, which PostHog's docs name for FastAPI); Segment has none.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from contenders import CONTENDERS, EXPERIMENT_ID, KEY, RUN_ID, Contender, PostHog, PromptStream

VARIANT = os.environ.get("BENCH_VARIANT", "none")
EVENTS_PER_REQUEST = 3
# built before the fork and inherited by the workers (the SDK handles the fork itself)
BUILT_BEFORE_FORK = frozenset({"promptstream", "posthog"})


class AsyncPromptStream(PromptStream):
    """contenders.PromptStream on ``AsyncPromptStreamClient``: the same ``track_click``, an awaited ``aclose``."""

    def __init__(self, url: str, spool_dir: str) -> None:
        from promptstream import AsyncPromptStreamClient

        self.client = AsyncPromptStreamClient(KEY, base_url=url, spool_dir=spool_dir)  # type: ignore[assignment]
        self._track = self.client.track_click
        self.run_id, self.experiment_id = RUN_ID, EXPERIMENT_ID

    async def aclose(self) -> None:
        await self.client.aclose()  # type: ignore[attr-defined]


class AsyncPostHog(PostHog):
    """contenders.PostHog on ``AsyncPosthog``: ``capture`` only enqueues; its consumer is a task on the app's loop."""

    def __init__(self, url: str, spool_dir: str) -> None:
        from posthog import AsyncPosthog

        self.client = AsyncPosthog(KEY, host=url)
        self._capture = self.client.capture

    async def aclose(self) -> None:
        await self.client.shutdown()


ASYNC_ADAPTERS: dict[str, type[AsyncPromptStream | AsyncPostHog]] = {
    "promptstream": AsyncPromptStream,
    "posthog": AsyncPostHog,
}


def make_tracker(asynchronous: bool = False) -> Contender | None:
    if VARIANT == "none":
        return None
    url, spool_dir = os.environ["BENCH_SINK_URL"], os.environ["BENCH_SPOOL_DIR"]
    if asynchronous and VARIANT in ASYNC_ADAPTERS:
        return ASYNC_ADAPTERS[VARIANT](url, spool_dir)
    return CONTENDERS[VARIANT](url, spool_dir)


class Meter:
    """This worker's counters: requests served, track calls that returned, and the nanoseconds each request spent
    in its 3 track calls (one sample per request, so the driver can take percentiles and windows)."""

    def __init__(self) -> None:
        self.begin()

    def begin(self) -> None:
        self.pid = os.getpid()
        self.user_prefix = f"user-{self.pid}-"
        self.requests = 0
        self.tracked = 0
        self.track_ns = array("q")

    def report(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "variant": VARIANT,
            "requests": self.requests,
            "tracked": self.tracked,
            "track_ns": self.track_ns.tolist(),
        }


meter = Meter()
tracker: Contender | None = None


def begin_in_master() -> None:
    """At import under gunicorn --preload: build the trackers that are meant to be built before the fork."""
    global tracker
    if VARIANT in BUILT_BEFORE_FORK:
        tracker = make_tracker()


def begin_worker(asynchronous: bool = False) -> None:
    """In each worker, before it serves: zero the meter, build the tracker if the master did not."""
    global tracker
    meter.begin()
    if tracker is None:
        tracker = make_tracker(asynchronous)


def end_worker() -> None:
    if tracker is not None:
        tracker.close()


async def aend_worker() -> None:
    if isinstance(tracker, (AsyncPromptStream, AsyncPostHog)):
        await tracker.aclose()
    elif tracker is not None:
        await asyncio.to_thread(tracker.close)


def handle() -> dict[str, Any]:
    """One request's work: a ~2 KB answer (the framework serialises it) and, unless the variant is "none", 3 track
    calls, each for another user, timed together."""
    meter.requests += 1
    n = meter.requests
    answer = {
        "request": n,
        "worker": meter.pid,
        "items": [
            {
                "id": i,
                "sku": f"SKU-{n % 9973:05d}-{i:02d}",
                "name": f"Product number {i}",
                "price_cents": 1999 + 7 * i,
                "in_stock": i % 3 != 0,
                "tags": ["new", "sale", "popular"][: i % 3 + 1],
            }
            for i in range(16)
        ],
    }
    if tracker is not None:
        track, prefix = tracker.track, meter.user_prefix
        users = [f"{prefix}{n}-{k}" for k in range(EVENTS_PER_REQUEST)]
        start = time.perf_counter_ns()
        for user in users:
            track(n, user)
        meter.track_ns.append(time.perf_counter_ns() - start)
        meter.tracked += EVENTS_PER_REQUEST
    return answer
