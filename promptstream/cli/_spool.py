"""``promptstream spool status|drain|dead-letters|replay|purge``: the local spools this machine's apps keep, one per
server. Every command first lists the spools that exist; the commands talk to the small spool API in
``promptstream._agent._spool_admin``, never to the spool class itself."""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from .._agent import _spool_admin
from .._agent._location import legacy_spool_file_path, spool_file_path
from .._config import AgentConfig, redact_url, resolve_base_url
from ._common import CommandError, api_key_or_fail


def _config(args: argparse.Namespace) -> AgentConfig:
    return AgentConfig(spool_dir=Path(args.spool_dir) if args.spool_dir else None)


def _optional_key(args: argparse.Namespace) -> str | None:
    try:
        return api_key_or_fail(args.api_key)
    except CommandError:
        return None  # reading a spool needs no key: spools are per server


def _path(args: argparse.Namespace) -> Path:
    return spool_file_path(_config(args), resolve_base_url(args.base_url))


def _age(created_ms: int | None) -> str:
    if created_ms is None:
        return "—"
    seconds = max(0.0, time.time() - created_ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


_ROLES = {"current": "this server", "legacy": "an earlier version's, for this server and key", "other": "other"}


def _list(args: argparse.Namespace, *, out: Any = None) -> list[_spool_admin.SpoolInfo]:
    """Print which spools exist (every command does), and return them."""
    out = out or sys.stdout
    spools = _spool_admin.list_spools(_config(args), resolve_base_url(args.base_url), _optional_key(args))
    if not spools:
        print(f"spools:         none in {_path(args).parent}", file=out)
    for info in spools:
        c = info.counts
        held = f"{c.pending:,} pending, {c.dead_lettered:,} dead-lettered" if c else f"unreadable ({info.problem})"
        print(f"spool:          {info.path} ({_ROLES[info.role]}): {held}", file=out)
    return spools


def cmd_status(args: argparse.Namespace) -> int:
    path = _path(args)
    if args.json:
        spools = _spool_admin.list_spools(_config(args), resolve_base_url(args.base_url), _optional_key(args))
        print(json.dumps([_info_json(info) for info in spools], indent=2))
        return 0
    spools = _list(args)
    current = next((info for info in spools if info.role == "current"), None)
    print(f"this server's:  {path}")
    if current is None or current.counts is None:
        print("pending:        0 (no spool file yet)" if current is None else f"unreadable: {current.problem}")
        return 0
    counts = current.counts
    print(f"pending:        {counts.pending:,} events ({counts.pending_bytes:,} bytes)")
    print(f"dead-lettered:  {counts.dead_lettered:,} ({counts.dead_letters_pruned:,} older ones pruned)")
    print(f"oldest pending: {_age(counts.oldest_created_ms)}")
    return 0


def _info_json(info: _spool_admin.SpoolInfo) -> dict[str, Any]:
    c = info.counts
    counts = None
    if c is not None:
        counts = {
            "pending": c.pending,
            "pending_bytes": c.pending_bytes,
            "dead_lettered": c.dead_lettered,
            "dead_letters_pruned": c.dead_letters_pruned,
            "oldest_created_ms": c.oldest_created_ms,
        }
    return {"path": info.path, "role": info.role, "counts": counts, "problem": info.problem}


def _progress(total: int) -> tuple[AbstractContextManager[Any], Any]:
    """A progress bar (rich, when installed) and a function that moves it to a given count."""
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        return nullcontext(), lambda done: None
    progress = Progress(TextColumn("draining"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
    task = progress.add_task("drain", total=total)
    return progress, lambda done: progress.update(task, completed=done)


def _adopt_strays(args: argparse.Namespace, path: Path, api_key: str) -> int:
    """Events an earlier version kept under this key, and any spool the user names with --from, join this one."""
    config = _config(args)
    others = [legacy_spool_file_path(config, resolve_base_url(args.base_url), api_key)]
    others += [Path(p) for p in getattr(args, "adopt_from", None) or []]
    if not any(other.exists() for other in others):
        return 0
    moved = _spool_admin.adopt(path, others, config)
    if moved:
        print(f"adopted:        {moved:,} pending events from {', '.join(str(o) for o in others if o.exists())}")
    return moved


def _drain(args: argparse.Namespace, path: Path) -> int:
    from .._client import PromptStreamClient

    api_key = api_key_or_fail(args.api_key)
    _adopt_strays(args, path, api_key)
    if not path.exists():
        print("nothing to drain: no spool for this server")
        return 0
    start = _spool_admin.list_spools(_config(args), resolve_base_url(args.base_url))[0].counts
    total = start.pending if start else 0
    client = PromptStreamClient(api_key, base_url=args.base_url, spool_dir=path.parent)
    deadline = time.monotonic() + args.timeout
    bar, advance = _progress(total)
    try:
        with bar:
            while True:
                drained = client.flush(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                stats = client.stats()
                advance(max(0, total - stats.pending))
                if drained or time.monotonic() >= deadline or stats.paused:
                    break
        stats = client.stats()
    finally:
        client.close(timeout=1)
    if stats.pending:
        reason = f": {stats.last_error}" if stats.last_error else ""
        raise CommandError(f"{stats.pending:,} events still pending for {redact_url(client.base_url)}{reason}")
    print(f"drained: {stats.sent:,} delivered, {stats.duplicates:,} already on the server, {stats.rejected:,} rejected")
    return 0


def cmd_drain(args: argparse.Namespace) -> int:
    _list(args)
    return _drain(args, _path(args))


def cmd_dead_letters(args: argparse.Namespace) -> int:
    path = _path(args)
    letters = _spool_admin.dead_letters(path, args.limit)
    if args.json:
        rows = [
            {
                "event": json.loads(letter.payload),
                "reason": letter.reason,
                "dead_at_ms": letter.dead_at_ms,
                "spooled_at_ms": letter.created_ms,
            }
            for letter in letters
        ]
        print(json.dumps(rows, indent=2))
        return 0
    _list(args)
    if not letters:
        print("no dead letters")
        return 0
    for letter in letters:
        event = json.loads(letter.payload)
        event_id, kind = event.get("event_id", "?"), event.get("type", "?")
        print(f"{event_id}  {kind:<10}  {_age(letter.dead_at_ms):>12}  {letter.reason}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    _list(args)
    path = _path(args)
    api_key_or_fail(args.api_key)  # before anything moves: replaying needs a key to send with
    if not path.exists():
        print("nothing to replay: no spool for this server")
        return 0
    moved = _spool_admin.replay_dead_letters(path, _config(args))
    print(f"replaying:      {moved:,} dead letters")
    return _drain(args, path)


def _confirm(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise CommandError("purge deletes events: confirm with --yes when not at a terminal")
    if input(f"{question} [y/N] ").strip().lower() in ("y", "yes"):
        return True
    print("cancelled: nothing deleted")
    return False


def cmd_purge(args: argparse.Namespace) -> int:
    spools = _list(args)
    path = _path(args)
    current = next((info for info in spools if info.role == "current"), None)
    if current is None:
        print(f"nothing to purge: no spool at {path}")
        return 0
    counts = current.counts
    pending = counts.pending if counts else 0
    dead = counts.dead_lettered if counts else 0
    if args.dead_letters:
        if not _confirm(args, f"Delete the {dead:,} dead letters of {path}?"):
            return 1
        removed = _spool_admin.purge_dead_letters(path, _config(args))
        print(f"deleted {removed:,} dead letters from {path} ({pending:,} pending events kept)")
        return 0
    if not _confirm(args, f"Delete {path} with {pending:,} pending and {dead:,} dead-lettered events?"):
        return 1
    _spool_admin.delete(path)
    print(f"deleted {path} ({pending:,} pending, {dead:,} dead-lettered events)")
    return 0
