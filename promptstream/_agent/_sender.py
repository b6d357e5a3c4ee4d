"""Turns a claimed batch into one HTTP request and the server's answer into an outcome the agent acts on. It knows
the protocol and HTTP; it knows nothing of threads, spools or retries.

Every answer maps to one action and one typed error in one place, ``outcome_for_status`` (docs/delivery.md has the
table): 2xx delivers; 408/425/429/5xx retry the same batch; 400/413/422 refuse it (the agent halves it until the
event at fault is alone, then dead-letters that event); every other status pauses delivery, because retrying soon
will not heal it (a rejected key, or a ``base_url`` that is not a PromptStream server), and is reported as what it
is: ``AuthenticationError`` for 401, ``NotFoundError`` for 404, and so on.
"""

from __future__ import annotations

import logging
import zlib

import httpx
import msgspec

from .._errors import (
    APIConnectionError,
    EventRejectedError,
    InvalidResponseError,
    PromptStreamError,
)
from .._http import HttpTransport, error_from_response
from .._models import BatchResponse
from .._retry import parse_retry_after
from ._spool import ClaimedBatch

__all__ = [
    "BatchSender",
    "Delivered",
    "Outcome",
    "Paused",
    "Refused",
    "Retry",
    "checked_rejections",
    "outcome_for_status",
]

logger = logging.getLogger("promptstream")

BATCH_PATH = "/v1/events/batch"
_response_decoder = msgspec.json.Decoder(BatchResponse)
_json_encode = msgspec.json.Encoder().encode
_msgpack_encode = msgspec.msgpack.Encoder().encode
_RETRYABLE = frozenset({408, 425, 429})
_REFUSED = frozenset({400, 413, 422})


class Delivered(msgspec.Struct, frozen=True):
    """2xx: the batch is the server's. ``rejected`` lists (index, reason) of the events it refused, checked against
    the batch (see ``checked_rejections``); ``problem`` says what was wrong with an answer that had to be repaired."""

    rejected: list[tuple[int, str]]
    duplicates: int = 0
    problem: InvalidResponseError | None = None


class Retry(msgspec.Struct, frozen=True):
    """A transient failure; try the same batch (same key, same bytes) later, not before ``retry_after``."""

    error: PromptStreamError
    retry_after: float | None = None


class Refused(msgspec.Struct, frozen=True):
    """The batch as a whole cannot be accepted (400/413/422, or it cannot be encoded): split it to find the
    event(s) at fault; one event alone is dead-lettered with ``error``."""

    error: PromptStreamError


class Paused(msgspec.Struct, frozen=True):
    """A status that will not heal by retrying soon (401, 403, 404, any other 4xx or 3xx): keep everything and
    pause delivery (``auth_pause``)."""

    error: PromptStreamError


Outcome = Delivered | Retry | Refused | Paused


def outcome_for_status(response: httpx.Response) -> Outcome:
    """The one mapping from an HTTP answer to what the agent does and the error it reports."""
    status = response.status_code
    if 200 <= status < 300:
        return _delivered(response)
    error = error_from_response(response)
    if status in _RETRYABLE or status >= 500:
        return Retry(error, parse_retry_after(response.headers.get("retry-after")))
    if status in _REFUSED:
        return Refused(error)
    return Paused(error)


def _delivered(response: httpx.Response) -> Delivered:
    request_id = response.headers.get("x-request-id")
    try:
        answer = _response_decoder.decode(response.content)
    except msgspec.DecodeError as exc:
        # The server took the batch (2xx) but said nothing we can read: it is acknowledged all the same.
        problem = InvalidResponseError(
            f"unreadable batch response ({exc}); the batch counts as delivered",
            status_code=response.status_code,
            request_id=request_id,
        )
        return Delivered([], 0, problem)
    # the batch size is not known here: the agent checks the indexes against it (checked_rejections)
    return Delivered([(r.index, r.reason) for r in answer.rejected], answer.duplicates, None)


def checked_rejections(
    delivered: Delivered, batch_size: int
) -> tuple[list[tuple[int, str]], int, InvalidResponseError | None]:
    """The server's rejection list and duplicate count, made consistent with a batch of ``batch_size`` events.

    An index out of range or listed twice, or more duplicates than events, is a malformed answer: what can be
    trusted is kept (each index once, in range), the rest of the batch counts as delivered, and the answer is
    reported as an ``InvalidResponseError`` so that ``sent + rejected`` always equals the events in the batch.
    """
    seen: set[int] = set()
    kept: list[tuple[int, str]] = []
    bad: list[int] = []
    for index, reason in delivered.rejected:
        if isinstance(index, bool) or not 0 <= index < batch_size or index in seen:
            bad.append(index)
            continue
        seen.add(index)
        kept.append((index, reason))
    duplicates = delivered.duplicates
    problem = delivered.problem
    if duplicates < 0 or duplicates > batch_size - len(kept):
        bad.append(duplicates)
        duplicates = min(max(duplicates, 0), batch_size - len(kept))
    if bad and problem is None:
        problem = InvalidResponseError(
            f"malformed batch answer for {batch_size} event(s): rejection indexes or duplicate count out of range "
            f"or repeated ({bad[:5]}); kept what was consistent",
            status_code=200,
        )
    return kept, duplicates, problem


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
        """The request body and headers. Deterministic for a batch: a retry sends the very same bytes.

        Raises ``EventRejectedError`` when an event cannot be carried by the encoding (an int beyond MessagePack's
        range, bytes that are not an event): the batch is then refused and split like a 400.
        """
        if self._encoding == "msgpack":
            try:
                events = [msgspec.json.decode(p) for p in batch.payloads]
                body = _msgpack_encode({"sent_at": batch.sent_at, "events": events})
            except (msgspec.DecodeError, msgspec.EncodeError, OverflowError, TypeError, ValueError) as exc:
                raise EventRejectedError(f"cannot be encoded as msgpack: {type(exc).__name__}: {exc}") from exc
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
        try:
            body, headers = self.encode(batch)
        except EventRejectedError as exc:
            return Refused(exc)
        try:
            response = self._transport.request("POST", BATCH_PATH, content=body, headers=headers)
        except APIConnectionError as exc:  # APITimeoutError included
            return Retry(exc)
        return outcome_for_status(response)
