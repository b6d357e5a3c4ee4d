"""A paced HTTP load generator: requests at a fixed rate, each one's latency measured from the moment it was *meant*
to be sent, so a slow answer that holds up the requests behind it counts against every one of them (no coordinated
omission, as in wrk2, which Debian does not package). Runs in its own process, on raw asyncio sockets, so the
generator costs little next to the app and never shares its GIL.

    python tests/benchmarks/webapp/paced.py URL RATE SECONDS [CONNECTIONS]

Prints one JSON line: sent, completed, errors, the latency percentiles (ms), and the generator's own lag (how late
its schedule handed requests out; a large lag means the figures say more about the generator than the app).
HTTP/1.1 with keep-alive when the server keeps the connection open (uvicorn), a new connection per request when it
answers ``Connection: close`` (gunicorn's sync workers).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

_DRAIN_TIMEOUT_S = 30.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status and whether the connection stays open; the body is read and discarded."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # until the server closes
        return status, False
    return status, headers.get("connection") != "close"


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def paced(url: str, rate: float, seconds: float, connections: int) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode()
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    lags: list[float] = []
    failures = {"errors": 0, "non_200": 0}

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (intended := await queue.get()) is not None:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(request)
                status, keep_open = await _read_response(reader)
                latencies.append(time.perf_counter() - intended)
                if status != 200:
                    failures["non_200"] += 1
                if not keep_open:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                failures["errors"] += 1
                if writer is not None:
                    writer.close()
                writer = None
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        intended = start + i / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(time.perf_counter() - intended)
        queue.put_nowait(intended)
    for _ in workers:
        queue.put_nowait(None)
    _, unfinished = await asyncio.wait(workers, timeout=_DRAIN_TIMEOUT_S)
    for task in unfinished:
        task.cancel()
    elapsed = time.perf_counter() - start
    latencies.sort()
    lags.sort()

    def ms(values: list[float], q: float) -> float | None:
        value = _percentile(values, q)
        return None if value is None else value * 1e3

    return {
        "rate": rate,
        "sent": total,
        "completed": len(latencies),
        "achieved_rate": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "errors": failures["errors"],
        "non_200": failures["non_200"],
        "unfinished": total - len(latencies) - failures["errors"],
        "p50_ms": ms(latencies, 0.50),
        "p90_ms": ms(latencies, 0.90),
        "p99_ms": ms(latencies, 0.99),
        "p999_ms": ms(latencies, 0.999),
        "max_ms": latencies[-1] * 1e3 if latencies else None,
        "generator_lag_p99_ms": ms(lags, 0.99),
    }


def main() -> None:
    url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    connections = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    print(json.dumps(asyncio.run(paced(url, rate, seconds, connections))), flush=True)


if __name__ == "__main__":
    main()
