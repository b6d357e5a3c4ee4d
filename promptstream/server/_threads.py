"""Blocking work off the event loop. Each call runs on its own short-lived thread, named ``promptstream-server-...``,
at most ``limit`` at once per lane: SQLite, decoding and the model never stall the loop, a crowd of slow models (one
lane) never takes the threads the rest of the server needs (another lane), and no idle thread lingers between requests
(a process that embeds the server, a test suite, sees its thread count come back to where it was).

Starting a thread costs tens of microseconds, nothing next to a request's own work."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Lane:
    """Runs blocking calls on fresh threads, at most ``limit`` at once (per event loop).

    Example:
        ```python
        store_work = Lane("store", limit=64)
        prompts = await store_work.run(store.list_prompts, "default")
        ```
    """

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        # one semaphore per loop: a ServerThread stopped and started again serves the same app from a new loop
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on its own thread; its result or its exception, here.

        Example:
            ```python
            status, body = await runs.run(store.create_run, "default", prompt_id, inputs, None)
            ```
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            slots = self._slots.get(loop)
            if slots is None:
                slots = self._slots[loop] = asyncio.Semaphore(self.limit)
        await slots.acquire()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            slots.release()  # only when the work is done, even if the waiting request was cancelled meanwhile
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def work() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = function(*args)
            except Exception as exc:  # handed to the awaiting request, which answers with the envelope
                error = exc
            except BaseException as exc:  # never leave the request (and its slot) waiting
                error = RuntimeError(f"worker thread stopped: {exc!r}")
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (server stopped): nobody waits
                loop.call_soon_threadsafe(settle, result, error)

        try:
            threading.Thread(target=work, name=f"promptstream-server-{self.name}", daemon=True).start()
        except BaseException:
            slots.release()
            raise
        return await future
