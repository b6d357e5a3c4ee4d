"""Every platform our users run on. Windows has no ``os.register_at_fork``, no ``os.fork`` and no ``fcntl``: the SDK
must import and deliver without them, here proved in real subprocesses from which they are removed before the SDK
is imported. The spool directory follows each platform's conventions (platformdirs), and pyproject/README say
which platforms are supported."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream._agent._location import UnsafeSpoolLocationError, check_spool_directory, default_spool_dir
from promptstream._agent._platform import exclusive_file_lock

from .helpers import REPO_ROOT, client_env, make_run, run_child, spawn_child

# What a Windows interpreter lacks, taken away before anything of ours is imported. (msvcrt is absent here as
# well, so the spool falls back to SQLite's own locking: the path that needs nothing from the platform.)
WITHOUT_FORK_AND_FCNTL = """
    import os, sys
    for name in ("register_at_fork", "fork", "forkpty"):
        if hasattr(os, name):
            delattr(os, name)
    sys.modules["fcntl"] = None  # `import fcntl` now raises ImportError
    sys.modules["msvcrt"] = None
"""

TRACK_AND_FLUSH = (
    WITHOUT_FORK_AND_FCNTL
    + """
    import promptstream
    from promptstream import PromptStreamClient, AgentConfig
    from promptstream._agent._platform import lock_mechanism
    client = PromptStreamClient(agent_config=AgentConfig(
        spool_dir=os.environ["PROMPTSTREAM_SPOOL_DIR"], flush_interval=0.02, batch_max_events=50))
    ids = [client.track_click(os.environ["RUN"], os.environ["EXP"], "win") for _ in range(int(os.environ["N"]))]
    ok = client.flush(timeout=60)
    stats = client.stats()
    client.close()
    with open(os.environ["IDS_FILE"], "w") as out:
        out.write("\\n".join(ids))
    fcntl_loaded = sys.modules.get("fcntl") is not None
    print(ok, lock_mechanism(), stats.spool_path is not None, stats.sent, fcntl_loaded)
"""
)


def test_the_sdk_imports_without_fork_and_fcntl(tmp_path: Path) -> None:
    result = run_child(
        WITHOUT_FORK_AND_FCNTL
        + """
    import promptstream, promptstream._agent, promptstream.testing, promptstream.cli
    from promptstream._agent import _sqlite_spool, _spool_admin
    print("imported", hasattr(os, "fork"))
    """,
        {"PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.stdout.split() == ["imported", "False"], result.stderr


def test_processes_without_fork_and_fcntl_share_a_spool_and_deliver_every_event_once(
    server: Any, spool_dir: Path, tmp_path: Path, children: list[Any]
) -> None:
    run_id, experiment_id = make_run(server)
    for i in range(3):  # at once: they open, initialise and claim from one spool under SQLite's locking
        env = client_env(server.url, spool_dir, RUN=run_id, EXP=experiment_id, N=400, IDS_FILE=tmp_path / f"{i}.ids")
        children.append(spawn_child(TRACK_AND_FLUSH, env))
    for child in children:
        out, err = child.communicate(timeout=120)
        ok, mechanism, durable, _sent, fcntl_loaded = out.split()
        assert (ok, mechanism, durable, fcntl_loaded) == ("True", "sqlite", "True", "False"), err
    tracked = [i for p in tmp_path.glob("*.ids") for i in p.read_text().split()]
    assert len(tracked) == 1200
    assert sorted(server.stored_event_ids()) == sorted(tracked)
    log = server.store.batch_log()
    assert sum(row["duplicates"] for row in log) == 0
    assert len({row["idempotency_key"] for row in log}) == len(log)  # no batch sent twice


def test_the_sqlite_fallback_lock_excludes_another_process(tmp_path: Path) -> None:
    lock_target = tmp_path / "spool.sqlite3"
    probe = """
        import sqlite3, sys
        db = sqlite3.connect(sys.argv[1] if len(sys.argv) > 1 else LOCK, timeout=0, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            print("acquired")
        except sqlite3.OperationalError as exc:
            print("refused", exc)
    """.replace("LOCK", repr(f"{lock_target}.lock"))
    from promptstream._agent import _platform

    with _platform._sqlite_lock(f"{lock_target}.lock"):
        held = run_child(probe, {})
        assert held.stdout.startswith("refused"), held.stderr
    assert run_child(probe, {}).stdout.startswith("acquired")
    assert oct(os.stat(f"{lock_target}.lock").st_mode & 0o777) == oct(0o600)


def test_the_platform_lock_is_exclusive_between_processes(tmp_path: Path) -> None:
    target = tmp_path / "spool.sqlite3"
    probe = f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from pathlib import Path
        from promptstream._agent import _platform
        _platform._LOCK_TIMEOUT = 0.2
        try:
            with _platform.exclusive_file_lock(Path({str(target)!r})):
                print("acquired")
        except Exception as exc:
            print("refused", type(exc).__name__)
    """
    with exclusive_file_lock(target):
        assert run_child(probe, {}).stdout.split() == ["refused", "SpoolUnavailableError"]
    assert run_child(probe, {}).stdout.split() == ["acquired"]


SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 _-", min_size=1, max_size=12).filter(
    lambda s: s.strip() == s
)


@settings(max_examples=30, deadline=None)
@given(user=SEGMENT, cache=SEGMENT)
def test_the_default_spool_directory_follows_each_platforms_conventions(user: str, cache: str) -> None:
    home = f"/home/{user}"
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CACHE_HOME", "WIN_PD_OVERRIDE_LOCAL_APPDATA")}
    try:
        os.environ["HOME"] = home
        os.environ.pop("XDG_CACHE_HOME", None)
        assert default_spool_dir("linux") == Path(home, ".cache", "promptstream")
        assert default_spool_dir("freebsd14") == Path(home, ".cache", "promptstream")
        assert default_spool_dir("darwin") == Path(home, "Library", "Caches", "promptstream")
        os.environ["XDG_CACHE_HOME"] = f"/var/{cache}"
        assert default_spool_dir("linux") == Path(f"/var/{cache}", "promptstream")
        local = f"C:\\Users\\{user}\\AppData\\Local"
        os.environ["WIN_PD_OVERRIDE_LOCAL_APPDATA"] = local  # how platformdirs lets other platforms ask
        try:
            windows = default_spool_dir("win32")
        except NotImplementedError:  # a platformdirs too old to be asked off Windows
            return
        assert str(windows).replace("/", "\\") == f"{local}\\promptstream\\Cache"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_posix_modes_are_judged_on_posix_only(tmp_path: Path, mode: int) -> None:
    """Windows reports every directory as 0o777: its privacy is its ACL (docs/platforms.md), not a mode bit."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    check_spool_directory(shared, system="win32")
    for system in ("linux", "darwin"):
        with pytest.raises(UnsafeSpoolLocationError):
            check_spool_directory(shared, system=system)


def test_supported_platforms_are_declared() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()  # (tomllib is 3.11+; the SDK supports 3.10)
    for classifier in (
        "Operating System :: Microsoft :: Windows",
        "Operating System :: MacOS",
        "Operating System :: POSIX :: Linux",
    ):
        assert f'"{classifier}",' in pyproject
    readme = (REPO_ROOT / "README.md").read_text()
    assert "Linux, macOS and Windows" in readme


def test_sqlite_has_what_the_spool_needs() -> None:
    assert sqlite3.sqlite_version_info >= (3, 7, 0)  # WAL
    assert sys.version_info >= (3, 10)
