"""Key rotation strands nothing: the spool belongs to the server (base URL), not to the API key, so events tracked
under a key that was then revoked go out with the next key. Every `spool` command says which spools exist, needs no
key to read, and dead letters can be listed, replayed and purged. All against the real reference server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import AgentConfig, PromptStreamClient
from promptstream._agent import SqliteSpool
from promptstream._agent._location import legacy_spool_file_path, spool_file_path
from promptstream.cli import main
from promptstream.server import ServerThread, Store

from .helpers import API_KEY, run_child, total_duplicates, wait_until

KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=8, max_size=40)


def make_run(url: str, key: str) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    prompt = httpx.post(f"{url}/v1/prompts", json={"name": "p", "template": "Hi {{name}}"}, headers=headers).json()
    run = httpx.post(f"{url}/v1/prompts/{prompt['prompt_id']}/runs", json={"inputs": {"name": "x"}}, headers=headers)
    return run.json()["run_id"], run.json()["experiment_id"]


class Rotation:
    """One store served first with the old key only, then (same port, so the same base URL) with the new key only."""

    def __init__(self, db: Path, old: str, new: str) -> None:
        self.store = Store(db)
        self.old, self.new = old, new
        self.thread = ServerThread(self.store, [old]).start()
        self.port = self.thread.port
        self.url = self.thread.url

    def rotate(self) -> None:
        self.thread.stop()
        self.thread = ServerThread(self.store, [self.new], port=self.port).start()

    def close(self) -> None:
        self.thread.stop()
        self.store.close()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=KEYS, new=KEYS, n=st.integers(min_value=1, max_value=60))
def test_events_pending_under_a_rotated_key_go_out_with_the_new_key(
    tmp_path_factory: pytest.TempPathFactory, old: str, new: str, n: int
) -> None:
    if old == new:
        return
    tmp = tmp_path_factory.mktemp("rotation")
    rotation = Rotation(tmp / "server.sqlite3", old, new)
    try:
        run_id, experiment_id = make_run(rotation.url, old)
        rotation.rotate()  # the old key is revoked before its events went out
        config = AgentConfig(spool_dir=tmp / "spool", flush_interval=0.05, auth_pause=0.2, shutdown_timeout=0.5)
        with PromptStreamClient(old, base_url=rotation.url, agent_config=config) as before:
            ids = [before.track_click(run_id, experiment_id, "x") for _ in range(n)]
            assert wait_until(lambda: before.stats().paused, timeout=10)  # 401: they wait in the spool
        assert rotation.store.count("events") == 0
        with PromptStreamClient(new, base_url=rotation.url, agent_config=config) as after:
            assert after.flush(timeout=30)
            assert after.stats().sent == n
        assert sorted(rotation.store.event_ids()) == sorted(ids)
    finally:
        rotation.close()


def test_an_earlier_versions_per_key_spool_is_adopted_by_drain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rotation = Rotation(tmp_path / "server.sqlite3", "ps_old_key_1", "ps_new_key_2")
    try:
        run_id, experiment_id = make_run(rotation.url, rotation.old)
        config = AgentConfig(spool_dir=tmp_path / "spool")
        legacy = legacy_spool_file_path(config, rotation.url, rotation.old)
        spool = SqliteSpool(legacy, owner="1:old", max_bytes=10**6, lease_seconds=60)
        events = [
            json.dumps(
                {
                    "event_id": f"0190f000-0000-7000-8000-{i:012d}",
                    "type": "click",
                    "prompt_run_id": run_id,
                    "experiment_id": experiment_id,
                    "timestamp": "2026-01-01T00:00:00.000Z",
                    "label": "x",
                }
            ).encode()
            for i in range(7)
        ]
        spool.append(events, 0)
        spool.close()
        args = ["--base-url", rotation.url, "--spool-dir", str(tmp_path / "spool")]
        assert main(["spool", "status", *args, "--api-key", rotation.old]) == 0
        out = capsys.readouterr().out
        assert str(legacy) in out and "earlier version" in out and "7 pending" in out
        assert main(["spool", "drain", *args, "--api-key", rotation.old]) == 0
        out = capsys.readouterr().out
        assert "adopted:        7 pending events" in out and "drained: 7 delivered" in out
        assert len(rotation.store.event_ids()) == 7
    finally:
        rotation.close()


def test_spool_commands_list_spools_and_show_replay_and_purge_dead_letters(
    server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_dir = tmp_path / "spool"
    monkeypatch.delenv("PROMPTSTREAM_API_KEY", raising=False)
    args = ["--base-url", server.url, "--spool-dir", str(spool_dir)]
    # an app whose events the server refuses (an unknown run): they become dead letters
    result = run_child(
        """
        import os
        from promptstream import PromptStreamClient
        client = PromptStreamClient(os.environ["KEY"], base_url=os.environ["URL"], spool_dir=os.environ["DIR"])
        for i in range(3):
            client.track_click("no-such-run", "no-such-experiment", "x")
        print(client.flush(timeout=20), client.stats().rejected)
        client.close()
        """,
        {"KEY": "ps_test_key_0123456789", "URL": server.url, "DIR": str(spool_dir)},
    )
    assert result.stdout.split() == ["True", "3"], result.stderr
    path = spool_file_path(AgentConfig(spool_dir=spool_dir), server.url)
    # reading needs no API key
    assert main(["spool", "status", *args]) == 0
    out = capsys.readouterr().out
    assert f"{path} (this server): 0 pending, 3 dead-lettered" in out
    assert main(["spool", "status", *args, "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["path"], listed["role"], listed["counts"]["dead_lettered"]) == (str(path), "current", 3)
    assert main(["spool", "dead-letters", *args, "--json"]) == 0
    letters = json.loads(capsys.readouterr().out)
    assert len(letters) == 3 and all(letter["reason"] == "unknown prompt_run_id" for letter in letters)
    assert {letter["event"]["prompt_run_id"] for letter in letters} == {"no-such-run"}
    assert main(["spool", "dead-letters", *args]) == 0
    assert capsys.readouterr().out.count("unknown prompt_run_id") == 3
    # replay sends them again (the server refuses them again, with the same reason)
    assert main(["spool", "replay", *args, "--api-key", "ps_test_key_0123456789", "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert "replaying:      3 dead letters" in out and "3 rejected" in out
    assert main(["spool", "purge", "--dead-letters", "--yes", *args]) == 0
    assert "deleted 3 dead letters" in capsys.readouterr().out
    assert main(["spool", "dead-letters", *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert path.exists()  # only the dead letters went


def test_drain_with_a_wrong_key_finds_the_spool_and_says_the_key_was_refused(
    server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool_dir = tmp_path / "spool"
    server.thread.stop()
    result = run_child(
        """
        import os
        from promptstream import PromptStreamClient
        client = PromptStreamClient(os.environ["KEY"], base_url=os.environ["URL"], spool_dir=os.environ["DIR"],
                                    shutdown_timeout=0.2)
        for i in range(20):
            client.track_conversion("r", "e")
        client.close(timeout=0.2)
        """,
        {"KEY": "ps_test_key_0123456789", "URL": server.url, "DIR": str(spool_dir)},
    )
    assert result.returncode == 0, result.stderr
    server.thread.start()
    args = ["--base-url", server.url, "--spool-dir", str(spool_dir), "--timeout", "5"]
    assert main(["spool", "drain", *args, "--api-key", "wrongkey"]) == 1
    captured = capsys.readouterr()
    assert "20 pending" in captured.out  # the spool is listed, whatever the key
    assert "20 events still pending" in captured.err and "nothing to drain" not in captured.out


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=1, max_value=2500), fresh=st.integers(min_value=0, max_value=20))
def test_a_client_started_over_an_earlier_versions_per_key_spool_delivers_its_backlog_once(
    server: Any, tmp_path_factory: pytest.TempPathFactory, n: int, fresh: int
) -> None:
    # an app upgraded with a backlog left in the spool file an earlier version kept for (base URL, API key)
    run_id, experiment_id = make_run(server.url, API_KEY)
    config = AgentConfig(spool_dir=tmp_path_factory.mktemp("upgrade") / "spool", flush_interval=0.05)
    legacy = legacy_spool_file_path(config, server.url, API_KEY)
    assert legacy != spool_file_path(config, server.url)
    spool = SqliteSpool(legacy, owner="1:earlier", max_bytes=10**8, lease_seconds=60)
    backlog = [str(uuid.uuid4()) for _ in range(n)]
    spool.append([click(event_id, run_id, experiment_id) for event_id in backlog], 0)
    spool.close()
    before = set(server.stored_event_ids())
    with PromptStreamClient(API_KEY, base_url=server.url, agent_config=config) as client:
        tracked = [client.track_click(run_id, experiment_id, "new") for _ in range(fresh)]
        assert client.flush(timeout=60)
    with PromptStreamClient(API_KEY, base_url=server.url, agent_config=config) as again:  # nothing left to resend
        assert again.flush(timeout=30) and again.stats().pending == 0
    stored = sorted(set(server.stored_event_ids()) - before)
    assert stored == sorted(backlog + tracked)
    assert total_duplicates(server) == 0
    old = SqliteSpool(legacy, owner="1:reader", max_bytes=10**8, lease_seconds=60)
    try:
        assert old.counts().pending == 0
    finally:
        old.close()


def click(event_id: str, run_id: str, experiment_id: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "type": "click",
            "prompt_run_id": run_id,
            "experiment_id": experiment_id,
            "timestamp": "2026-01-01T00:00:00.000Z",
            "label": "x",
        }
    ).encode()
