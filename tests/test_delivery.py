"""The tracking agent's delivery guarantee, end to end against the real server, with exact counts taken from the
server's own database (not from the client's counters)."""

from __future__ import annotations

import logging
import os
import signal
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from promptstream._agent import AppendResult, SpoolUnavailableError, SqliteSpool, spool_file_path

from .faults.proxy import FaultProxy
from .helpers import (
    API_KEY,
    FaultInjector,
    client_env,
    fast,
    make_run,
    run_child,
    spawn_child,
    spooled_event_ids,
    total_duplicates,
    track_many,
    wait_until,
)


def test_n_events_tracked_are_n_distinct_events_stored(server: Any, client_factory: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    ids = track_many(client, run_id, experiment_id, 5000)
    assert client.flush(timeout=30) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)
    stats = client.stats()
    assert (stats.tracked, stats.spooled, stats.sent, stats.pending, stats.dropped) == (5000, 5000, 5000, 0, 0)
    assert total_duplicates(server) == 0


def test_stored_events_keep_every_field(server: Any, client_factory: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    event_id = client.track_click(run_id, experiment_id, "cta", "user-1", "email", {"pos": [1, 2], "a": "é"})
    assert client.flush(10)
    db = server.database()  # reading the server's own table
    row = db.execute(
        "SELECT type, label, source, metadata, external_user_id FROM events WHERE event_id = ?", (event_id,)
    ).fetchone()
    db.close()
    assert row == ("click", "cta", "email", '{"pos": [1, 2], "a": "\\u00e9"}', "user-1")


def test_server_down_then_up_delivers_everything(server_factory: Any, client_factory: Any, spool_dir: Path) -> None:
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()
    client = client_factory(server.url, agent_config=fast(spool_dir))
    ids = track_many(client, run_id, experiment_id, 2000)
    assert client.flush(timeout=0.5) is False  # nobody to deliver to
    assert wait_until(lambda: client.stats().retries > 0)
    assert client.stats().pending == 2000
    server.thread.start()
    assert client.flush(timeout=30) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)


def test_flaky_server_and_cut_connections_deliver_everything_exactly_once(
    server_factory: Any, client_factory: Any, spool_dir: Path
) -> None:
    injectors: list[FaultInjector] = []

    def wrap(app: Any) -> FaultInjector:
        # 30% of batch requests answered 503, half of those after the server stored the batch
        injectors.append(FaultInjector(app, probability=0.3, after_processing=True, only_path="/v1/events/batch"))
        return injectors[0]

    server = server_factory(wrap=wrap)
    run_id, experiment_id = make_run(server)
    with FaultProxy(server.thread.port) as proxy:
        proxy.faults.reset_probability = 0.1  # 10% of answers cut mid-body with a TCP reset
        client = client_factory(proxy.url, agent_config=fast(spool_dir, batch_max_events=100))
        ids = track_many(client, run_id, experiment_id, 5000)
        assert client.flush(timeout=60) is True
    assert injectors[0].faults > 0 and proxy.resets > 0
    stored = server.stored_event_ids()
    assert len(stored) == len(set(stored)) == 5000
    assert set(stored) == set(ids)
    # every retry reused its batch's key: the server saw the same keys again and answered from its record
    keys = [row["idempotency_key"] for row in server.store.batch_log()]
    assert len(keys) > len(set(keys))
    assert client.stats().retries > 0


def test_events_spooled_by_a_sigkilled_process_are_delivered_by_the_next(
    server_factory: Any, spool_dir: Path, tmp_path: Path, children: list[Any]
) -> None:
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()  # nothing is delivered while the child runs: what survives is only in the spool
    ids_file = tmp_path / "tracked.txt"
    child = spawn_child(
        """
        import os
        from promptstream import PromptStreamClient
        client = PromptStreamClient()
        with open(os.environ["IDS_FILE"], "w", buffering=1) as out:
            i = 0
            while True:
                out.write(client.track_click(os.environ["RUN"], os.environ["EXP"], "cta") + "\\n")
                i += 1
                if i == 3000:
                    print("tracked", flush=True)
        """,
        client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id, IDS_FILE=ids_file),
    )
    children.append(child)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "tracked"
    assert wait_until(lambda: len(spooled_event_ids(spool_dir)) >= 1000, timeout=20)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    spooled = spooled_event_ids(spool_dir)
    tracked = set(ids_file.read_text().split())
    # the one event being recorded at the moment of the kill may be spooled but not yet written to the file
    assert len(spooled - tracked) <= 1

    server.thread.start()
    result = run_child(
        "from promptstream import PromptStreamClient\nc = PromptStreamClient(); print(c.flush(timeout=30)); c.close()",
        client_env(server.url, spool_dir),
    )
    assert result.stdout.strip() == "True", result.stderr
    assert set(server.stored_event_ids()) == spooled
    print(f"kill -9: tracked {len(tracked)}, spooled {len(spooled)}, lost in memory {len(tracked - spooled)}")


