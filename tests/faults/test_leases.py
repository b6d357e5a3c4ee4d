"""Claims and leases across processes: several real processes (and a forking parent) share one spool and contend
for every claim against the real reference server, which never fails a request. A batch may go out again only after
its send failed or its owner died, so here each event is sent exactly once: the server's batch log shows no
Idempotency-Key twice (a take-over resend) and no event it already had (a re-claimed event)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ..helpers import client_env, make_run, run_child, spawn_child

# Small batches and a tight flush interval: many claims per second from every process, so they queue on the
# spool's write lock, which is where a stale clock turned a fresh lease into an "expired" one.
TRACKER = """
    import os
    from promptstream import PromptStreamClient, AgentConfig
    client = PromptStreamClient(agent_config=AgentConfig(
        spool_dir=os.environ["PROMPTSTREAM_SPOOL_DIR"], flush_interval=0.005, spool_interval=0.005,
        batch_max_events=int(os.environ["BATCH"])))
    ids = []
    for i in range(int(os.environ["EVENTS"])):
        ids.append(client.track_click(os.environ["RUN"], os.environ["EXP"], "k"))
        if i % 50 == 0:
            client.flush(timeout=0)  # wakes the sender: claims interleave with the other processes'
    ok = client.flush(timeout=120)
    # close() delivers what is left in the shared spool, the other processes' events too; with the default 2 s
    # bound it could give up mid-send on a loaded machine and exit holding a lease, and a batch whose owner died
    # is rightly sent again. This test is about owners that live, so close waits for its last send.
    client.close(timeout=60)
    retries = client.stats().retries  # sends that failed (a timeout on a loaded machine): those may go out again
    with open(os.environ["IDS_FILE"], "w") as out:
        out.write("\\n".join(ids))
    print(ok, retries)
"""

FORKING_PARENT = """
    import os, warnings
    from promptstream import PromptStreamClient, AgentConfig
    warnings.filterwarnings("ignore", message="This process .* is multi-threaded", category=DeprecationWarning)
    client = PromptStreamClient(agent_config=AgentConfig(
        spool_dir=os.environ["PROMPTSTREAM_SPOOL_DIR"], flush_interval=0.005, spool_interval=0.005,
        batch_max_events=int(os.environ["BATCH"])))
    run, exp, out_dir, n = os.environ["RUN"], os.environ["EXP"], os.environ["OUT_DIR"], int(os.environ["EVENTS"])
    ids = [client.track_click(run, exp, "parent") for _ in range(n // 2)]  # in flight while the children start
    children = []
    for c in range(int(os.environ["CHILDREN"])):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                mine = []
                for i in range(n):
                    mine.append(client.track_click(run, exp, f"child{c}"))
                    if i % 50 == 0:
                        client.flush(timeout=0)
                ok = client.flush(timeout=120)
                # close() before os._exit: a sender still holding a lease would otherwise die mid-send, and a
                # batch whose owner died is rightly sent again; this test is about owners that live
                retries = client.stats().retries
                client.close(timeout=30)
                with open(os.path.join(out_dir, f"child-{c}.txt"), "w") as out:
                    out.write("\\n".join(mine))
                with open(os.path.join(out_dir, f"retries-{c}"), "w") as out:
                    out.write(str(retries))
                code = 0 if ok else 2
            finally:
                os._exit(code)
        children.append(pid)
    ids += [client.track_click(run, exp, "parent") for _ in range(n // 2)]
    failures = sum(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0 for pid in children)
    ok = client.flush(timeout=120)
    with open(os.path.join(out_dir, "parent.txt"), "w") as out:
        out.write("\\n".join(ids))
    with open(os.path.join(out_dir, "retries-parent"), "w") as out:
        out.write(str(client.stats().retries))
    print(ok, failures)
"""


def assert_each_event_sent_once(server: Any, tracked: list[str], failed_sends: int) -> None:
    """Every event stored once, no event ever sent in a second batch, and a batch sent again only as the retry of a
    send that failed (``failed_sends``, the clients' own count: on this shared machine a request can time out)."""
    stored = server.stored_event_ids()
    assert sorted(stored) == sorted(tracked)
    log = server.store.batch_log()
    resends = sum(n - 1 for n in Counter(row["idempotency_key"] for row in log).values())
    duplicates = sum(row["duplicates"] for row in log)
    assert resends <= failed_sends, f"{resends} batches went out again, after {failed_sends} failed sends"
    assert duplicates == 0, f"{duplicates} events were sent again in another batch"
    assert sum(row["events"] for row in log if not row["replayed"]) == len(tracked)


@pytest.mark.parametrize("processes", [3, 4])
def test_processes_contending_for_claims_send_every_event_once(
    server: Any, spool_dir: Path, tmp_path: Path, children: list[Any], processes: int
) -> None:
    run_id, experiment_id = make_run(server)
    for i in range(processes):
        env = client_env(
            server.url,
            spool_dir,
            RUN=run_id,
            EXP=experiment_id,
            EVENTS=3000,
            BATCH=20 + 7 * i,  # different batch sizes: claims of different lengths interleave
            IDS_FILE=tmp_path / f"ids-{i}.txt",
        )
        children.append(spawn_child(TRACKER, env))
    failed_sends = 0
    for child in children:
        out, err = child.communicate(timeout=240)
        ok, retries = out.split()
        assert ok == "True", err
        failed_sends += int(retries)
    tracked = [i for p in tmp_path.glob("ids-*.txt") for i in p.read_text().split()]
    assert len(tracked) == processes * 3000
    assert_each_event_sent_once(server, tracked, failed_sends)


def test_forked_children_contending_with_their_parent_send_every_event_once(
    server: Any, spool_dir: Path, tmp_path: Path
) -> None:
    run_id, experiment_id = make_run(server)
    out_dir = tmp_path / "ids"
    out_dir.mkdir()
    env = client_env(
        server.url, spool_dir, RUN=run_id, EXP=experiment_id, EVENTS=2000, BATCH=25, CHILDREN=4, OUT_DIR=out_dir
    )
    result = run_child(FORKING_PARENT, env, timeout=240)
    assert result.stdout.split() == ["True", "0"], result.stderr
    tracked = [i for p in out_dir.glob("*.txt") for i in p.read_text().split()]
    assert len(tracked) == 2000 + 4 * 2000
    failed_sends = sum(int(p.read_text()) for p in out_dir.glob("retries-*"))
    assert_each_event_sent_once(server, tracked, failed_sends)
