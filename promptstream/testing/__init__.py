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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from .._assign import Assignment
from .._client import PromptStreamClient
from .._errors import PromptStreamError
from .._fallback import check_fallback
from .._instrumentation import Instrumentation
from .._models import DeliveryStats, Event, RunResponse, decode_event
from .._privacy import BeforeSend, apply_before_send
from .._results_models import ExperimentResults
from .._validation import check_id, check_inputs

__all__ = ["RecordingClient", "RecordingSink"]


class RecordingSink:
    """The ``EventSink`` a ``RecordingClient`` plugs into its client (``event_sink=``): it runs ``before_send`` the
    way the agent does and decodes what is kept. Counts like the agent: ``tracked = recorded + filtered +
    hook_errors``.

    Example:
        ```python
        sink = RecordingSink()
        client = PromptStreamClient("ps_test", base_url="http://127.0.0.1:9", event_sink=sink)
        client.track_conversion("run-1", "exp-1", label="signup")
        assert [event.label for event in sink.events] == ["signup"]
        ```
    """

    def __init__(self, before_send: BeforeSend | None = None) -> None:
        self._hook = before_send
        self.events: list[Event] = []
        self.filtered: int = 0
        self.hook_errors: list[str] = []

    def enqueue(self, event: bytes) -> None:
        """Record one event (JSON bytes, as ``track_*`` encoded it), after ``before_send`` if one was given.

        Example:
            ```python
            sink.enqueue(b'{"event_id": "e-1", "type": "conversion", "prompt_run_id": "r", "experiment_id": "x",'
                         b' "timestamp": "2026-01-01T00:00:00.000Z"}')
            ```
        """
        if self._hook is not None:
            outcome = apply_before_send(self._hook, [event])
            self.filtered += outcome.filtered
            self.hook_errors += outcome.errors
            if not outcome.kept:
                return
            event = outcome.kept[0]
        self.events.append(decode_event(event))

    def flush(self, timeout: float | None = None) -> bool:
        """True at once: recorded events are already "delivered".

        Example:
            ```python
            assert sink.flush(timeout=1)
            ```
        """
        return True

    def close(self, timeout: float | None = None) -> bool:
        """True at once: there is nothing to deliver or to close.

        Example:
            ```python
            assert sink.close()
            ```
        """
        return True

    def stats(self) -> DeliveryStats:
        """``tracked``, ``filtered`` and ``hook_errors`` as the real agent would count them.

        Example:
            ```python
            assert sink.stats().tracked == len(sink.events) + sink.filtered + len(sink.hook_errors)
            ```
        """
        recorded = len(self.events)
        return DeliveryStats(
            tracked=recorded + self.filtered + len(self.hook_errors),
            filtered=self.filtered,
            hook_errors=len(self.hook_errors),
            last_error=self.hook_errors[-1] if self.hook_errors else None,
        )

    def clear(self) -> None:
        """Forget every recorded event and count.

        Example:
            ```python
            sink.clear()
            assert sink.stats().tracked == 0
            ```
        """
        self.events.clear()
        self.filtered = 0
        self.hook_errors.clear()