def test_a_short_script_that_never_flushes_delivers_at_exit(server: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    result = run_child(
        """
        import os
        from promptstream import PromptStreamClient
        client = PromptStreamClient()
        for _ in range(500):
            print(client.track_conversion(os.environ["RUN"], os.environ["EXP"]))
        """,
        client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id),
    )
    assert result.returncode == 0, result.stderr
    assert sorted(server.stored_event_ids()) == sorted(result.stdout.split())


def test_exit_with_the_server_down_waits_at_most_shutdown_timeout_and_the_next_run_delivers(
    server_factory: Any, spool_dir: Path
) -> None:
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()
    result = run_child(
        """
        import os, time
        from promptstream import PromptStreamClient
        client = PromptStreamClient(shutdown_timeout=0.5)
        for _ in range(300):
            print(client.track_click(os.environ["RUN"], os.environ["EXP"], "x"))
        """,
        client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id),
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    tracked = set(result.stdout.split())
    assert spooled_event_ids(spool_dir) == tracked
    server.thread.start()
    nxt = run_child(
        "from promptstream import PromptStreamClient\nPromptStreamClient().close(timeout=20)",
        client_env(server.url, spool_dir),
    )
    assert nxt.returncode == 0, nxt.stderr
    assert set(server.stored_event_ids()) == tracked


def test_four_processes_sharing_one_spool_store_every_event_exactly_once(
    server: Any, spool_dir: Path, children: list[Any]
) -> None:
    run_id, experiment_id = make_run(server)
    code = """
        import os
        from promptstream import PromptStreamClient, AgentConfig
        client = PromptStreamClient(agent_config=AgentConfig(
            spool_dir=os.environ["PROMPTSTREAM_SPOOL_DIR"], flush_interval=0.02, batch_max_events=50))
        ids = [client.track_click(os.environ["RUN"], os.environ["EXP"], "x") for _ in range(2500)]
        ok = client.flush(timeout=60)
        print("\\n".join(ids))
        print("FLUSHED" if ok else "TIMEOUT")
        client.close()
    """
    env = client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id)
    children.extend(spawn_child(code, env) for _ in range(4))
    tracked: list[str] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        lines = out.split()
        assert lines[-1] == "FLUSHED", err
        tracked += lines[:-1]
    assert len(tracked) == 10_000
    assert sorted(server.stored_event_ids()) == sorted(tracked)
    assert total_duplicates(server) == 0  # no batch was ever sent by two processes


# Python 3.12+ warns about fork() in a threaded process: that is exactly the gunicorn --preload case tested here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_after_fork_parent_and_child_both_deliver(server: Any, client_factory: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    before = track_many(client, run_id, experiment_id, 300)  # some may still be queued at fork
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own agent, never the parent's queue, connection or threads
        code = 1
        try:
            os.close(read_fd)
            child_ids = track_many(client, run_id, experiment_id, 200)
            ok = client.flush(timeout=30)
            os.write(write_fd, ("\n".join(child_ids) + "\n").encode())
            code = 0 if ok and client.stats().tracked == 200 else 2
        finally:
            os._exit(code)
    os.close(write_fd)
    after = track_many(client, run_id, experiment_id, 300)
    assert client.flush(timeout=30) is True
    with os.fdopen(read_fd) as pipe:
        child_ids = pipe.read().split()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(server.stored_event_ids()) == sorted(before + after + child_ids)
    assert total_duplicates(server) == 0


