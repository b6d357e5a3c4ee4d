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
    queue_full_waits: int = 0
    """``track_*`` calls that found the in-memory queue full and waited (at most 1 s) for the spooler to make room
    instead of dropping the event (docs/delivery.md)."""
    oldest_pending_age: float | None = None
    """Seconds since the oldest event still pending in the spool was spooled; None when nothing is pending. A
    growing value means delivery is not keeping up (or is failing: see ``last_error``)."""
    spool_path: str | None = None
    """The spool file, or None when the agent runs memory-only."""
    spool_quarantined: int = 0
    """Spool files found corrupt and moved aside (their events are lost to delivery)."""
    paused: bool = False
    """True while delivery is paused because the server answered with a status retrying will not heal (a refused
    API key, or a ``base_url`` that is not a PromptStream server)."""
    last_error: str | None = None
    """The most recent delivery problem, if any."""


class LiftEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """A variant's lift over the control with its 95% interval and p-value, by one method: ``fixed_horizon`` (valid
    only when read once, at a sample size fixed in advance) or ``always_valid`` (valid however often it is read).

    Example:
        ```python
        safe = results.variant("v2").conversion.per_user.always_valid
        if safe is not None and safe.ci_low is not None and safe.ci_low > 0:
            print(f"v2 is better by at least {safe.ci_low:+.1%}, whenever you looked")
        ```
    """

    lift: float
    """The variant's value minus the control's (absolute)."""
    ci_low: float | None
    """Lower end of the 95% interval on the lift; None when it is undefined (no variance)."""
    ci_high: float | None
    """Upper end of the 95% interval on the lift."""
    p_value: float | None
    """Two-sided p-value of "no difference"; None when it is undefined."""
    adjusted_p_value: float | None = None
    """``always_valid`` only: Holm-adjusted across the comparisons of its family (docs/experiments.md)."""


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
    """Fixed-horizon two-sided p-value of the difference from the control (pooled z-test): valid only when read
    once at a pre-registered sample size. None for the control or with too little data."""
    fixed_horizon: LiftEstimate | None = None
    """The lift with its fixed-horizon 95% interval (Wald) and p-value; None for the control."""
    always_valid: LiftEstimate | None = None
    """The lift with its always-valid 95% interval and p-value: safe to read after every user. None for the
    control."""


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
    """Fixed-horizon two-sided p-value of Welch's t-test against the control."""
    fixed_horizon: LiftEstimate | None = None
    """The lift with its fixed-horizon 95% Welch interval and p-value; None for the control."""
    always_valid: LiftEstimate | None = None
    """The lift with its always-valid 95% interval and p-value; None for the control."""


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
    guardrail_violations: list[str] = []
    """Guardrail metrics (e.g. ``"thumbs_up"``) on which this variant is significantly worse than the control,
    by the always-valid, Holm-adjusted test."""


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


class GuardrailViolation(msgspec.Struct, frozen=True, kw_only=True):
    """A variant significantly worse than the control on a guardrail metric.

    Example:
        ```python
        for violation in results.decision.guardrail_violations:
            print(violation.variant, violation.metric, violation.lift)
        ```
    """

    variant: str
    metric: str
    """e.g. ``"thumbs_up"`` or ``"rating"``."""
    lift: float
    adjusted_p_value: float


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with the experiment now, by the peeking-safe rule (docs/experiments.md, "The decision").

    Example:
        ```python
        decision = client.get_experiment_results(experiment_id).decision
        if decision is not None and decision.action == "ship":
            print(f"ship {decision.winner}: {decision.reason}")
        ```
    """

    action: str
    """``ship``, ``keep_running``, ``no_difference``, ``keep_control``, ``stop_guardrail`` or ``investigate``."""
    winner: str | None
    """The variant to ship (only with ``action == "ship"``)."""
    reason: str
    """Why, in words."""
    primary_metric: str
    guardrail_metrics: list[str]
    alpha: float
    method: str
    guardrail_violations: list[GuardrailViolation] = []


class DataQuality(msgspec.Struct, frozen=True, kw_only=True):
    """Stored values the results left out (not finite, beyond the wire limit, or not a number).

    Example:
        ```python
        print(results.data_quality.excluded)  # e.g. {"rating": 2}
        ```
    """

    excluded: dict[str, int]
    """Left-out values per stored field (``rating``, ``engagement_score``, ``thumbs_up``, ``weight``)."""
    value_limit: float
    """The largest magnitude a rating or engagement score may have (the wire limit)."""


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
    decision: Decision | None = None
    """The peeking-safe decision; None from a server that predates it."""
    data_quality: DataQuality | None = None
    """What the results left out of the stored data; None from a server that predates it."""

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
