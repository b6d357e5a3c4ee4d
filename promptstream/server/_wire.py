"""The server's own view of protocol v1 (docs/protocol.md). Deliberately independent of the SDK's structs: the two
sides meet only on the wire, so a change to one that breaks the protocol shows up in the tests."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

EventType = Literal["click", "conversion", "feedback", "rating", "engagement"]


class CreatePrompt(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    template: str


class AddVersion(msgspec.Struct, forbid_unknown_fields=True):
    template: str


class VariantSpec(msgspec.Struct, forbid_unknown_fields=True):
    """One variant of a new experiment: a prompt version and its relative share of traffic.

    Example:
        ```python
        store.create_experiment(prompt_id, [VariantSpec(version=1, weight=3.0), VariantSpec(version=2)])  # 75/25
        ```
    """

    version: int
    weight: float = 1.0


class CreateExperiment(msgspec.Struct, forbid_unknown_fields=True):
    prompt_id: str
    variants: list[VariantSpec]
    name: str | None = None


class RunBody(msgspec.Struct, forbid_unknown_fields=True):
    inputs: dict[str, Any]
    external_user_id: str | None = None


class BatchBody(msgspec.Struct):
    sent_at: str
    events: list[msgspec.Raw]


class EventBody(msgspec.Struct, forbid_unknown_fields=True):
    event_id: str
    type: EventType
    prompt_run_id: str
    experiment_id: str
    timestamp: str
    external_user_id: str | None = None
    label: str | None = None
    source: str | None = None
    metadata: dict[str, Any] | None = None
    thumbs_up: bool | None = None
    rating: float | None = None
    engagement_score: float | None = None


class Rejection(msgspec.Struct):
    index: int
    event_id: str | None
    reason: str


class BatchResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[Rejection]