def test_spool_cap_drops_newest_and_counts_exactly(server_factory: Any, client_factory: Any, spool_dir: Path) -> None:
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()
    client = client_factory(server.url, agent_config=fast(spool_dir, max_spool_bytes=50_000))
    ids = [client.track_click(run_id, experiment_id, "cta") for _ in range(1000)]
    client.flush(timeout=0.2)
    stats = client.stats()
    assert stats.tracked == 1000
    assert 0 < stats.spooled < 1000
    assert stats.dropped == 1000 - stats.spooled
    server.thread.start()
    assert client.flush(timeout=30) is True
    stored = server.stored_event_ids()
    assert len(stored) == client.stats().spooled
    assert set(stored) == set(ids[: len(stored)])  # the oldest were kept, the newest dropped


def test_the_spooler_checkpoints_the_wal_once_the_burst_is_over(
    client_factory: Any, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints: list[bool] = []
    checkpoint_if_due = SqliteSpool.checkpoint_if_due

    def recording(spool: SqliteSpool) -> bool:
        checkpoints.append(checkpoint_if_due(spool))
        return checkpoints[-1]

    monkeypatch.setattr(SqliteSpool, "checkpoint_if_due", recording)
    client = client_factory("http://127.0.0.1:9", agent_config=fast(spool_dir))
    for i in range(30_000):  # about 21 MiB of payload: past the 16 MiB after which a checkpoint is due
        client.track_click("run-1", "exp-1", "cta", metadata={"i": i, "pad": "x" * 600})
    assert wait_until(lambda: any(checkpoints), timeout=30)
    assert wait_until(lambda: client.stats().spooled == 30_000, timeout=30)
    wal = Path(f"{client.stats().spool_path}-wal")
    client.track_click("run-1", "exp-1", "cta")  # a write after a checkpoint starts the WAL over and trims it
    assert wait_until(lambda: client.stats().spooled == 30_001)
    assert wal.stat().st_size < 16 * 1024 * 1024  # not the whole 21 MiB: it was checkpointed and started over


def test_events_wait_in_memory_while_the_spool_refuses_them_and_are_delivered_after(
    server: Any, client_factory: Any, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusals = 3
    append = SqliteSpool.append

    def refusing(spool: SqliteSpool, payloads: Sequence[bytes], created_ms: int) -> AppendResult:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise SpoolUnavailableError("database is locked (injected)")
        return append(spool, payloads, created_ms)

    monkeypatch.setattr(SqliteSpool, "append", refusing)
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    ids = track_many(client, run_id, experiment_id, 3000)
    # flush() would return False at once while the spool refuses (the events are still queued): the spooler retries
    assert wait_until(lambda: refusals == 0 and client.stats().queued == 0, timeout=30)
    assert client.flush(timeout=30) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)  # every chunk given back came back whole
    assert total_duplicates(server) == 0
    stats = client.stats()
    assert (stats.tracked, stats.spooled, stats.sent, stats.dropped) == (3000, 3000, 3000, 0)


def test_rejected_events_are_dead_lettered_and_good_ones_delivered(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    run_id, experiment_id = make_run(server)
    errors: list[Exception] = []
    client = client_factory(server.url, agent_config=fast(spool_dir), on_error=errors.append)
    good = [client.track_click(run_id, experiment_id, "ok") for _ in range(10)]
    client.track_click("no-such-run", experiment_id, "bad")
    client.track_click(run_id, "wrong-experiment", "bad")
    assert client.flush(timeout=10) is True
    assert sorted(server.stored_event_ids()) == sorted(good)
    stats = client.stats()
    assert (stats.sent, stats.rejected, stats.dead_lettered, stats.pending) == (10, 2, 2, 0)
    assert errors and "rejected" in str(errors[0])


@pytest.mark.parametrize("refused", [3, 40, 97])
def test_stats_report_the_dead_letters_pruned_to_keep_within_the_bounds(
    server: Any, client_factory: Any, spool_dir: Path, refused: int
) -> None:
    # the smallest spool: its dead letters may keep 2 KiB of payload, a handful of events; the rest are pruned
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir, max_spool_bytes=16 * 1024))
    good = [client.track_click(run_id, experiment_id, "ok") for _ in range(5)]
    for start in range(0, refused, 20):  # in rounds the 16 KiB spool holds whole
        for n in range(start, min(refused, start + 20)):
            client.track_click(f"no-such-run-{n}", experiment_id, "bad")
        assert client.flush(timeout=30) is True
    assert client.stats().dropped == 0
    assert sorted(server.stored_event_ids()) == sorted(good)
    stats = client.stats()
    assert stats.rejected == refused
    assert stats.dead_lettered + stats.dead_letters_pruned == refused
    if refused > 10:
        assert stats.dead_letters_pruned > 0
    spool = SqliteSpool(Path(stats.spool_path or ""), owner="reader", max_bytes=16 * 1024, lease_seconds=5)
    try:  # the same figure as the spool's own count
        counts = spool.counts()
        assert (counts.dead_letters_pruned, counts.dead_lettered) == (stats.dead_letters_pruned, stats.dead_lettered)
        assert counts.dead_letter_bytes <= 16 * 1024 // 8
    finally:
        spool.close()


