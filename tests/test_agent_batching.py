"""How the sender batches at a steady rate (issue 19): whole batches go out as soon as they are spooled, a partial
batch waits for the next drain (every ``flush_interval``) or a flush, and nothing is sent twice. Counted at the
real reference server: its batch log (one row per request it answered) and the events it stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import fast, make_run, wait_until

# long enough that the timer never drains during a test: every send below comes from a whole batch or a flush
NEVER = 300.0


def batches_at(server: Any, since: int) -> list[dict[str, Any]]:
    return server.store.batch_log()[since:]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch_max_events=st.integers(20, 400), full=st.integers(1, 3), rest=st.integers(1, 399))
def test_whole_batches_go_at_once_and_a_partial_one_waits_for_the_drain(
    server: Any, client_factory: Any, tmp_path_factory: Any, batch_max_events: int, full: int, rest: int
) -> None:
    rest = rest % batch_max_events or 1
    run_id, experiment_id = make_run(server)
    config = fast(tmp_path_factory.mktemp("spool"), flush_interval=NEVER, batch_max_events=batch_max_events)
    client = client_factory(server.url, agent_config=config)
    logged = len(server.store.batch_log())
    stored_before = len(server.stored_event_ids())
    total = full * batch_max_events + rest
    ids = [client.track_click(run_id, experiment_id, "cta", f"u{i}") for i in range(total)]

    # the whole batches are sent without waiting for the drain, each one full
    assert wait_until(lambda: len(server.stored_event_ids()) - stored_before == full * batch_max_events, 30)
    time.sleep(0.3)  # a partial batch sent eagerly would arrive within a few spool passes
    sent = batches_at(server, logged)
    assert [entry["events"] for entry in sent] == [batch_max_events] * full
    assert len(server.stored_event_ids()) - stored_before == full * batch_max_events

    # the partial batch goes with the flush, in one request; every event once
    assert client.flush(30) is True
    sent = batches_at(server, logged)
    assert [entry["events"] for entry in sent] == [batch_max_events] * full + [rest]
    assert sum(entry["duplicates"] for entry in sent) == 0
    assert set(ids) <= set(server.stored_event_ids())
    client.close()


def test_a_partial_batch_is_sent_by_the_drain_within_flush_interval(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    run_id, experiment_id = make_run(server)
    client = client_factory(server.url, agent_config=fast(spool_dir, flush_interval=0.5))
    ids = [client.track_click(run_id, experiment_id, "cta", f"u{i}") for i in range(37)]
    # no flush: the sender's own drain sends them, in one request
    assert wait_until(lambda: set(ids) <= set(server.stored_event_ids()), 10)
    assert [entry["events"] for entry in server.store.batch_log()] == [37]
    client.close()
