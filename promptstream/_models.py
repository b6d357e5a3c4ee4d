"""Wire types of protocol v1 (docs/protocol.md) as msgspec Structs.

Responses from the server are decoded leniently (unknown fields are ignored, so a newer server does not break an
older SDK); what the SDK sends is built from these Structs, so its shape is exactly the protocol's.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

__all__ = [
    "BatchRejection",
    "BatchResponse",
    "DeliveryStats",
    "ErrorBody",
    "ErrorEnvelope",
    "Event",
    "EventType",
    "ResponseInfo",
    "RunRequest",
    "RunResponse",
    "attach_response",
]

EventType = Literal["click", "conversion", "feedback", "rating", "engagement"]


class RunRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/prompts/{prompt_id}/runs``."""

    inputs: dict[str, Any]
    external_user_id: str | None = None


class ResponseInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the HTTP response of a call looked like, for debugging: ``RunResponse.response``.

    Example:
        ```python
        info = client.run_prompt("PROMPT_ID", {"text": "Hi"}).response
        print(info.status_code, info.request_id, info.headers.get("content-type"))
        ```
    """

    status_code: int
    """The HTTP status, e.g. 200 or 201 (an idempotent replay answers like the first call)."""
    headers: dict[str, str]
    """The response headers, names in lower case."""
    request_id: str | None = None
    """The server's ``x-request-id``: quote it when you report a problem."""
    elapsed: float = 0.0
    """Seconds from sending the request to reading the response, of the attempt that succeeded."""