class RecordingClient(PromptStreamClient):
    """A client with no network and no spool: events go to ``recorded_events``, runs to ``runs``.

    Args:
        responses: Canned ``run_prompt`` outputs by prompt id: a string (the output) or a whole ``RunResponse``.
            Other prompt ids get a placeholder output.
        experiment_id: The experiment id of the canned runs.
        variant: The variant of the canned runs.
        before_send: The same hook as in production, applied the same way.
        hash_user_ids: The same salt as in production, so recorded user ids are the hashed ones.
        instrumentation: The same integration as in production (e.g. ``promptstream.otel.OpenTelemetry()``), so
            recorded events carry the trace context of the span they were tracked in.

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
        instrumentation: Instrumentation | None = None,
    ) -> None:
        self.sink: RecordingSink = RecordingSink(before_send)
        """Where this client's events go: its ``event_sink``."""
        super().__init__(
            "ps_recording_client",
            base_url="http://127.0.0.1:9",
            before_send=before_send,
            hash_user_ids=hash_user_ids,
            event_sink=self.sink,
            instrumentation=instrumentation,
        )
        self._responses = dict(responses or {})
        self._experiment_id = experiment_id
        self._variant = variant
        self.runs: list[tuple[str, dict[str, Any], str | None]] = []
        """(prompt_id, inputs, external_user_id as sent) of every run_prompt call."""
        self.assignments: list[tuple[str, str | None]] = []
        """(prompt_id, external_user_id as sent) of every assign call."""

    @property
    def recorded_events(self) -> list[Event]:
        """Every event that would have been sent, in order.

        Example:
            ```python
            client.track_click(run.run_id, run.experiment_id, label="copy")
            assert client.recorded_events[-1].label == "copy"
            ```
        """
        return self.sink.events

    @property
    def filtered(self) -> int:
        """Events ``before_send`` dropped by returning None.

        Example:
            ```python
            client = RecordingClient(before_send=lambda event: None)
            client.track_conversion("run-1", "exp-1")
            assert client.filtered == 1
            ```
        """
        return self.sink.filtered

    @property
    def hook_errors(self) -> list[str]:
        """Why ``before_send`` failed, one entry per event it dropped that way.

        Example:
            ```python
            client = RecordingClient(before_send=lambda event: 1 / 0)
            client.track_conversion("run-1", "exp-1")
            assert "ZeroDivisionError" in client.hook_errors[0]
            ```
        """
        return self.sink.hook_errors

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
            client.track_conversion(run.run_id, run.experiment_id, label="signup")
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
        fallback: str | Callable[[dict[str, Any]], str] | None = None,
    ) -> RunResponse:
        """The canned response for ``prompt_id`` (``responses``), validated like the real call; records the run.
        A recording client is never offline: ``fallback`` is checked, never used.

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
        check_fallback(fallback)
        self.runs.append((prompt_id, checked, user))
        canned = self._responses.get(prompt_id, f"(recorded run of {prompt_id})")
        if isinstance(canned, RunResponse):
            return canned
        return RunResponse(
            run_id=str(uuid.uuid4()), experiment_id=self._experiment_id, variant_assigned=self._variant, output=canned
        )

    def assign(
        self,
        prompt_id: str,
        external_user_id: str | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Assignment:
        """An assignment to the canned variant, validated like the real call; recorded in ``assignments``. Its
        template is the canned response for ``prompt_id`` when that is a string.

        Example:
            ```python
            client = RecordingClient(responses={"greeting": "Hi {{name}}!"})
            assignment = client.assign("greeting", external_user_id="ada")
            assert assignment.render({"name": "Ada"}) == "Hi Ada!"
            assert client.assignments == [("greeting", "ada")]
            ```
        """
        prompt_id = check_id("prompt_id", prompt_id)
        user = self._user_id(external_user_id)
        self.assignments.append((prompt_id, user))
        canned = self._responses.get(prompt_id)
        return Assignment(
            run_id=str(uuid.uuid4()),
            experiment_id=self._experiment_id,
            variant_assigned=self._variant,
            prompt_id=prompt_id,
            version=int(self._variant[1:]) if self._variant[1:].isdigit() else 1,
            template=canned if isinstance(canned, str) else f"(recorded assignment of {prompt_id})",
            external_user_id=user,
        )

    def get_experiment_results(
        self,
        experiment_id: str,
        *,
        guardrails: Sequence[str] | None = None,
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

    def clear(self) -> None:
        """Forget what was recorded (between the steps of one test): events, runs, and the counts of ``stats()``.

        Example:
            ```python
            client.clear()
            assert client.recorded_events == [] and client.runs == []
            ```
        """
        self.sink.clear()
        self.runs.clear()
        self.assignments.clear()