def test_413_splits_batches_until_they_fit_and_dead_letters_an_event_too_large_alone(
    server_factory: Any, client_factory: Any, spool_dir: Path
) -> None:
    server = server_factory(max_body_bytes=12_000)
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir, gzip_threshold_bytes=10**9, batch_max_events=500))
    ids = [client.track_click(run_id, experiment_id, "x", metadata={"pad": "p" * 900}) for _ in range(100)]
    huge = client.track_click(run_id, experiment_id, "x", metadata={"pad": "h" * 14_000})  # > body limit alone
    assert client.flush(timeout=30) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)
    stats = client.stats()
    assert stats.rejected == 1 and stats.dead_lettered == 1
    assert huge not in server.stored_event_ids()


def test_401_pauses_delivery_and_keeps_the_spool(server_factory: Any, client_factory: Any, spool_dir: Path) -> None:
    counters: list[FaultInjector] = []

    def count_batches(app: Any) -> FaultInjector:
        counters.append(FaultInjector(app, probability=0.0, only_path="/v1/events/batch"))
        return counters[-1]

    server = server_factory(wrap=count_batches)
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, api_key="ps_not_yet_valid", agent_config=fast(spool_dir, auth_pause=2.0))
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(50)]
    assert wait_until(lambda: client.stats().paused, timeout=10)
    assert client.flush(timeout=1) is False
    stats = client.stats()
    assert stats.pending == 50 and stats.sent == 0 and "401" in (stats.last_error or "")
    assert len(counters[0].requests) == 1  # paused: no request hammering a key the server refuses
    # the key becomes valid (the server restarts with it): delivery resumes once the pause is over
    from promptstream.server import ServerThread

    server.thread.stop()
    server.thread = ServerThread(server.store, [API_KEY, "ps_not_yet_valid"], port=server.thread.port).start()
    assert client.flush(timeout=10) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)


def test_msgpack_encoding_delivers(server: Any, client_factory: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir, encoding="msgpack", gzip_threshold_bytes=100))
    ids = track_many(client, run_id, experiment_id, 300)
    assert client.flush(10)
    assert sorted(server.stored_event_ids()) == sorted(ids)


def test_memory_only_agent_delivers_and_writes_no_file(server: Any, client_factory: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, spool=False)
    ids = track_many(client, run_id, experiment_id, 500)
    assert client.flush(10)
    assert sorted(server.stored_event_ids()) == sorted(ids)
    assert not spool_dir.exists()
    assert client.stats().spool_path is None


