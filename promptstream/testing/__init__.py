"""Test helpers for applications that use PromptStream: a client that records events instead of sending them.

``RecordingClient`` *is* a ``PromptStreamClient``: ``track_*`` run the same validation, the same user-id hashing,
the same encoding and the same ``before_send`` hook, and what is recorded is decoded from the very bytes that would
have been sent. A test that passes against it passes against a real server. ``run_prompt`` validates its arguments
like the real one and returns canned responses.

Example:
    ```python
    from promptstream.testing import RecordingClient

    def test_signup_tracks_a_conversion():
        client = RecordingClient(responses={"onboarding": "Welcome!"})
        app = create_app(promptstream=client)
        app.test_client().post("/signup")
        (event,) = client.events(type="conversion")
        assert event.label == "signup"
    ```

With pytest, the ``promptstream_client`` fixture (this package's pytest plugin, registered on install) gives a fresh
``RecordingClient`` to each test.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from .._client import PromptStreamClient
from .._errors import PromptStreamError
from .._models import DeliveryStats, Event, ExperimentResults, RunResponse, decode_event
from .._privacy import BeforeSend, apply_before_send
from .._validation import check_id, check_inputs

__all__ = ["RecordingClient"]


class RecordingClient(PromptStreamClient):
    """A client with no network and no spool: events go to ``recorded_events``, runs to ``runs``.

    Args:
        responses: Canned ``run_prompt`` outputs by prompt id: a string (the output) or a whole ``RunResponse``.
            Other prompt ids get a placeholder output.
        experiment_id: The experiment id of the canned runs.
        variant: The variant of the canned runs.
        before_send: The same hook as in production, applied the same way.
        hash_user_ids: The same salt as in production, so recorded user ids are the hashed ones.

    Example:
        ```python
        client = RecordingClient(responses={"greeting": "Hello, Ada!"})
        run = client.run_prompt("greeting", {"name": "Ada"}, external_user_id="ada")
        client.track_click(run.run_id, run.experiment_id, label="copy")
        assert run.output == "Hello, Ada!"
        assert [event.label for event in client.events(type="click")] == ["copy"]
        ```
    """

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
        self.filtered: int = 0
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
        """The recorded events matching every filter given.

        Example:
            ```python
            (conversion,) = client.events(type="conversion", run_id=run.run_id)
            assert conversion.label == "signup"
            ```
        """
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
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> RunResponse:
        """The canned response for ``prompt_id`` (``responses``), validated like the real call; records the run.

        Example:
            ```python
            client = RecordingClient(responses={"greeting": "Hi!"})
            assert client.run_prompt("greeting", {"name": "Ada"}).output == "Hi!"
            assert client.runs == [("greeting", {"name": "Ada"}, None)]
            ```
        """
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

    def get_experiment_results(
        self,
        experiment_id: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ExperimentResults:
        """Always raises ``PromptStreamError``: there is no server to compute results from.

        Example:
            ```python
            with pytest.raises(PromptStreamError):
                client.get_experiment_results("exp-recorded")
            ```
        """
        raise PromptStreamError("RecordingClient has no server to compute results; assert on recorded_events instead")

    def flush(self, timeout: float | None = None) -> bool:
        """True at once: recorded events are already "delivered".

        Example:
            ```python
            assert client.flush(timeout=1)
            ```
        """
        return True

    def stats(self) -> DeliveryStats:
        """``tracked``, ``filtered`` and ``hook_errors`` as the real agent would count them.

        Example:
            ```python
            client = RecordingClient(before_send=lambda event: None)
            client.track_conversion(run.run_id, run.experiment_id)
            assert client.stats().filtered == 1
            ```
        """
        recorded = len(self.recorded_events)
        return DeliveryStats(
            tracked=recorded + self.filtered + len(self.hook_errors),
            filtered=self.filtered,
            hook_errors=len(self.hook_errors),
        )

    def clear(self) -> None:
        """Forget what was recorded (between the steps of one test).

        Example:
            ```python
            client.clear()
            assert client.recorded_events == [] and client.runs == []
            ```
        """
        self.recorded_events.clear()
        self.runs.clear()
