"""The server's own view of protocol v1 (docs/protocol.md). Deliberately independent of the SDK's structs: the two
sides meet only on the wire, so a change to one that breaks the protocol shows up in the tests."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ._limits import MAX_SCORE, MAX_TEXT_LENGTH, MAX_VARIANTS, MAX_WEIGHT, metadata_problem, timestamp_problem

EventType = Literal["click", "conversion", "feedback", "rating", "engagement"]
# ids, label, source: non-empty, bounded (decoding guarantees valid Unicode: msgspec refuses lone surrogates)
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT_LENGTH)]
# \Z, not $: msgspec searches with re, and $ would accept a trailing newline
EventId = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
]
# W3C Trace Context ids, lowercase hex (docs/protocol.md); all zeros is invalid there, refused in event_problem
TraceId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}\Z")]
SpanId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{16}\Z")]
# NaN fails both bounds, so these also mean "finite"
Score = Annotated[float, msgspec.Meta(ge=-MAX_SCORE, le=MAX_SCORE)]
Weight = Annotated[float, msgspec.Meta(gt=0, le=MAX_WEIGHT)]


class CreatePrompt(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    template: str


class AddVersion(msgspec.Struct, forbid_unknown_fields=True):
    template: str


class VariantSpec(msgspec.Struct, forbid_unknown_fields=True):
    """One variant of a new experiment: a prompt version and its relative share of traffic.

    Example:
        ```python
        variants = [VariantSpec(version=1, weight=3.0), VariantSpec(version=2)]  # 75/25
        store.create_experiment("default", prompt_id, variants)
        ```
    """

    version: int
    weight: Weight = 1.0


class CreateExperiment(msgspec.Struct, forbid_unknown_fields=True):
    prompt_id: str
    variants: Annotated[list[VariantSpec], msgspec.Meta(min_length=1, max_length=MAX_VARIANTS)]
    name: str | None = None


class RunBody(msgspec.Struct, forbid_unknown_fields=True):
    inputs: dict[str, Any]
    external_user_id: Text | None = None


class AssignBody(msgspec.Struct, forbid_unknown_fields=True):
    prompt_id: Text
    external_user_id: Text | None = None


class BatchBody(msgspec.Struct):
    sent_at: str
    events: list[msgspec.Raw]


class EventBody(msgspec.Struct, forbid_unknown_fields=True):
    event_id: EventId
    type: EventType
    prompt_run_id: Text
    experiment_id: Text
    timestamp: str
    external_user_id: Text | None = None
    label: Text | None = None
    source: Text | None = None
    metadata: dict[str, Any] | None = None
    thumbs_up: bool | None = None
    rating: Score | None = None
    engagement_score: Score | None = None
    trace_id: TraceId | None = None
    span_id: SpanId | None = None


class Rejection(msgspec.Struct):
    index: int
    event_id: str | None
    reason: str


class BatchResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[Rejection]


_REQUIRED_FIELD = {
    "click": "label",
    "conversion": "label",
    "feedback": "thumbs_up",
    "rating": "rating",
    "engagement": "engagement_score",
}


def event_problem(event: EventBody) -> str | None:
    """Why a decoded event breaks the protocol beyond what its type says (docs/protocol.md, Limits), or None."""
    required = _REQUIRED_FIELD[event.type]
    if getattr(event, required) is None:
        return f"a {event.type} event needs {required}"
    if (event.trace_id is None) != (event.span_id is None):
        return "trace_id and span_id go together: an event carries both or neither"
    if event.trace_id is not None and (event.trace_id.count("0") == 32 or str(event.span_id).count("0") == 16):
        return "trace_id and span_id must not be all zeros (W3C Trace Context: an invalid id)"
    problem = timestamp_problem(event.timestamp)
    if problem is None and event.metadata is not None:
        problem = metadata_problem(event.metadata)
    return problem
