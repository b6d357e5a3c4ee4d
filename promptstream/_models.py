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
    """The run's id: pass it to ``track_*`` as ``prompt_run_id``."""
    experiment_id: str
    """The experiment the run was assigned in."""
    variant_assigned: str
    """The variant served, e.g. ``"v2"``."""
    output: str
    """The rendered prompt output."""

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
    and in ``RecordingClient.recorded_events``.

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
    two-sided p-value of a pooled two-proportion z-test against the control.

    Example:
        ```python
        conversion = results.variant("v2").conversion.per_user
        if conversion.p_value is not None and conversion.p_value < 0.05:
            print(f"v2 converts {conversion.lift:+.1%} vs the control, p = {conversion.p_value:.3f}")
        ```
    """

    successes: int
    """Runs (or users) with the outcome."""
    trials: int
    """Runs (or users) that could have had it."""
    rate: float | None
    """``successes / trials``; None with no trials."""
    ci_low: float
    """Lower end of the 95% Wilson interval."""
    ci_high: float
    """Upper end of the 95% Wilson interval."""
    lift: float | None = None
    """``rate`` minus the control's rate (absolute); None for the control itself."""
    relative_lift: float | None = None
    """``lift`` divided by the control's rate; None when that is 0 or for the control."""
    p_value: float | None = None
    """Two-sided p-value of the difference from the control; None for the control or with too little data."""


class MeanResult(msgspec.Struct, frozen=True, kw_only=True):
    """A mean with its 95% t-interval and, against the control, its lift and Welch's t-test p-value.

    Example:
        ```python
        rating = results.variant("v2").rating
        print(f"{rating.mean:.2f} stars from {rating.n} rated runs, p = {rating.p_value}")
        ```
    """

    n: int
    """Observations: rated runs for ``rating``, engaged runs for ``engagement``."""
    mean: float | None
    """None with no observations."""
    ci_low: float | None
    """Lower end of the 95% t-interval; None with fewer than 2 observations."""
    ci_high: float | None
    """Upper end of the 95% t-interval; None with fewer than 2 observations."""
    lift: float | None = None
    """``mean`` minus the control's mean; None for the control itself."""
    relative_lift: float | None = None
    """``lift`` divided by the control's mean."""
    p_value: float | None = None
    """Two-sided p-value of Welch's t-test against the control."""


class OutcomeRates(msgspec.Struct, frozen=True, kw_only=True):
    """An outcome (click, conversion) counted once per run, and once per user.

    Example:
        ```python
        clicks = results.variant("v1").click_through
        print(clicks.per_run.rate, clicks.per_user.rate)
        ```
    """

    per_run: RateResult
    """Runs with at least one such event, among all runs."""
    per_user: RateResult
    """Users with at least one such event, among users with a run (runs without a user id are left out)."""


class VariantResult(msgspec.Struct, frozen=True, kw_only=True):
    """Everything measured for one variant of an experiment.

    Example:
        ```python
        for variant in results.variants:
            print(variant.variant, variant.runs, variant.conversion.per_user.rate, variant.thumbs_up.rate)
        ```
    """

    variant: str
    """The variant's name, e.g. ``"v1"``."""
    weight: float
    """Its configured share of traffic."""
    runs: int
    users: int
    """Distinct ``external_user_id`` values among its runs."""
    events: dict[str, int]
    """Deduplicated events per type."""
    click_through: OutcomeRates
    conversion: OutcomeRates
    thumbs_up: RateResult
    """Share of runs whose latest feedback is a thumbs-up, among runs with feedback."""
    rating: MeanResult
    """The latest rating of each rated run."""
    engagement: MeanResult
    """Each engaged run's total engagement."""


class SampleRatio(msgspec.Struct, frozen=True, kw_only=True):
    """Chi-squared goodness-of-fit of runs and users per variant against the configured weights.

    Example:
        ```python
        if results.sample_ratio.mismatch:
            print("traffic split does not match the weights: fix assignment before reading lifts")
        ```
    """

    runs_p_value: float | None
    users_p_value: float | None
    mismatch: bool
    """Either p-value below 0.001: the assignment itself looks broken; do not trust the lifts."""


class ExperimentResults(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/experiments/{id}/results``: every figure is explained in docs/experiments.md.

    Example:
        ```python
        results = client.get_experiment_results(run.experiment_id)
        for variant in results.variants:
            print(variant.variant, variant.conversion.per_user.rate, variant.conversion.per_user.p_value)
        ```
    """

    experiment_id: str
    prompt_id: str
    control: str | None
    """The variant the others are compared with: the first one configured."""
    variants: list[VariantResult]
    sample_ratio: SampleRatio
    sufficient_sample: bool
    """False until every variant has 100 runs, 10 of them with a conversion and 10 without."""
    warnings: list[str]
    """Why the numbers cannot be trusted yet, in words (empty when they can)."""

    def variant(self, name: str) -> VariantResult:
        """The variant called ``name``; ``KeyError`` if the experiment has none.

        Example:
            ```python
            v2 = client.get_experiment_results(experiment_id).variant("v2")
            ```
        """
        for variant in self.variants:
            if variant.variant == name:
                return variant
        raise KeyError(name)
