"""``track_*``: the fire-and-forget half of both clients. Each validates its arguments in the caller's thread,
encodes the event once and hands it to the agent's queue (or, for a disabled client, to nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from ._ids import stamp_event
from ._models import Event
from ._validation import (
    check_bool,
    check_id,
    check_label,
    check_number,
    check_optional_label,
    check_trace_context,
    encode_metadata,
)

__all__ = ["TrackingMethods"]

_encode = msgspec.json.Encoder().encode


class TrackingMethods:
    """The ``track_*`` methods; the client sets ``_enqueue`` (where events go) and ``_hash_user_id``."""

    _enqueue: Callable[[bytes], None]
    _hash_user_id: Callable[[str], str] | None
    _span_ids: Callable[[], tuple[str, str] | None] | None = None  # the instrumentation's, if any

    def track_click(
        self,
        prompt_run_id: str,
        experiment_id: str,
        label: str,
        external_user_id: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record a click on something the run produced. Returns the event's id.

        Example:
            ```python
            client.track_click(run.run_id, run.experiment_id, label="copy", metadata={"position": 1})
            ```
        """
        return self._track_labelled("click", prompt_run_id, experiment_id, label, external_user_id, source, metadata)

    def track_conversion(
        self,
        prompt_run_id: str,
        experiment_id: str,
        label: str = "conversion",
        external_user_id: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record that the user converted after the run (signed up, bought, ...). Returns the event's id.

        Example:
            ```python
            client.track_conversion(run.run_id, run.experiment_id, label="purchase", metadata={"value": 42})
            ```
        """
        return self._track_labelled(
            "conversion", prompt_run_id, experiment_id, label, external_user_id, source, metadata
        )

    def track_feedback(
        self,
        prompt_run_id: str,
        experiment_id: str,
        thumbs_up: bool,
        external_user_id: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record thumbs-up (True) or thumbs-down (False) feedback on the run. Returns the event's id.

        Example:
            ```python
            client.track_feedback(run.run_id, run.experiment_id, thumbs_up=True)
            ```
        """
        return self._track(
            "feedback",
            prompt_run_id,
            experiment_id,
            external_user_id,
            thumbs_up=check_bool("thumbs_up", thumbs_up),
            source=check_optional_label("source", source),
            metadata=encode_metadata(metadata),
        )

    def track_rating(
        self, prompt_run_id: str, experiment_id: str, rating: float, external_user_id: str | None = None
    ) -> str:
        """Record a numeric rating of the run (any finite number; your scale). Returns the event's id.

        Example:
            ```python
            client.track_rating(run.run_id, run.experiment_id, rating=4.5)
            ```
        """
        return self._track(
            "rating", prompt_run_id, experiment_id, external_user_id, rating=check_number("rating", rating)
        )

    def track_engagement(
        self,
        prompt_run_id: str,
        experiment_id: str,
        engagement_score: float,
        external_user_id: str | None = None,
    ) -> str:
        """Record an engagement score for the run (e.g. seconds read; any finite number). Returns the event's id.

        Example:
            ```python
            client.track_engagement(run.run_id, run.experiment_id, engagement_score=37.5)
            ```
        """
        return self._track(
            "engagement",
            prompt_run_id,
            experiment_id,
            external_user_id,
            engagement_score=check_number("engagement_score", engagement_score),
        )

    def _track_labelled(
        self,
        event_type: Literal["click", "conversion"],
        prompt_run_id: str,
        experiment_id: str,
        label: str,
        external_user_id: str | None,
        source: str | None,
        metadata: dict[str, Any] | None,
    ) -> str:
        # The hot path: one call level below track_*, checks written out rather than delegated, because every call
        # level and keyword hop is a measurable share of a ~1 µs budget (tests/benchmarks/).
        event_id, timestamp = stamp_event()
        event = Event(
            event_id=event_id,
            timestamp=timestamp,
            type=event_type,
            prompt_run_id=check_id("prompt_run_id", prompt_run_id),
            experiment_id=check_id("experiment_id", experiment_id),
            external_user_id=None if external_user_id is None else self._user_id(external_user_id),
            label=check_label("label", label),
            source=None if source is None else check_label("source", source),
            metadata=None if metadata is None else encode_metadata(metadata),
        )
        if self._span_ids is not None:
            event = _with_trace_context(event, self._span_ids)
        self._enqueue(_encode(event))
        return event_id

    def _track(
        self,
        event_type: Literal["feedback", "rating", "engagement"],
        prompt_run_id: str,
        experiment_id: str,
        external_user_id: str | None,
        *,
        source: str | None = None,
        metadata: msgspec.Raw | None = None,
        thumbs_up: bool | None = None,
        rating: float | None = None,
        engagement_score: float | None = None,
    ) -> str:
        event_id, timestamp = stamp_event()
        event = Event(
            event_id=event_id,
            timestamp=timestamp,
            type=event_type,
            prompt_run_id=check_id("prompt_run_id", prompt_run_id),
            experiment_id=check_id("experiment_id", experiment_id),
            external_user_id=None if external_user_id is None else self._user_id(external_user_id),
            source=source,
            metadata=metadata,
            thumbs_up=thumbs_up,
            rating=rating,
            engagement_score=engagement_score,
        )
        if self._span_ids is not None:
            event = _with_trace_context(event, self._span_ids)
        self._enqueue(_encode(event))
        return event_id

    def _user_id(self, external_user_id: object) -> str | None:
        """The id as it leaves the process: checked, then hashed when the client was given a salt."""
        if external_user_id is None:
            return None
        checked = check_id("external_user_id", external_user_id)
        return checked if self._hash_user_id is None else self._hash_user_id(checked)


def _with_trace_context(event: Event, span_ids: Callable[[], tuple[str, str] | None]) -> Event:
    """``event`` carrying the active span's trace and span ids, if there is one. An integration that fails or hands
    back ids the protocol would refuse costs the event its trace context, never the event (or the caller a raise)."""
    try:
        ids = span_ids()
        if ids is None:
            return event
        trace_id, span_id = check_trace_context(*ids)
    except Exception:
        return event
    return msgspec.structs.replace(event, trace_id=trace_id, span_id=span_id)
