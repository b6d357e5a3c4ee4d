"""Which variant of an experiment serves a run (docs/protocol.md, Assignment): a user's sticky position in [0, 1)
and the weighted ranges of the variants."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    version: int | None  # None: the prompt's latest version (the default experiment)
    weight: float


def assign_bucket(experiment_id: str, external_user_id: str) -> float:
    """A user's sticky position in [0, 1) for an experiment: the same inputs always give the same position.

    Example:
        ```python
        position = assign_bucket(experiment_id, "user_123")
        assert position == assign_bucket(experiment_id, "user_123") and 0 <= position < 1
        ```
    """
    digest = hashlib.sha256(f"{experiment_id}\x00{external_user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_variant(variants: Sequence[Variant], position: float) -> Variant:
    """The variant whose share of ``[0, 1)`` holds ``position``: variants take consecutive ranges proportional to
    their weights, in their configured order (docs/protocol.md, Assignment).

    Raises ValueError when no split is possible (no variants, or a weight that is not a finite positive number).
    Weights too large to add up (an old database may hold two of 1e308) are scaled down first, which keeps the
    proportions instead of sending every user to the last variant.

    Example:
        ```python
        variant = pick_variant(variants, assign_bucket(experiment_id, "user_123"))
        ```
    """
    weights = [variant.weight for variant in variants]
    if not weights or not all(isinstance(w, (int, float)) and math.isfinite(w) and w > 0 for w in weights):
        raise ValueError(f"variant weights must be finite positive numbers, got {weights!r}")
    total = sum(weights)
    if not math.isfinite(total):
        largest = max(weights)
        weights = [w / largest for w in weights]
        total = sum(weights)
    threshold = position * total
    running = 0.0
    for variant, weight in zip(variants, weights, strict=True):
        running += weight
        if threshold < running:
            return variant
    return variants[-1]
