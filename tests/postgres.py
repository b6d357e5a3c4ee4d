"""A real PostgreSQL for the storage contract tests: the server named by PROMPTSTREAM_TEST_PG_URL (an admin URL, e.g.
postgresql://postgres@127.0.0.1:5432/postgres), else a private cluster started for the session from the Debian
binaries (initdb + pg_ctl on a data directory under /tmp and a free port; as root, run as the ``postgres`` user).
Each test gets its own database.

Where no PostgreSQL can be found or started, the PostgreSQL variants skip with the reason on a user's machine, and
fail under CI=true: CI must never skip them silently.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import free_port

ENV_TEST_PG_URL = "PROMPTSTREAM_TEST_PG_URL"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class Cluster:
    """A PostgreSQL server the tests may create databases in."""

    def __init__(self, admin_url: str, stop: list[str] | None = None, data_dir: str | None = None) -> None:
        self.admin_url = admin_url
        self._stop = stop
        self._data_dir = data_dir

    def create_database(self) -> str:
        import psycopg

        name = f"ps_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())

    def stop(self) -> None:
        if self._stop is not None:
            subprocess.run(self._stop, capture_output=True, timeout=60, check=False)
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)


def start_cluster() -> Cluster:
    """A private cluster, or the one PROMPTSTREAM_TEST_PG_URL names. Raises RuntimeError saying why not."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"psycopg is not installed (pip install 'promptstream[postgres]'): {exc}") from None
    given = os.environ.get(ENV_TEST_PG_URL)
    if given:
        return Cluster(given)
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (no pg_ctl; Debian: apt-get install postgresql)")
    data_dir = tempfile.mkdtemp(prefix="promptstream-pg-")
    os.chmod(data_dir, 0o700)
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    port = free_port()
    log = os.path.join(data_dir, "server.log")
    initdb = [str(bin_dir / "initdb"), "-D", f"{data_dir}/data", "-U", "postgres", "-A", "trust"]
    steps = [
        [*initdb, "-E", "UTF8", "--locale=C", "--no-sync"],
        [
            str(bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            f"{data_dir}/data",
            "-l",
            log,
            "-o",
            f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=300",
        ],
    ]
    for step in steps:
        result = subprocess.run(_as_postgres(step), capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
            shutil.rmtree(data_dir, ignore_errors=True)
            raise RuntimeError(f"could not start PostgreSQL ({Path(step[0]).name}): {detail[0]}")
    stop = _as_postgres([str(bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-D", f"{data_dir}/data"])
    return Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", stop, data_dir)


def unavailable(reason: str) -> None:
    """Skip on a user's machine; fail under CI."""
    message = f"PostgreSQL variant: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: the PostgreSQL variants must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster | str]:
    """The session's PostgreSQL, or the reason there is none (each test then skips or fails with it)."""
    try:
        cluster = start_cluster()
    except RuntimeError as exc:
        yield str(exc)
        return
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster | str) -> Iterator[str]:
    """A fresh, empty database of its own for one test."""
    if isinstance(pg_cluster, str):
        unavailable(pg_cluster)
        raise AssertionError("unreachable")
    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url)
