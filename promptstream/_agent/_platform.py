"""What the spool needs from the operating system, on every platform the SDK supports (docs/platforms.md):

- ``owner_is_dead(token)``: whether the process that holds a lease is gone, so its batch can be taken over. POSIX asks
  ``kill(pid, 0)`` (and /proc for zombies); Windows asks ``OpenProcess``/``GetExitCodeProcess``. Never ``os.kill`` on
  Windows: there signal 0 is CTRL_C_EVENT, which would interrupt the process instead of probing it.
- ``exclusive_file_lock(path)``: a lock beside the spool, so that two processes never initialise, quarantine or
  delete it at once. ``fcntl.flock`` where it exists, ``msvcrt.locking`` on Windows, and otherwise SQLite's own
  file locking (an exclusive transaction on the lock file), which works wherever sqlite3 does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from ._spool import SpoolUnavailableError

__all__ = ["exclusive_file_lock", "lock_mechanism", "owner_is_dead"]

_LOCK_TIMEOUT = 10.0


def _optional_module(name: str) -> ModuleType | None:
    try:
        return __import__(name)
    except ImportError:
        return None


_fcntl = _optional_module("fcntl")  # absent on Windows
_msvcrt = _optional_module("msvcrt") if _fcntl is None else None  # Windows only


def lock_mechanism() -> str:
    """Which lock ``exclusive_file_lock`` uses here: "fcntl", "msvcrt" or "sqlite"."""
    return "fcntl" if _fcntl is not None else "msvcrt" if _msvcrt is not None else "sqlite"


def owner_is_dead(owner: str | None) -> bool:
    """True when the process named by an owner token (``<pid>:<random>``) no longer runs."""
    if not owner:
        return True
    pid_text, _, _ = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if pid == os.getpid():
        return False  # another agent of this process; it releases its own leases on close
    if sys.platform == "win32":
        return not _windows_process_alive(pid)
    if not hasattr(os, "kill"):
        return False  # cannot tell: the lease expires by itself
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    except OSError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """An exited process its parent has not reaped yet still answers kill(pid, 0); its leases are orphans all the
    same (a forked worker that called os._exit while its sender held a batch). Linux says so in /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return False  # no /proc (macOS) or no access: trust kill(), the lease still expires
    state = text[text.rfind(b")") + 2 : text.rfind(b")") + 3]  # the field after "(comm)", which may hold spaces
    return state in (b"Z", b"X")


def _windows_process_alive(pid: int) -> bool:  # pragma: no cover - runs on Windows only
    import ctypes

    process_query_limited_information, still_active = 0x1000, 259
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return bool(kernel32.GetLastError() == 5)  # ERROR_ACCESS_DENIED: it exists, owned by someone else
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


@contextlib.contextmanager
def exclusive_file_lock(path: Path) -> Iterator[None]:
    """Hold the lock ``<path>.lock`` (created 0600) for the block; SpoolUnavailableError after 10 s of waiting."""
    lock_path = f"{path}.lock"
    if _fcntl is None and _msvcrt is None:
        with _sqlite_lock(lock_path):
            yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT
        while True:
            try:
                _try_lock(fd)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EDEADLK) or time.monotonic() > deadline:
                    raise SpoolUnavailableError(f"cannot lock {lock_path}: {exc}") from exc
                threading.Event().wait(0.01)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> None:
    if _fcntl is not None:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    elif _msvcrt is not None:  # pragma: no cover - Windows
        os.lseek(fd, 0, os.SEEK_SET)
        _msvcrt.locking(fd, _msvcrt.LK_NBLCK, 1)  # one byte, past the end is fine


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if _fcntl is not None:
            _fcntl.flock(fd, _fcntl.LOCK_UN)
        elif _msvcrt is not None:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            _msvcrt.locking(fd, _msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def _sqlite_lock(lock_path: str) -> Iterator[None]:
    """SQLite's own locking (POSIX advisory locks in C, LockFileEx on Windows) as a mutex between processes: an
    exclusive transaction on an empty database file that never writes anything."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)  # owner-only before SQLite opens it
    os.close(fd)
    db = sqlite3.connect(lock_path, timeout=_LOCK_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        try:
            db.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            raise SpoolUnavailableError(f"cannot lock {lock_path}: {exc}") from exc
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
    finally:
        db.close()
