"""Privacy controls: keyed user-id hashing end to end, the before_send hook on the background thread, and the
warning for an API key about to cross the network in clear."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from promptstream import ConfigurationError, Event, PromptStreamClient, PromptStreamError, hash_user_id
from promptstream._privacy import _warned_hosts

from .helpers import API_KEY, fast, make_run

SALT = "a-salt-of-at-least-16-bytes"


def test_hash_user_id_is_keyed_hmac_sha256() -> None:
    expected = hmac.new(SALT.encode(), b"ada@example.com", hashlib.sha256).hexdigest()
    assert hash_user_id("ada@example.com", SALT) == expected == hash_user_id("ada@example.com", SALT.encode())
    assert hash_user_id("ada@example.com", SALT + "x") != expected
    with pytest.raises(ConfigurationError, match="16 bytes"):
        hash_user_id("ada", "short")


def test_hashed_user_ids_never_leave_the_process_in_clear(server: Any, client_factory: Any, spool_dir: Path) -> None:
    prompt = server.create_prompt()
    client: PromptStreamClient = client_factory(server.url, agent_config=fast(spool_dir), hash_user_ids=SALT)
    first = client.run_prompt(prompt["prompt_id"], {"name": "x"}, external_user_id="ada@example.com")
    again = client.run_prompt(prompt["prompt_id"], {"name": "x"}, external_user_id="ada@example.com")
    assert first.variant_assigned == again.variant_assigned  # sticky: the hash is stable
    client.track_click(first.run_id, first.experiment_id, "cta", external_user_id="ada@example.com")
    client.track_feedback(first.run_id, first.experiment_id, True, external_user_id="ada@example.com")
    assert client.flush(timeout=10)
    expected = hash_user_id("ada@example.com", SALT)
    db = server.database()
    stored = {row[0] for row in db.execute("SELECT external_user_id FROM runs").fetchall()}
    stored |= {row[0] for row in db.execute("SELECT external_user_id FROM events").fetchall()}
    db.close()
    assert stored == {expected}
    on_disk = b"".join(path.read_bytes() for path in Path(spool_dir).iterdir() if path.is_file())
    assert on_disk and b"ada@example.com" not in on_disk  # the spool, its WAL included


def test_before_send_scrubs_drops_and_survives_its_own_errors(
    server: Any, client_factory: Any, spool_dir: Path
) -> None:
    run_id, experiment_id = make_run(server)
    reported: list[PromptStreamError] = []

    def scrub(event: Event) -> Event | None:
        if event.label == "drop-me":
            return None
        if event.label == "explode":
            raise RuntimeError("scrubber bug")
        if event.label == "wrong":
            return "not an event"  # type: ignore[return-value]
        return msgspec.structs.replace(event, metadata=None, source="scrubbed")

    client: PromptStreamClient = client_factory(
        server.url, agent_config=fast(spool_dir), before_send=scrub, on_error=reported.append
    )
    kept = client.track_click(run_id, experiment_id, "keep", metadata={"email": "ada@example.com"})
    for label in ("drop-me", "explode", "wrong"):
        client.track_click(run_id, experiment_id, label)  # never raises in the caller
    assert client.flush(timeout=10)
    db = server.database()
    rows = db.execute("SELECT event_id, label, source, metadata FROM events").fetchall()
    db.close()
    assert rows == [(kept, "keep", "scrubbed", None)]  # the failing hook let nothing through unscrubbed
    stats = client.stats()
    assert (stats.tracked, stats.spooled, stats.filtered, stats.hook_errors, stats.queued) == (4, 1, 1, 2, 0)
    assert len(reported) == 2 and "scrubber bug" in str(reported[0])


def test_before_send_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="before_send"):
        PromptStreamClient(API_KEY, base_url="http://127.0.0.1:9", disabled=True, before_send="nope")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base_url", "warns"),
    [
        ("http://api.example.com", True),
        ("http://10.1.2.3:8700", True),
        ("https://api.example.com", False),
        ("http://127.0.0.1:8700", False),
        ("http://localhost:8700", False),
        ("http://[::1]:8700", False),
    ],
)
def test_plain_http_to_a_remote_host_warns_once(base_url: str, warns: bool, caplog: pytest.LogCaptureFixture) -> None:
    _warned_hosts.clear()
    with caplog.at_level(logging.WARNING, logger="promptstream"):
        for _ in range(2):
            PromptStreamClient(API_KEY, base_url=base_url, disabled=True).close()
    assert caplog.text.count("unencrypted") == (1 if warns else 0)
    assert API_KEY not in caplog.text
