"""Wire types of protocol v1 (docs/protocol.md) as msgspec Structs.

Responses from the server are decoded leniently (unknown fields are ignored, so a newer server does not break an
older SDK); what the SDK sends is built from these Structs, so its shape is exactly the protocol's.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "BatchRejection",
    "BatchResponse",
    "DeliveryStats",
    "ErrorBody",
    "ErrorEnvelope",
    "Event",
    "EventType",
    "RunRequest",
    "RunResponse",
]

EventType = Literal["click", "conversion", "feedback", "rating", "engagement"]


class RunRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/prompts/{prompt_id}/runs``."""

    inputs: dict[str, Any]
    external_user_id: str | None = None


class RunResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The result of ``run_prompt``: one execution of a prompt in an experiment.

    Example::

        resp = client.run_prompt("PROMPT_ID", {"text": "Hi"}, external_user_id="user_123")
        print(resp.variant_assigned, resp.output)
    """

    run_id: str
    experiment_id: str
    variant_assigned: str
    output: str


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One tracked event as it travels to ``POST /v1/events/batch``; fields a type does not use are omitted."""

    event_id: str
    type: EventType
    prompt_run_id: str
    experiment_id: str
    timestamp: str
    external_user_id: str | None = None
    label: str | None = None
    source: str | None = None
    metadata: msgspec.Raw | None = None  # encoded once, in the caller, when it was validated
    thumbs_up: bool | None = None
    rating: float | None = None
    engagement_score: float | None = None


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
    """The Event whose encoding ``payload`` is (what before_send and the recording client see)."""
    fields = msgspec.structs.asdict(_decode_encoded_event(payload))
    if bytes(fields["metadata"]) == b"null":
        fields["metadata"] = None
    return Event(**fields)


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
    this process), except ``pending`` and ``dead_lettered``, which describe the spool as it is now.

    Example::

        stats = client.stats()
        if stats.dropped:
            print(f"{stats.dropped} events were dropped: {stats.last_error}")
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
    dropped: int = 0
    """Events lost because the in-memory queue or the spool was full."""
    filtered: int = 0
    """Events ``before_send`` dropped by returning None."""
    hook_errors: int = 0
    """Events dropped because ``before_send`` raised or returned something other than an Event."""
    retries: int = 0
    """Delivery attempts that failed and were retried."""
    spool_path: str | None = None
    """The spool file, or None when the agent runs memory-only."""
    spool_quarantined: int = 0
    """Spool files found corrupt and moved aside (their events are lost to delivery)."""
    paused: bool = False
    """True while delivery is paused because the server refused the API key."""
    last_error: str | None = None
    """The most recent delivery problem, if any."""


class RateResult(msgspec.Struct, frozen=True, kw_only=True):
    """A proportion with its 95% Wilson interval and, for a variant other than the control, its lift and the
    two-sided p-value of a two-proportion z-test against the control."""

    successes: int
    trials: int
    rate: float | None  # None with no trials
    ci_low: float
    ci_high: float
    lift: float | None = None  # rate - control's rate
    relative_lift: float | None = None  # lift / control's rate
    p_value: float | None = None


class MeanResult(msgspec.Struct, frozen=True, kw_only=True):
    """A mean with its 95% t-interval and, against the control, its lift and Welch's t-test p-value."""

    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    lift: float | None = None
    relative_lift: float | None = None
    p_value: float | None = None


class OutcomeRates(msgspec.Struct, frozen=True, kw_only=True):
    """An outcome (click, conversion) counted once per run, and once per user."""

    per_run: RateResult
    per_user: RateResult


class VariantResult(msgspec.Struct, frozen=True, kw_only=True):
    variant: str
    weight: float
    runs: int
    users: int
    events: dict[str, int]  # deduplicated events per type
    click_through: OutcomeRates
    conversion: OutcomeRates
    thumbs_up: RateResult  # share of runs whose latest feedback is a thumbs-up, among runs with feedback
    rating: MeanResult  # the latest rating of each rated run
    engagement: MeanResult  # each engaged run's total engagement


class SampleRatio(msgspec.Struct, frozen=True, kw_only=True):
    """Chi-squared goodness-of-fit of runs and users per variant against the configured weights."""

    runs_p_value: float | None
    users_p_value: float | None
    mismatch: bool  # either p-value below 0.001: the assignment itself looks broken; do not trust the lifts


class ExperimentResults(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/experiments/{id}/results``: every figure is explained in docs/experiments.md.

    Example::

        results = client.get_experiment_results(run.experiment_id)
        for variant in results.variants:
            print(variant.variant, variant.conversion.per_user.rate, variant.conversion.per_user.p_value)
    """

    experiment_id: str
    prompt_id: str
    control: str | None
    variants: list[VariantResult]
    sample_ratio: SampleRatio
    sufficient_sample: bool
    warnings: list[str]

    def variant(self, name: str) -> VariantResult:
        """The variant called ``name`` (e.g. ``"v2"``); KeyError if the experiment has none."""
        for variant in self.variants:
            if variant.variant == name:
                return variant
        raise KeyError(name)
