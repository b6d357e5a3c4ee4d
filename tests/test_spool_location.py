"""The spool's location: directories we create are 0700 (each of them), a directory we did not create keeps its mode
(a symlink is never followed to change its target), a place others can write to or own is refused (the agent keeps
events in memory, with one warning and one on_error report), and spool files are owner-only from creation."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import PromptStreamError
from promptstream._agent import SqliteSpool
from promptstream._agent._location import UnsafeSpoolLocationError, prepare_spool_directory

from .helpers import make_run, wait_until

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    existing_mode=st.sampled_from([0o700, 0o750, 0o755, 0o770, 0o775, 0o777, 0o1777, 0o711, 0o500, 0o2770]),
    missing=st.integers(min_value=0, max_value=3),
    via_symlink=st.booleans(),
    other_owner=st.booleans(),
    umask=st.sampled_from([0o022, 0o077, 0o002, 0o000, 0o027]),
)
def test_spool_directory_modes_and_layouts(
    tmp_path_factory: pytest.TempPathFactory,
    existing_mode: int,
    missing: int,
    via_symlink: bool,
    other_owner: bool,
    umask: int,
) -> None:
    root = tmp_path_factory.mktemp("layout")
    existing = root / "existing"
    existing.mkdir()
    os.chmod(existing, existing_mode)
    if other_owner:
        if os.geteuid() != 0:
            return  # only root can give a directory away
        os.chown(existing, NOBODY, NOBODY)
    base = existing
    if via_symlink:
        base = root / "link"
        base.symlink_to(existing, target_is_directory=True)
    target = base.joinpath(*[f"c{i}" for i in range(missing)])
    before = os.stat(existing)
    old_umask = os.umask(umask)
    try:
        if missing == 0 and (existing_mode & 0o022 or other_owner):
            with pytest.raises(UnsafeSpoolLocationError):
                prepare_spool_directory(target)
        else:
            prepare_spool_directory(target)
    finally:
        os.umask(old_umask)
    after = os.stat(existing)
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)  # never touched what was there
    if via_symlink:
        assert base.is_symlink()
    for depth in range(1, missing + 1):
        created = base.joinpath(*[f"c{i}" for i in range(depth)])
        assert mode(created) == 0o700  # every component we created, whatever the umask


def test_an_existing_private_directory_is_used_as_it_is(tmp_path: Path) -> None:
    private = tmp_path / "mine"
    private.mkdir(mode=0o750)
    os.chmod(private, 0o750)
    spool = SqliteSpool(private / "spool.sqlite3", owner="1:a", max_bytes=10**6, lease_seconds=60)
    spool.close()
    assert mode(private) == 0o750


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002])
def test_spool_files_are_owner_only_from_creation_wal_and_shm_included(tmp_path: Path, umask: int) -> None:
    old_umask = os.umask(umask)
    try:
        spool = SqliteSpool(tmp_path / "spool" / "s.sqlite3", owner="1:a", max_bytes=10**6, lease_seconds=60)
        spool.append([b'{"event_id": "x"}'], 0)
        files = sorted((tmp_path / "spool").iterdir())
        names = {f.name for f in files}
        assert {"s.sqlite3", "s.sqlite3-wal", "s.sqlite3-shm"} <= names
        assert {f.name: mode(f) for f in files} == dict.fromkeys(names, 0o600)
        spool.close()
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize("shared_mode", [0o1777, 0o777, 0o775, 0o770])
def test_a_spool_directory_others_can_write_to_is_refused_for_memory_only(
    server: Any, client_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, shared_mode: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, shared_mode)  # like /tmp, or a team directory
    run_id, experiment_id = make_run(server)
    errors: list[PromptStreamError] = []
    with caplog.at_level(logging.WARNING, logger="promptstream"):
        client = client_factory(server.url, spool_dir=shared, on_error=errors.append)
        ids = [client.track_click(run_id, experiment_id, "x") for _ in range(50)]
        assert client.flush(timeout=30)
        assert client.stats().spool_path is None  # in memory only
    assert set(ids) <= set(server.stored_event_ids())  # still delivered
    assert mode(shared) == shared_mode  # the sticky bit and the rest kept
    assert list(shared.iterdir()) == []  # nothing written there
    warnings = [r for r in caplog.records if "writable by other users" in r.getMessage()]
    assert len(warnings) == 1
    assert len([e for e in errors if "writable by other users" in str(e)]) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_spool_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(UnsafeSpoolLocationError, match="another user"):
        SqliteSpool(theirs / "s.sqlite3", owner="1:a", max_bytes=10**6, lease_seconds=60)
    assert mode(theirs) == 0o700 and os.stat(theirs).st_uid == NOBODY
    assert wait_until(lambda: list(theirs.iterdir()) == [], timeout=1)