def test_spool_is_private_and_its_name_does_not_reveal_the_key(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    client.track_click(run_id, experiment_id, "x")
    assert client.flush(10)
    path = Path(client.stats().spool_path or "")
    assert path.parent == spool_dir and API_KEY not in path.name
    assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700
    for file in spool_dir.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        assert API_KEY.encode() not in file.read_bytes()


@pytest.mark.parametrize(
    ("damage", "quarantined"),
    [
        pytest.param(lambda p: p.write_bytes(b"garbage" * 1000), 1, id="garbage"),
        pytest.param(lambda p: _truncated(p), 1, id="truncated"),
        pytest.param(lambda p: p.write_bytes(b""), 0, id="empty-file-is-a-fresh-spool"),
        pytest.param(lambda p: _foreign_sqlite(p), 1, id="another-applications-sqlite"),
        pytest.param(lambda p: _future_schema(p), 1, id="future-schema"),
    ],
)
def test_unusable_spool_is_moved_aside_and_the_agent_goes_on(
    server: Any, client_factory: Any, spool_dir: Path, damage: Any, quarantined: int
) -> None:
    run_id, experiment_id = make_run(server)
    config = fast(spool_dir)
    path = spool_file_path(config, server.url, API_KEY)
    spool_dir.mkdir(mode=0o700)
    damage(path)
    client = client_factory(server.url, agent_config=config)
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(20)]
    assert client.flush(10) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)
    stats = client.stats()
    assert stats.spool_path == str(path)  # a fresh spool in the same place
    assert stats.spool_quarantined == quarantined
    moved = [m for m in spool_dir.glob("*.corrupt-*") if not m.name.endswith(("-wal", "-shm"))]
    assert len(moved) == quarantined


def _truncated(path: Path) -> None:
    from promptstream._agent import SqliteSpool

    spool = SqliteSpool(path, owner="1:x", max_bytes=10**8, lease_seconds=60)
    spool.append([b'{"event_id":"' + str(i).encode() + b'"}' + b" " * 500 for i in range(2000)], 0)
    spool.close()
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 3)


def _foreign_sqlite(path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.commit()
    db.close()


def _future_schema(path: Path) -> None:
    import sqlite3

    from promptstream._agent._sqlite_spool import APPLICATION_ID

    db = sqlite3.connect(path)
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.execute("PRAGMA user_version=99")
    db.execute("CREATE TABLE events (x)")
    db.commit()
    db.close()


def test_unwritable_spool_dir_falls_back_to_memory(server: Any, client_factory: Any, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocked = tmp_path / "file-not-dir"
        blocked.write_text("a file where the spool directory should be")
        spool_dir = blocked / "spool"
    else:
        spool_dir = tmp_path / "ro"
        spool_dir.mkdir(mode=0o500)
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir))
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(20)]
    assert client.flush(10) is True
    assert sorted(server.stored_event_ids()) == sorted(ids)
    assert client.stats().spool_path is None


def test_a_python_without_sqlite3_tracks_in_memory(server: Any, spool_dir: Path) -> None:
    """Slim Python builds lack _sqlite3: `import promptstream` still works (it never imports sqlite3), and the agent
    keeps events in memory, says so once, and delivers them."""
    run_id, experiment_id = make_run(server)
    child = run_child(
        f"""
        import sys
        sys.modules["sqlite3"] = sys.modules["_sqlite3"] = None  # what `import sqlite3` meets without the module
        from promptstream import PromptStreamClient

        errors = []
        client = PromptStreamClient(on_error=errors.append, flush_interval=0.05)
        ids = [client.track_click({run_id!r}, {experiment_id!r}, "x") for _ in range(50)]
        assert client.flush(10), client.stats()
        stats = client.stats()
        assert stats.spool_path is None and stats.sent == 50, stats
        assert len(errors) == 1 and "sqlite3 is unavailable" in str(errors[0]), errors
        print(",".join(ids))
        """,
        client_env(server.url, spool_dir),
    )
    assert child.returncode == 0, child.stderr
    assert sorted(server.stored_event_ids()) == sorted(child.stdout.strip().split(","))
    assert not spool_dir.exists() or not any(spool_dir.iterdir())


def test_a_logging_handler_that_tracks_does_not_loop(server_factory: Any, client_factory: Any, spool_dir: Path) -> None:
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()
    client = client_factory(server.url, agent_config=fast(spool_dir))

    class TrackingHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            client.track_engagement(run_id, experiment_id, 1.0)

    handler = TrackingHandler()
    logging.getLogger("promptstream").addHandler(handler)
    try:
        client.track_click(run_id, experiment_id, "x")
        client.flush(0.5)
        tracked = client.stats().tracked
        assert tracked < 10  # log lines are per state change, so the handler adds a handful, not a flood
    finally:
        logging.getLogger("promptstream").removeHandler(handler)
    server.thread.start()
    assert client.flush(10)
    assert len(server.stored_event_ids()) == client.stats().tracked


