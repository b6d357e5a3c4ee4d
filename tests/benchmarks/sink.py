"""A minimal, fast loopback HTTP sink for the benchmarks: it accepts any POST, counts the events in it and their
distinct ids, and answers 200 with a body every contender accepts. It must never be the bottleneck, so it is a bare
asyncio protocol (HTTP/1.1 keep-alive, Content-Length bodies only) and the suite reports its ceiling.

Understands PromptStream (``{"events": [...]}``, JSON or msgpack, ``event_id``), Segment (``{"batch": [...]}``,
``messageId``) and PostHog (``{"batch": [...]}``, ``uuid``), gzip or not.

    python tests/benchmarks/sink.py PORT      # prints "ready" once listening
    GET /stats -> {"events", "distinct", "requests", "wire_bytes"};  POST /reset zeroes them.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from typing import Any

import msgspec

_ACK = json.dumps({"accepted": 0, "duplicates": 0, "rejected": [], "status": 1}).encode()
_ID_FIELDS = ("event_id", "messageId", "uuid")


class Counts:
    def __init__(self) -> None:
        self.events = 0
        self.ids: set[str] = set()
        self.requests = 0
        self.wire_bytes = 0

    def as_json(self) -> bytes:
        return json.dumps(
            {"events": self.events, "distinct": len(self.ids), "requests": self.requests, "wire_bytes": self.wire_bytes}
        ).encode()


def _events_in(body: bytes, headers: dict[bytes, bytes]) -> list[dict[str, Any]]:
    if headers.get(b"content-encoding") == b"gzip":
        body = gzip.decompress(body)
    if headers.get(b"content-type", b"").startswith(b"application/msgpack"):
        document = msgspec.msgpack.decode(body)
    else:
        document = msgspec.json.decode(body)
    events = document.get("events", document.get("batch", []))
    return events if isinstance(events, list) else []


class SinkProtocol(asyncio.Protocol):
    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._handle_one():
            pass

    def _handle_one(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).split(b"\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        method, path = head[0].split(b" ")[:2]
        if path == b"/stats":
            self._reply(self.counts.as_json())
        elif path == b"/reset":
            self.counts.__init__()  # type: ignore[misc]
            self._reply(b"{}")
        else:
            self.counts.requests += 1
            self.counts.wire_bytes += end + 4 + length
            events = _events_in(body, headers) if method == b"POST" else []
            self.counts.events += len(events)
            ids = self.counts.ids
            for event in events:
                for field in _ID_FIELDS:
                    if field in event:
                        ids.add(event[field])
                        break
            self._reply(_ACK)
        return True

    def _reply(self, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )


async def serve(port: int) -> None:
    counts = Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(counts), "127.0.0.1", port, reuse_address=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
