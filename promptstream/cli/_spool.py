"""``promptstream spool status|drain|purge``: the local spool this machine's apps share with one server and key."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from .._config import AgentConfig, resolve_base_url
from ..agent import SpoolCounts, SqliteSpool, delete_spool, owner_token, spool_file_path
from ._common import CommandError, api_key_or_fail, display_url


def _path(args: argparse.Namespace) -> Path:
    config = AgentConfig(spool_dir=Path(args.spool_dir) if args.spool_dir else None)
    return spool_file_path(config, resolve_base_url(args.base_url), api_key_or_fail(args.api_key))


def _counts(path: Path) -> SpoolCounts:
    spool = SqliteSpool(path, owner=owner_token(), max_bytes=AgentConfig().max_spool_bytes, lease_seconds=60)
    try:
        return spool.counts()
    finally:
        spool.close()


def _age(created_ms: int | None) -> str:
    if created_ms is None:
        return "—"
    seconds = max(0.0, time.time() - created_ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def cmd_status(args: argparse.Namespace) -> int:
    path = _path(args)
    print(f"spool:          {path}")
    if not path.exists():
        print("pending:        0 (no spool file yet)")
        return 0
    counts = _counts(path)
    print(f"pending:        {counts.pending:,} events ({counts.pending_bytes:,} bytes)")
    print(f"dead-lettered:  {counts.dead_lettered:,}")
    print(f"oldest pending: {_age(counts.oldest_created_ms)}")
    return 0


def _progress(total: int) -> tuple[AbstractContextManager[Any], Any]:
    """A progress bar (rich, when installed) and a function that moves it to a given count."""
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        return nullcontext(), lambda done: None
    progress = Progress(TextColumn("draining"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
    task = progress.add_task("drain", total=total)
    return progress, lambda done: progress.update(task, completed=done)


def cmd_drain(args: argparse.Namespace) -> int:
    from .._client import PromptStreamClient

    path = _path(args)
    if not path.exists():
        print("nothing to drain (no spool file yet)")
        return 0
    start = _counts(path).pending
    client = PromptStreamClient(args.api_key, base_url=args.base_url, spool_dir=path.parent)
    deadline = time.monotonic() + args.timeout
    bar, advance = _progress(start)
    try:
        with bar:
            while True:
                drained = client.flush(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                stats = client.stats()
                advance(max(0, start - stats.pending))
                if drained or time.monotonic() >= deadline or stats.paused:
                    break
        stats = client.stats()
    finally:
        client.close(timeout=1)
    if stats.pending:
        reason = f": {stats.last_error}" if stats.last_error else ""
        raise CommandError(f"{stats.pending:,} events still pending for {display_url(client.base_url)}{reason}")
    print(f"drained: {stats.sent:,} delivered, {stats.duplicates:,} already on the server, {stats.rejected:,} rejected")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    path = _path(args)
    if not path.exists():
        print(f"nothing to purge: no spool at {path}")
        return 0
    counts = _counts(path)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("purge deletes events: confirm with --yes when not at a terminal")
        answer = input(
            f"Delete {path} with {counts.pending:,} pending and {counts.dead_lettered:,} dead-lettered events? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("cancelled: nothing deleted")
            return 1
    delete_spool(path)
    print(f"deleted {path} ({counts.pending:,} pending, {counts.dead_lettered:,} dead-lettered events)")
    return 0
