"""The objects that must act around ``fork()``: the one kind of global mutable state this SDK keeps, because
fork-safety requires it (see docs/delivery.md)."""

from __future__ import annotations

import importlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

__all__ = ["ForkAware", "ForkRegistry", "at_fork", "import_in_background"]


def at_fork(
    *,
    before: Callable[[], object] | None = None,
    after_in_parent: Callable[[], object] | None = None,
    after_in_child: Callable[[], object] | None = None,
) -> None:
    """``os.register_at_fork`` where the platform can fork; nothing where it cannot (Windows), since no process
    there is ever a copy of another."""
    register = getattr(os, "register_at_fork", None)
    if register is None:
        return
    hooks = {"before": before, "after_in_parent": after_in_parent, "after_in_child": after_in_child}
    register(**{name: hook for name, hook in hooks.items() if hook is not None})


class ForkAware(Protocol):
    def _before_fork(self) -> None: ...
    def _after_fork_in_parent(self) -> None: ...
    def _after_fork_in_child(self) -> None: ...


T = TypeVar("T", bound=ForkAware)


class ForkRegistry(Generic[T]):
    """A set of live objects whose fork hooks run around every ``os.fork()`` of the process.

    The objects prepared before a fork are exactly the ones the parent resumes after it, even if another thread
    adds one in between; the child resets every live one. ``weak`` registries let their objects be collected.
    """

    def __init__(self, *, weak: bool) -> None:
        self._objects: weakref.WeakSet[T] | set[T] = weakref.WeakSet() if weak else set()
        self._forking: list[T] = []
        at_fork(before=self._before, after_in_parent=self._in_parent, after_in_child=self._in_child)

    def add(self, obj: T) -> None:
        self._objects.add(obj)

    def discard(self, obj: T) -> None:
        self._objects.discard(obj)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._objects))  # a snapshot: hooks and exit handlers may add or remove while iterating

    def _before(self) -> None:
        self._forking = list(self._objects)
        for obj in self._forking:
            obj._before_fork()

    def _in_parent(self) -> None:
        for obj in self._forking:
            obj._after_fork_in_parent()
        self._forking = []

    def _in_child(self) -> None:
        self._forking = []
        for obj in list(self._objects):  # all of them: one added by another thread mid-fork too
            obj._after_fork_in_child()


# A fork() that lands while a thread is inside a first-time import leaves that module's import lock held for ever in
# the child, whose first use of the module then deadlocks (seen with gunicorn --preload: create a client, fork at
# once). Our threads import what they need lazily, under this lock, and fork() waits for it. Lazily, so that
# `import promptstream` and constructing a client stay cheap and do no file I/O.
_import_lock = threading.Lock()
_import_lock_held_for_fork = False


def import_in_background(*modules: str) -> None:
    """Import ``modules`` from one of our background threads, never across a fork()."""
    with _import_lock:
        for name in modules:
            importlib.import_module(name)


def _hold_imports() -> None:
    global _import_lock_held_for_fork
    # bounded: an import stuck for 10 s is not a reason to hang the application's fork()
    _import_lock_held_for_fork = _import_lock.acquire(timeout=10)


def _release_imports() -> None:
    global _import_lock_held_for_fork
    if _import_lock_held_for_fork:
        _import_lock_held_for_fork = False
        _import_lock.release()


def _fresh_imports_lock() -> None:
    global _import_lock, _import_lock_held_for_fork
    _import_lock, _import_lock_held_for_fork = threading.Lock(), False


at_fork(before=_hold_imports, after_in_parent=_release_imports, after_in_child=_fresh_imports_lock)
