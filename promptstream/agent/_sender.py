"""Turns a claimed batch into one HTTP request and the server's answer into an outcome the agent acts on. It knows
the protocol and HTTP; it knows nothing of threads, spools or retries."""

from __future__ import annotations

import logging
import zlib

import httpx
import msgspec

from .._errors import APIConnectionError, APITimeoutError
from .._http import HttpTransport
from .._models import BatchResponse
from .._retry import parse_retry_after
from ._spool import ClaimedBatch

__all__ = ["BatchSender", "Delivered", "Outcome", "Paused", "Refused", "Retry"]

logger = logging.getLogger("promptstream")

BATCH_PATH = "/v1/events/batch"
_response_decoder = msgspec.json.Decoder(BatchResponse)
_json_encode = msgspec.json.Encoder().encode
_msgpack_encode = msgspec.msgpack.Encoder().encode
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
_REFUSED = frozenset({400, 413, 422})


class Delivered(msgspec.Struct, frozen=True):
    """2xx: the batch is the server's; rejected events are listed by index."""

    response: BatchResponse


class Retry(msgspec.Struct, frozen=True):
    """A transient failure; try the same batch (same key, same bytes) later, not before ``retry_after``."""

    reason: str
    retry_after: float | None = None


class Refused(msgspec.Struct, frozen=True):
    """400/413/422 for the whole batch: split it to find the event(s) at fault."""

    reason: str
    status: int


class Paused(msgspec.Struct, frozen=True):
    """401/403 (or another status that will not heal by retrying soon): keep everything, pause delivery."""

    reason: str
    status: int


Outcome = Delivered | Retry | Refused | Paused


def _gzip(body: bytes) -> bytes:
    """A gzip member at level 1 with mtime 0 (so a retried batch is byte-identical). zlib writes it directly:
    httpx has imported zlib already, and the gzip module would add to `import promptstream`."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


class BatchSender:
    def __init__(self, transport: HttpTransport, *, encoding: str = "json", gzip_threshold: int = 16 * 1024) -> None:
        self._transport = transport
        self._encoding = encoding
        self._gzip_threshold = gzip_threshold

    def encode(self, batch: ClaimedBatch) -> tuple[bytes, dict[str, str]]:
        """The request body and headers. Deterministic for a batch: a retry sends the very same bytes."""
        if self._encoding == "msgpack":
            events = [msgspec.json.decode(p) for p in batch.payloads]
            body = _msgpack_encode({"sent_at": batch.sent_at, "events": events})
            content_type = "application/msgpack"
        else:
            # The events were encoded once, when spooled: the body is joined from their bytes.
            body = b'{"sent_at":' + _json_encode(batch.sent_at) + b',"events":[' + b",".join(batch.payloads) + b"]}"
            content_type = "application/json"
        headers = {"Content-Type": content_type, "Idempotency-Key": batch.batch_id}
        if len(body) >= self._gzip_threshold:
            # level 1: most of the size win for a fraction of the CPU; mtime=0 keeps retries byte-identical
            body = _gzip(body)
            headers["Content-Encoding"] = "gzip"
        return body, headers

    def send(self, batch: ClaimedBatch) -> Outcome:
        body, headers = self.encode(batch)
        try:
            response = self._transport.request("POST", BATCH_PATH, content=body, headers=headers)
        except APITimeoutError as exc:
            return Retry(f"timeout: {exc}")
        except APIConnectionError as exc:
            return Retry(str(exc))
        return self.classify(response)

    @staticmethod
    def classify(response: httpx.Response) -> Outcome:
        status = response.status_code
        request_id = response.headers.get("x-request-id")
        if 200 <= status < 300:
            try:
                return Delivered(_response_decoder.decode(response.content))
            except msgspec.DecodeError:
                # The server took the batch (2xx) but said nothing we can read: it is acknowledged all the same.
                logger.warning("promptstream: unreadable batch response (request id %s)", request_id)
                return Delivered(BatchResponse(accepted=0))
        reason = f"HTTP {status} from the server (request id {request_id}): {response.text[:200]}"
        if status in _RETRYABLE or status >= 500:
            return Retry(reason, parse_retry_after(response.headers.get("retry-after")))
        if status in _REFUSED:
            return Refused(reason, status)
        return Paused(reason, status)
