"""A fault-injecting TCP proxy for loopback tests, in the spirit of Toxiproxy: it sits between the SDK and the
reference server and makes the network misbehave. Its asyncio loop runs on its own named thread; the faults can
be changed while it runs.

Faults (all off by default):
- ``latency``: seconds added before each chunk is forwarded, both ways;
- ``bandwidth``: bytes per second each way (a tiny value is a crawling network);
- ``reset_probability``: share of server answers cut after half of their bytes, with a TCP reset (the server has
  already processed the request: the client must resend with the same key);
- ``hang``: new connections are accepted and then nothing is ever forwarded or answered;
- ``blackhole``: new connections are accepted and their bytes are read and thrown away.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from dataclasses import dataclass


@dataclass
class Faults:
    latency: float = 0.0
    bandwidth: float | None = None
    reset_probability: float = 0.0
    hang: bool = False
    blackhole: bool = False


class FaultProxy:
    def __init__(self, upstream_port: int, *, seed: int = 11) -> None:
        self.upstream_port = upstream_port
        self.faults = Faults()
        self.random = random.Random(seed)
        self.resets = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _track(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # so that _stop cancels hung handlers too, instead of leaving them to the GC
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.connections += 1
        faults = self.faults
        if faults.hang or faults.blackhole:
            try:
                while True:
                    data = await client_reader.read(65536) if faults.blackhole else await asyncio.sleep(3600)
                    if faults.blackhole and not data:
                        break
            except (asyncio.CancelledError, ConnectionError):
                pass
            finally:
                _abort(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _abort(client_writer)
            return
        done = asyncio.Event()
        self._track(self._pump(client_reader, upstream_writer, client_writer, done, answers=False))
        self._track(self._pump(upstream_reader, client_writer, upstream_writer, done, answers=True))

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
        done: asyncio.Event,
        *,
        answers: bool,
    ) -> None:
        try:
            while not done.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                faults = self.faults
                if answers and faults.reset_probability and self.random.random() < faults.reset_probability:
                    self.resets += 1
                    writer.write(data[: len(data) // 2])
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    break
                if faults.latency:
                    await asyncio.sleep(faults.latency)
                if faults.bandwidth:
                    for start in range(0, len(data), 256):
                        writer.write(data[start : start + 256])
                        await writer.drain()
                        await asyncio.sleep(256 / faults.bandwidth)
                else:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            done.set()
            _abort(writer)
            _abort(other)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a dying peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
