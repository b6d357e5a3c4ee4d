"""Bad networks (latency, bandwidth, hung and black-holed connections, resets), full and broken disks, a stray
-wal, and clock jumps. track_* must never notice; counts come from the reference server's own database."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from promptstream import PromptStreamClient
from promptstream._agent import SqliteSpool, spool_file_path

from ..helpers import API_KEY, client_env, fast, make_run, run_child, spooled_event_ids, wait_until
from .proxy import FaultProxy


def p99_track_latency(client: PromptStreamClient, run_id: str, experiment_id: str, n: int = 20_000) -> float:
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        start = clock()
        client.track_click(run_id, experiment_id, "x")
        samples.append(clock() - start)
    samples.sort()
    return samples[int(n * 0.99)]


@pytest.mark.parametrize(
    ("fault", "value"),
    [("latency", 2.0), ("bandwidth", 256.0), ("hang", True), ("blackhole", True), ("reset_probability", 0.5)],
)
def test_a_bad_network_never_reaches_track_and_delivery_recovers(
    server: Any, client_factory: Any, spool_dir: Path, tmp_path: Path, fault: str, value: object
) -> None:
    run_id, experiment_id = make_run(server)
    threads_before = threading.active_count()
    with FaultProxy(server.thread.port) as proxy:
        healthy = client_factory(server.url, agent_config=fast(tmp_path / "healthy-spool"))
        baseline = p99_track_latency(healthy, run_id, experiment_id)
        assert healthy.flush(timeout=30)
        setattr(proxy.faults, fault, value)
        client = client_factory(proxy.url, timeout=1.0, agent_config=fast(spool_dir, batch_max_events=200))
        disturbed = p99_track_latency(client, run_id, experiment_id)
        ids_during = [client.track_click(run_id, experiment_id, "during") for _ in range(300)]
        if fault == "reset_probability":
            assert wait_until(lambda: proxy.resets > 0, timeout=20)  # answers were cut mid-body
        else:
            assert wait_until(lambda: client.stats().retries > 0, timeout=20)  # timeouts fired
        setattr(proxy.faults, fault, type(value)())  # the network heals: 0, 0.0 or False
        assert client.flush(timeout=60) is True
        healthy.close()
        client.close()
    stored = set(server.stored_event_ids())
    assert set(ids_during) <= stored
    assert server.store.count("events") == 40_000 + 300  # two runs of 20,000 plus 300, each stored once
    ratio = disturbed / baseline
    print(f"\n{fault}={value}: track_click p99 {ratio:.2f}x the undisturbed run's, retries {client.stats().retries}")
    assert ratio < 5  # the caller does not feel the network (generous: p99 of a microsecond call is noisy)
    assert wait_until(lambda: threading.active_count() <= threads_before, timeout=10), threading.enumerate()
    if fault == "reset_probability":  # resends after a cut carried their batch's key again
        keys = [row["idempotency_key"] for row in server.store.batch_log()]
        assert len(keys) > len(set(keys))


DISK_FULL_PRODUCER = """
    import json, os, resource, signal
    from promptstream import PromptStreamClient, AgentConfig
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    client = PromptStreamClient(agent_config=AgentConfig(
        spool_dir=os.environ["PROMPTSTREAM_SPOOL_DIR"], max_queue_size=20_000, shutdown_timeout=0.2))
    run, exp = os.environ["RUN"], os.environ["EXP"]
    client.track_click(run, exp, "warm-up")
    client.flush(timeout=1)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, hard))  # the disk is full at 1 MiB per file
    for i in range(60_000):  # more than the disk, the queue (20,000) and one spool chunk (20,000) can hold
        client.track_click(run, exp, "full", metadata={"i": i, "pad": "x" * 100})
    client.flush(timeout=2)
    full = client.stats()
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space returns
    for i in range(1_000):
        client.track_click(run, exp, "after")
    client.flush(timeout=5)
    after = client.stats()
    print(json.dumps({name: [getattr(s, name) for s in (full, after)]
                      for name in ("tracked", "spooled", "dropped", "queued", "last_error")}))