class RunResponse(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """The result of ``run_prompt``: one execution of a prompt in an experiment.

    Two responses are equal when their fields are; ``request_id`` and ``response`` describe the HTTP exchange and
    are not part of that comparison (a replay of the same run is the same run).

    Example:
        ```python
        resp = client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
        print(resp.variant_assigned, resp.output, resp.request_id)
        ```
    """

    run_id: str
    """The run's id: pass it to every ``track_*`` call about this output, so events count towards its variant."""
    experiment_id: str
    """The experiment (the prompt's live one) the run was assigned in: for ``track_*`` and its results."""
    variant_assigned: str
    """The variant that served this run, e.g. ``"v2"``: sticky per ``external_user_id``, random without one."""
    output: str
    """The rendered output of the variant's prompt version for these inputs (at most 1 MiB of UTF-8)."""
    latency_ms: float | None = None
    """How long the model took, in milliseconds (as the model reported it, else as the server measured it); None
    from a server that predates run metrics, and for a fallback run."""
    input_tokens: int | None = None
    """Tokens of the prompt sent to the model, as the model reported them; None when it did not."""
    output_tokens: int | None = None
    """Tokens of the output, as the model reported them; None when it did not."""
    cost_usd: float | None = None
    """What the run cost in US dollars, from the price configured for its model or prompt (``promptstream serve
    --price``); None without a price or token counts."""
    is_fallback: bool = False
    """True for a run the client made itself because the server could not be reached (``run_prompt``'s
    ``fallback=``): ``output`` is the fallback, ``variant_assigned`` is ``"fallback"``, ``experiment_id`` is
    ``"offline"``; its events are delivered later and counted in no experiment's results."""

    @property
    def request_id(self) -> str | None:
        """The server's request id (``x-request-id``) of the call that returned this run; None if built by hand.

        Example:
            ```python
            log.info("run %s (request %s)", run.run_id, run.request_id)
            ```
        """
        info = self.response
        return None if info is None else info.request_id

    @property
    def response(self) -> ResponseInfo | None:
        """Status, headers and timing of the HTTP response; None for a response built by hand.

        Example:
            ```python
            if run.response is not None:
                print(run.response.status_code, run.response.elapsed)
            ```
        """
        info: ResponseInfo | None = self.__dict__.get("_response")
        return info


def attach_response(value: T, info: ResponseInfo) -> T:
    """``value`` (a Struct with ``dict=True``) carrying ``info`` as its ``response``, outside its fields."""
    value.__dict__["_response"] = info
    return value


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One tracked event as it travels to ``POST /v1/events/batch``; fields a type does not use are omitted.

    You never build one: ``track_*`` do, after validating their arguments. You meet them in ``before_send`` hooks
    and in ``RecordingClient.recorded_events``, where ``metadata`` is a plain ``dict`` (or None), which a hook may
    change with ``msgspec.structs.replace(event, metadata={...})``; what it returns is validated again like a
    ``track_*`` argument. (Inside the SDK, on the fast path, ``metadata`` travels pre-encoded as ``msgspec.Raw``.)

    Example:
        ```python
        def drop_internal_clicks(event: Event) -> Event | None:
            return None if event.type == "click" and event.label == "internal" else event

        client = PromptStreamClient(before_send=drop_internal_clicks)
        ```
    """

    event_id: str
    type: EventType
    prompt_run_id: str
    experiment_id: str
    timestamp: str
    external_user_id: str | None = None
    label: str | None = None
    source: str | None = None
    metadata: dict[str, Any] | msgspec.Raw | None = None  # Raw: encoded once, in the caller, when validated
    thumbs_up: bool | None = None
    rating: float | None = None
    engagement_score: float | None = None
    trace_id: str | None = None
    """The W3C trace id (32 lowercase hex digits) of the span the event was tracked in, when the client is
    instrumented (``promptstream.otel``): it joins the event to the request that produced it."""
    span_id: str | None = None
    """The id (16 lowercase hex digits) of that span; sent only together with ``trace_id``."""


# Event as decoded from its own bytes: msgspec decodes into Raw only where Raw is not inside a union, so this twin has
# Event's fields (derived, so they cannot drift apart) with ``metadata: Raw``, whose JSON null means "none".
_EncodedEvent = msgspec.defstruct(
    "_EncodedEvent",
    [
        (field.name, msgspec.Raw, msgspec.Raw(b"null"))
        if field.name == "metadata"
        else (field.name, field.type)
        if field.required
        else (field.name, field.type, field.default)
        for field in msgspec.structs.fields(Event)
    ],
    kw_only=True,
    frozen=True,
)

_decode_encoded_event = msgspec.json.Decoder(_EncodedEvent).decode


def decode_event(payload: bytes) -> Event:
    """The Event whose encoding ``payload`` is, with its metadata decoded to a dict (what before_send and the
    recording client see)."""
    fields = msgspec.structs.asdict(_decode_encoded_event(payload))
    fields["metadata"] = _decode_json(fields["metadata"])
    return Event(**fields)


_decode_json = msgspec.json.Decoder().decode


class BatchRejection(msgspec.Struct, frozen=True, kw_only=True):
    """One event the server refused, by its position in the batch."""

    index: int
    event_id: str | None = None
    reason: str = ""


class BatchResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The server's answer to a batch: counts, and the events it rejected."""

    accepted: int
    duplicates: int = 0
    rejected: list[BatchRejection] = msgspec.field(default_factory=list)


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "error"
    message: str = ""


class ErrorEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """``{"error": {"type": ..., "message": ...}}``, the body of every error response."""

    error: ErrorBody


class DeliveryStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the tracking agent, from ``client.stats()``. Counts are since the client was created (in
    this process), except ``pending``, ``dead_lettered`` and ``dead_letters_pruned``, which describe the spool.

    Example:
        ```python
        stats = client.stats()
        if stats.dropped:
            print(f"{stats.dropped} events were dropped: {stats.last_error}")
        ```
    """

    tracked: int = 0
    """Events accepted by ``track_*``."""
    queued: int = 0
    """Events in memory, not yet in the spool."""
    spooled: int = 0
    """Events written to the spool (or the memory spool) by this process."""
    pending: int = 0
    """Events in the spool not yet acknowledged by the server (every process's, for a shared spool)."""
    sent: int = 0
    """Events acknowledged by the server (accepted or recognised as duplicates)."""
    duplicates: int = 0
    """Of ``sent``, events the server already had: a retried batch whose first answer was lost."""
    rejected: int = 0
    """Events the server refused; they are kept in the spool's dead-letter table."""
    dead_lettered: int = 0
    """Events in the spool's dead-letter table now."""
    dead_letters_pruned: int = 0
    """Dead letters the spool dropped, oldest first, to keep its dead-letter table within its bounds (a count and a
    share of ``max_spool_bytes``), since the spool file was created, by every process sharing it."""
    dropped: int = 0
    """Events lost because the in-memory queue or the spool was full."""
    filtered: int = 0
    """Events ``before_send`` dropped by returning None."""
    hook_errors: int = 0
    """Events dropped because ``before_send`` raised or returned something other than an Event."""
    retries: int = 0
    """Delivery attempts that failed and were retried."""
    queue_full_waits: int = 0
    """``track_*`` calls that found the in-memory queue full and waited (at most 1 s) for the spooler to make room
    instead of dropping the event (docs/delivery.md)."""
    oldest_pending_age: float | None = None
    """Seconds since the oldest event still pending in the spool was spooled; None when nothing is pending. A
    growing value means delivery is not keeping up (or is failing: see ``last_error``)."""
    spool_bytes: int = 0
    """Bytes of event payload in the spool now: pending events and dead letters (they count against
    ``max_spool_bytes`` together)."""
    delivery_latency: float | None = None
    """Seconds the last acknowledged batch took, from sending its request to the server's answer; None before the
    first delivery."""
    spool_path: str | None = None
    """The spool file, or None when the agent runs memory-only."""
    spool_quarantined: int = 0
    """Spool files found corrupt and moved aside (their events are lost to delivery)."""
    paused: bool = False
    """True while delivery is paused because the server answered with a status retrying will not heal (a refused
    API key, or a ``base_url`` that is not a PromptStream server)."""
    last_error: str | None = None
    """The most recent delivery problem, if any."""