def test_track_after_close_is_dropped_and_counted_not_raised(server: Any, client_factory: Any, spool_dir: Path) -> None:
    client = client_factory(server.url, agent_config=fast(spool_dir))
    client.close()
    client.track_click("r", "e", "x")
    assert client.stats().dropped == 1


def test_an_offline_agent_costs_next_to_no_cpu(spool_dir: Path) -> None:
    """Measured as a ratio, in one process, so a loaded machine inflates both sides alike: waiting 3 s for a
    server that is down must cost less CPU than a quarter of what tracking and spooling 100,000 events just cost.
    (With 10,000 the baseline was so small on a fast, quiet machine that a few backoff attempts came near it; an
    agent that spins while offline costs seconds, far above either.)"""
    result = run_child(
        """
        import os, resource, threading, time
        from promptstream import PromptStreamClient

        def cpu():
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime

        client = PromptStreamClient()
        pause = threading.Event()
        start_cpu = cpu()
        for _ in range(100_000):
            client.track_click("run", "exp", "x")
        while client.stats().spooled < 100_000:
            pause.wait(0.01)
        baseline = cpu() - start_cpu
        pause.wait(1.0)  # let the first failed attempts happen; backoff is under way
        before = cpu()
        pause.wait(3.0)
        print(cpu() - before, baseline, client.stats().pending, flush=True)  # os._exit skips stdio flushing
        os._exit(0)  # no exit flush: the server is down anyway
        """,
        client_env("http://127.0.0.1:9", spool_dir),
    )
    assert result.returncode == 0 and result.stdout, result.stderr
    waiting, baseline, pending = result.stdout.split()
    assert int(pending) == 100_000
    print(f"offline agent: {float(waiting):.4f} CPU-s in 3 s, against {float(baseline):.4f} CPU-s for 100k events")
    assert float(waiting) < 0.25 * float(baseline)


def test_uwsgi_without_threads_is_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, client_factory: Any
) -> None:
    import sys
    import types

    from promptstream._agent import _agent

    monkeypatch.setitem(sys.modules, "uwsgi", types.SimpleNamespace(opt={}))
    monkeypatch.setattr(_agent, "_uwsgi_warned", False)
    client_factory("http://127.0.0.1:9", spool=False)
    client_factory("http://127.0.0.1:9", spool=False)
    assert caplog.text.count("enable-threads") == 1


def test_flush_after_the_server_returns_does_not_wait_out_a_long_backoff(
    server_factory: Any, client_factory: Any, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backoff

    # jitter pinned far above its ceiling: delays are exactly 5, 10, 20, ... seconds
    monkeypatch.setattr(backoff, "full_jitter", lambda value: value * 10)
    server = server_factory()
    run_id, experiment_id = make_run(server)
    server.thread.stop()
    client = client_factory(server.url, agent_config=fast(spool_dir, max_backoff=60.0))
    ids = [client.track_click(run_id, experiment_id, "x") for _ in range(10)]
    assert wait_until(lambda: client.stats().retries >= 2, timeout=30)  # now sleeping 10 s before the 3rd attempt
    server.thread.start()
    # well inside the 10 s backoff: only possible if flush cut the client-chosen backoff short
    assert wait_until(lambda: client.flush(timeout=0.5), timeout=6)
    assert sorted(server.stored_event_ids()) == sorted(ids)


def test_a_client_created_during_interpreter_shutdown_still_delivers(server: Any, spool_dir: Path) -> None:
    """Python 3.12+ refuses new threads during shutdown; the exit hook then spools and delivers inline."""
    run_id, experiment_id = make_run(server)
    result = run_child(
        """
        import atexit, os
        from promptstream import PromptStreamClient

        def late():  # registered after promptstream's own hook, so it runs before it
            client = PromptStreamClient()
            for _ in range(50):
                print(client.track_click(os.environ["RUN"], os.environ["EXP"], "late"), flush=True)

        atexit.register(late)
        """,
        client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(server.stored_event_ids()) == sorted(result.stdout.split())