"""


def test_a_full_disk_is_counted_never_raised_and_writes_resume_when_space_returns(
    server_factory: Any, spool_dir: Path
) -> None:
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()  # nothing leaves the spool: it fills
    result = run_child(DISK_FULL_PRODUCER, client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    figures = json.loads(result.stdout)
    (tracked_full, tracked_after), (spooled_full, spooled_after) = figures["tracked"], figures["spooled"]
    dropped_full, dropped_after = figures["dropped"]
    queued_full, queued_after = figures["queued"]
    assert tracked_full == 60_001 and tracked_after == 61_001
    assert dropped_full > 0  # the disk refused: the policy applied, and counted
    assert spooled_full + dropped_full + queued_full == tracked_full  # every event accounted for
    assert spooled_after > spooled_full  # writes resumed when space returned
    assert queued_after == 0  # and nothing was left behind in memory
    assert spooled_after + dropped_after == tracked_after
    server.thread.start()
    drain = run_child(
        "from promptstream import PromptStreamClient\nc = PromptStreamClient(); print(c.flush(timeout=60))",
        client_env(server.url, spool_dir),
    )
    assert drain.stdout.strip() == "True", drain.stderr
    assert server.store.count("events") == spooled_after
    print(
        f"\ndisk full: {spooled_full} spooled, {dropped_full} dropped, {queued_full} waiting in memory; "
        f"after space returned {spooled_after} spooled; last error: {figures['last_error'][0]}"
    )


def test_a_stray_wal_does_not_crash_the_host(server: Any, client_factory: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    config = fast(spool_dir)
    path = spool_file_path(config, server.url, API_KEY)
    spool = SqliteSpool(path, owner="1:old", max_bytes=10**7, lease_seconds=60)
    spool.append([json.dumps({"event_id": f"old-{i}"}).encode() for i in range(10)], 0)
    spool.close()
    Path(f"{path}-wal").write_bytes(os.urandom(64 * 1024))  # another database's WAL, or garbage
    client = client_factory(server.url, agent_config=config)
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(20)]
    assert client.flush(timeout=10) is True
    assert set(ids) <= set(server.stored_event_ids())
    stats = client.stats()
    # SQLite ignores a WAL whose header does not match: the spool is intact and its old events are sent (the
    # server rejects them, unknown run, so they are dead-lettered: counted, not lost)
    assert stats.spool_quarantined == 0 and stats.rejected == 10


def test_a_lease_from_a_clock_that_jumped_back_does_not_block_the_spool(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    live_owner = f"{os.getppid()}:other"  # a live process
    other = SqliteSpool(path, owner=live_owner, max_bytes=10**7, lease_seconds=60)
    other.append([b'{"event_id":"a"}'], 0)
    batch = other.claim(10, 10**6, "t")
    assert batch is not None
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE batches SET lease_until_ms = lease_until_ms + 86400000")  # a day ahead
    db.close()
    me = SqliteSpool(path, owner=f"{os.getpid()}:me", max_bytes=10**7, lease_seconds=60)
    taken = me.claim(10, 10**6, "t")
    assert taken is not None and taken.batch_id == batch.batch_id


def test_wall_clock_jumps_neither_purge_nor_stall_delivery(
    server: Any, client_factory: Any, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    real_time_ns = time.time_ns
    ids = []
    for jump_days in (0, 1, -1, 30, -30):
        monkeypatch.setattr(time, "time_ns", lambda j=jump_days: real_time_ns() + j * 86_400 * 10**9)
        ids += [client.track_click(run_id, experiment_id, f"jump{jump_days}") for _ in range(100)]
        assert client.flush(timeout=10) is True
    monkeypatch.setattr(time, "time_ns", real_time_ns)
    assert sorted(server.stored_event_ids()) == sorted(ids)
    assert spooled_event_ids(spool_dir) == set()
