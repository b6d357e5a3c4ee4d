"""The small spool API the ``promptstream spool`` commands use: which spools exist, what they hold, their dead
letters, and the few changes a person may make (replay or purge dead letters, adopt another spool, delete one).

Reading never creates, migrates or writes a file (``read_counts`` opens it read-only). Every spool file of a
directory is listed, so a user sees the spools of other servers, and those an earlier version kept per API key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .._config import AgentConfig
from ._location import SPOOL_GLOB, legacy_spool_file_path, spool_directory, spool_file_path
from ._spool import DeadLetter, SpoolCorruptError, SpoolCounts, owner_token

if TYPE_CHECKING:
    from ._sqlite_spool import SqliteSpool

__all__ = ["SpoolInfo", "adopt", "dead_letters", "delete", "list_spools", "purge_dead_letters", "replay_dead_letters"]


class SpoolInfo(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    role: str  # "current" (this base URL), "legacy" (an earlier version's, for this URL and key) or "other"
    counts: SpoolCounts | None  # None when the file cannot be read (then ``problem`` says why)
    problem: str | None = None


def _open_read_only(path: Path) -> tuple[SpoolCounts | None, str | None]:
    from ._sqlite_spool import read_counts

    try:
        return read_counts(path), None
    except (SpoolCorruptError, OSError) as exc:
        return None, str(exc)


def list_spools(config: AgentConfig, base_url: str, api_key: str | None = None) -> list[SpoolInfo]:
    """Every spool file in the spool directory of ``config``, the one for ``base_url`` first.

    Example:
        ```python
        for spool in list_spools(AgentConfig(), "http://127.0.0.1:8700"):
            print(spool.path, spool.role, spool.counts)
        ```
    """
    current = spool_file_path(config, base_url)
    legacy = legacy_spool_file_path(config, base_url, api_key) if api_key else None
    directory = spool_directory(config)
    paths = sorted(directory.glob(SPOOL_GLOB)) if directory.is_dir() else []
    infos = []
    for path in paths:
        role = "current" if path == current else "legacy" if path == legacy else "other"
        counts, problem = _open_read_only(path)
        infos.append(SpoolInfo(path=str(path), role=role, counts=counts, problem=problem))
    infos.sort(key=lambda info: (info.role != "current", info.role != "legacy", info.path))
    return infos


def dead_letters(path: Path, limit: int | None = None) -> list[DeadLetter]:
    """The dead letters of the spool at ``path``, oldest first; read-only."""
    from ._sqlite_spool import read_dead_letters

    return read_dead_letters(path, limit) if path.exists() else []


@contextlib.contextmanager
def _writable(path: Path, config: AgentConfig) -> Iterator[SqliteSpool]:
    from ._sqlite_spool import SqliteSpool

    spool = SqliteSpool(path, owner=owner_token(), max_bytes=config.max_spool_bytes, lease_seconds=config.lease_seconds)
    try:
        yield spool
    finally:
        spool.close()


def replay_dead_letters(path: Path, config: AgentConfig) -> int:
    """Put the dead letters of ``path`` back in its queue, to be sent again; returns how many."""
    with _writable(path, config) as spool:
        return spool.replay_dead_letters()


def purge_dead_letters(path: Path, config: AgentConfig) -> int:
    """Delete the dead letters of ``path`` (pending events stay); returns how many."""
    with _writable(path, config) as spool:
        return spool.purge_dead_letters()


def adopt(path: Path, others: list[Path], config: AgentConfig) -> int:
    """Move the events of ``others`` into the spool at ``path``; returns how many pending events moved."""
    with _writable(path, config) as spool:
        return sum(spool.adopt(other) for other in others)


def delete(path: Path) -> None:
    """Delete the spool at ``path`` with every event in it (``spool purge``)."""
    from ._sqlite_spool import delete_spool

    delete_spool(path)
