"""Outages and refusals: a long outage with a million events, 429 with and without Retry-After, flapping 5xx, and
whole batches refused with 422. Counts come from the reference server's own database."""

from __future__ import annotations

import gzip
import itertools
import json
import statistics
import threading
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..helpers import FaultInjector, client_env, fast, make_run, run_child, spooled_event_ids

OUTAGE_PRODUCER = """
    import json, os
    from promptstream import PromptStreamClient, AgentConfig

    def memory_kib(field):
        # VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child would report its parent's peak
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

    client = PromptStreamClient(agent_config=AgentConfig(
        spool_dir=os.environ["PROMPTSTREAM_SPOOL_DIR"], max_spool_bytes=int(os.environ["CAP"]), shutdown_timeout=0.5))
    idle_rss = memory_kib("VmRSS")
    run, exp = os.environ["RUN"], os.environ["EXP"]
    for i in range(int(os.environ["N"])):
        client.track_click(run, exp, "cta", metadata={"i": i, "page": "home", "ab": True})
    client.flush(timeout=30)  # cannot deliver (server down): this only makes sure everything reached the spool
    stats = client.stats()
    print(json.dumps({"tracked": stats.tracked, "spooled": stats.spooled, "dropped": stats.dropped,
                      "queued": stats.queued, "idle_kib": idle_rss, "peak_kib": memory_kib("VmHWM"),
                      "path": stats.spool_path}))
"""


@pytest.mark.parametrize(
    "n",
    [
        pytest.param(200_000, id="200k"),
        pytest.param(1_000_000, id="1M", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
def test_long_outage_keeps_memory_flat_respects_the_cap_and_drains_completely(
    server_factory: Any, spool_dir: Path, n: int
) -> None:
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()
    cap = 16 * 1024 * 1024
    result = run_child(
        OUTAGE_PRODUCER,
        client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id, N=n, CAP=cap),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    # every event is accounted for, exactly: spooled or dropped (and counted), none silently gone
    assert figures["tracked"] == n
    assert figures["spooled"] + figures["dropped"] == n and figures["queued"] == 0
    spool = Path(figures["path"])
    assert spool.stat().st_size <= 3 * cap + 8 * 1024 * 1024  # the hard page ceiling behind the byte cap
    pending = spooled_event_ids(spool_dir)
    assert len(pending) == figures["spooled"]

    server.thread.start()
    drain = run_child(
        "from promptstream import PromptStreamClient\nc = PromptStreamClient(); print(c.flush(timeout=240))",
        client_env(server.url, spool_dir),
        timeout=300,
    )
    assert drain.stdout.strip() == "True", drain.stderr
    assert set(server.stored_event_ids()) == pending
    growth_mib = (figures["peak_kib"] - figures["idle_kib"]) / 1024
    print(
        f"\noutage, {n:,} events: spooled {figures['spooled']:,}, dropped at the cap {figures['dropped']:,}, "
        f"RSS idle {figures['idle_kib'] / 1024:.0f} MiB, peak {figures['peak_kib'] / 1024:.0f} MiB "
        f"(+{growth_mib:.0f} MiB), spool file {spool.stat().st_size / 2**20:.1f} MiB, all {len(pending):,} drained"
    )
    assert growth_mib < 100  # the backlog lives in the spool; memory holds at most the bounded queue


def batch_requests(injector: FaultInjector) -> list[float]:
    return list(injector.requests)


def test_429_retry_after_is_never_undercut_and_nothing_is_dropped(
    server_factory: Any, client_factory: Any, spool_dir: Path
) -> None:
    injectors: list[FaultInjector] = []

    def wrap(app: Any) -> FaultInjector:
        injectors.append(
            FaultInjector(app, first_n=3, status=429, headers={"Retry-After": "1"}, only_path="/v1/events/batch")
        )
        return injectors[0]

    server = server_factory(wrap=wrap)
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(500)]
    assert client.flush(timeout=30) is True
    times = batch_requests(injectors[0])
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[:4])]
    assert len(gaps) == 3 and all(gap >= 1.0 for gap in gaps), gaps  # no request before the server's deadline
    assert sorted(server.stored_event_ids()) == sorted(ids)
    assert client.stats().dropped == 0


def test_429_without_retry_after_backs_off_and_delivers(
    server_factory: Any, client_factory: Any, spool_dir: Path
) -> None:
    server = server_factory(wrap=lambda app: FaultInjector(app, first_n=4, status=429, only_path="/v1/events/batch"))
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(500)]
    assert client.flush(timeout=30) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)
    assert client.stats().retries == 4 and client.stats().dropped == 0


def test_flapping_5xx_backoff_is_capped_jittered_and_bounded(
    server_factory: Any, client_factory: Any, spool_dir: Path
) -> None:
    injectors: list[FaultInjector] = []

    def wrap(app: Any) -> FaultInjector:
        injectors.append(FaultInjector(app, probability=1.0, status=503, only_path="/v1/events/batch"))
        return injectors[0]

    server = server_factory(wrap=wrap)
    run_id, experiment_id = make_run(server)
    # production backoff settings (0.5 s doubling, full jitter), with the cap lowered to 4 s so the test sees it
    client = client_factory(server.url, agent_config=fast(spool_dir, max_backoff=4.0))
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(200)]
    window = 12.0
    threading.Event().wait(window)  # the measurement itself: watch the client against a failing server this long
    times = batch_requests(injectors[0])
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    per_minute = len(times) * 60 / window
    print(
        f"\nflapping 503 for {window:.0f} s: {len(times)} requests ({per_minute:.0f}/min), "
        f"gaps min {min(gaps):.2f} s, median {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s"
    )
    assert max(gaps) <= 4.0 + 0.5  # capped (plus scheduling slack)
    assert len({round(gap, 3) for gap in gaps}) == len(gaps)  # jittered: no two waits alike
    assert per_minute <= 120  # bounded: a fleet of clients cannot hammer a failing server
    injectors[0].probability = 0.0  # the server heals
    assert client.flush(timeout=30) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)
    assert client.stats().dropped == 0


class PoisonRefuser:
    """Refuses, with a 422 for the whole batch, any batch that contains an event labelled "poison"."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/events/batch":
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        plain = gzip.decompress(body) if dict(scope["headers"]).get(b"content-encoding") == b"gzip" else body
        if b'"label":"poison"' in plain:
            self.refused += 1
            payload = json.dumps({"error": {"type": "invalid_request", "message": "poison"}}).encode()
            await send(
                {"type": "http.response.start", "status": 422, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def test_whole_batch_422s_are_bisected_to_the_poison_events(
    server_factory: Any, client_factory: Any, spool_dir: Path
) -> None:
    refusers: list[PoisonRefuser] = []
    server = server_factory(wrap=lambda app: refusers.append(PoisonRefuser(app)) or refusers[0])
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir, batch_max_events=200))
    good, poison = [], []
    for i in range(600):
        if i in (17, 350, 351):
            poison.append(client.track_click(run_id, experiment_id, "poison"))
        else:
            good.append(client.track_click(run_id, experiment_id, "fine"))
    assert client.flush(timeout=30) is True
    assert sorted(server.stored_event_ids()) == sorted(good)
    stats = client.stats()
    assert (stats.rejected, stats.dead_lettered, stats.pending) == (3, 3, 0)
    print(f"\n3 poison events in 600: isolated after {refusers[0].refused} refused requests")
