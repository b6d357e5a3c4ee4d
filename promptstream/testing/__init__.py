"""Test helpers for applications that use PromptStream: a client that records events instead of sending them.

``RecordingClient`` *is* a ``PromptStreamClient``: ``track_*`` run the same validation, the same user-id hashing,
the same encoding and the same ``before_send`` hook, and what is recorded is decoded from the very bytes that would
have been sent. A test that passes against it passes against a real server. ``run_prompt`` validates its arguments
like the real one and returns canned responses.

Example::

    from promptstream.testing import RecordingClient

    def test_signup_tracks_a_conversion():
        client = RecordingClient(responses={"onboarding": "Welcome!"})
        app = create_app(promptstream=client)
        app.test_client().post("/signup")
        (event,) = client.events(type="conversion")
        assert event.label == "signup"

With pytest, the ``promptstream_client`` fixture (this package's pytest plugin, registered on install) gives a fresh
``RecordingClient`` to each test.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from .._client import PromptStreamClient
from .._errors import PromptStreamError
from .._models import DeliveryStats, Event, ExperimentResults, RunResponse, decode_event
from .._privacy import BeforeSend, apply_before_send
from .._validation import check_id, check_inputs

__all__ = ["RecordingClient"]


class RecordingClient(PromptStreamClient):
    """A client with no network and no spool: events go to ``recorded_events``, runs to ``runs``."""

    def __init__(
        self,
        *,
        responses: Mapping[str, RunResponse | str] | None = None,
        experiment_id: str = "exp-recorded",
        variant: str = "v1",
        before_send: BeforeSend | None = None,
        hash_user_ids: str | bytes | None = None,
    ) -> None:
        super().__init__(
            "ps_recording_client",
            base_url="http://127.0.0.1:9",
            disabled=True,
            before_send=before_send,
            hash_user_ids=hash_user_ids,
        )
        self._hook = before_send
        self._responses = dict(responses or {})
        self._experiment_id = experiment_id
        self._variant = variant
        self.recorded_events: list[Event] = []
        """Every event that would have been sent, in order."""
        self.runs: list[tuple[str, dict[str, Any], str | None]] = []
        """(prompt_id, inputs, external_user_id as sent) of every run_prompt call."""
        self.filtered = 0
        self.hook_errors: list[str] = []
        self._enqueue = self._record

    def _record(self, payload: bytes) -> None:
        if self._hook is not None:
            outcome = apply_before_send(self._hook, [payload])
            self.filtered += outcome.filtered
            self.hook_errors += outcome.errors
            if not outcome.kept:
                return
            payload = outcome.kept[0]
        self.recorded_events.append(decode_event(payload))

    def events(
        self,
        type: str | None = None,
        *,
        run_id: str | None = None,
        experiment_id: str | None = None,
        label: str | None = None,
        external_user_id: str | None = None,
    ) -> list[Event]:
        """The recorded events matching every filter given."""
        return [
            event
            for event in self.recorded_events
            if (type is None or event.type == type)
            and (run_id is None or event.prompt_run_id == run_id)
            and (experiment_id is None or event.experiment_id == experiment_id)
            and (label is None or event.label == label)
            and (external_user_id is None or event.external_user_id == external_user_id)
        ]

    def run_prompt(
        self,
        prompt_id: str,
        inputs: Mapping[str, Any],
        external_user_id: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunResponse:
        """The canned response for ``prompt_id`` (``responses``), validated like the real call; records the run."""
        prompt_id = check_id("prompt_id", prompt_id)
        checked = check_inputs(dict(inputs) if isinstance(inputs, Mapping) else inputs)
        user = self._user_id(external_user_id)
        self.runs.append((prompt_id, checked, user))
        canned = self._responses.get(prompt_id, f"(recorded run of {prompt_id})")
        if isinstance(canned, RunResponse):
            return canned
        return RunResponse(
            run_id=str(uuid.uuid4()), experiment_id=self._experiment_id, variant_assigned=self._variant, output=canned
        )

    def get_experiment_results(self, experiment_id: str) -> ExperimentResults:
        raise PromptStreamError("RecordingClient has no server to compute results; assert on recorded_events instead")

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def stats(self) -> DeliveryStats:
        recorded = len(self.recorded_events)
        return DeliveryStats(
            tracked=recorded + self.filtered + len(self.hook_errors),
            filtered=self.filtered,
            hook_errors=len(self.hook_errors),
        )

    def clear(self) -> None:
        """Forget what was recorded (between the steps of one test)."""
        self.recorded_events.clear()
        self.runs.clear()
