"""The objects that must act around ``fork()``: the one kind of global mutable state this SDK keeps, because
fork-safety requires it (see docs/delivery.md)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

__all__ = ["ForkAware", "ForkRegistry"]


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
        os.register_at_fork(before=self._before, after_in_parent=self._in_parent, after_in_child=self._in_child)

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
