"""promptstream.testing: the recording client and the pytest plugin's fixture, as an application's tests use them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptstream import (
    ArgumentTypeError,
    DeliveryStats,
    Event,
    InvalidArgumentError,
    PromptStreamClient,
    RunResponse,
    hash_user_id,
)
from promptstream.testing import RecordingClient, RecordingSink


def test_the_fixture_comes_from_the_installed_plugin(promptstream_client: RecordingClient) -> None:
    assert isinstance(promptstream_client, RecordingClient)
    assert isinstance(promptstream_client, PromptStreamClient)  # drop-in for the real one
    assert promptstream_client.recorded_events == []


def test_recorded_events_are_what_would_have_been_sent(promptstream_client: RecordingClient) -> None:
    run = promptstream_client.run_prompt("onboarding", {"name": "Ada"}, external_user_id="u1")
    event_id = promptstream_client.track_click(
        run.run_id, run.experiment_id, "cta", external_user_id="u1", metadata={"position": 2}
    )
    promptstream_client.track_conversion(run.run_id, run.experiment_id, label="signup")
    promptstream_client.track_rating(run.run_id, run.experiment_id, rating=4)
    (click,) = promptstream_client.events(type="click")
    assert isinstance(click, Event) and click.event_id == event_id and click.label == "cta"
    assert click.metadata == {"position": 2}  # decoded from the bytes the SDK encoded, once
    assert click.rating is None and click.type == "click"
    assert [e.type for e in promptstream_client.events(run_id=run.run_id)] == ["click", "conversion", "rating"]
    assert promptstream_client.events(label="signup")[0].type == "conversion"
    assert promptstream_client.runs == [("onboarding", {"name": "Ada"}, "u1")]
    assert promptstream_client.stats().tracked == 3


def test_bad_arguments_fail_exactly_as_in_production(promptstream_client: RecordingClient) -> None:
    with pytest.raises(ArgumentTypeError, match="prompt_run_id"):
        promptstream_client.track_click(None, "exp", "cta")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="non-finite"):
        promptstream_client.track_click("run", "exp", "cta", metadata={"x": float("nan")})
    with pytest.raises(InvalidArgumentError, match="inputs"):
        promptstream_client.run_prompt("p", {1: "not a str key"})  # type: ignore[dict-item]
    assert promptstream_client.recorded_events == []


def test_canned_responses_hooks_and_hashing_apply() -> None:
    canned = RunResponse(run_id="r-1", experiment_id="e-1", variant_assigned="v2", output="Hi!")
    salt = "sixteen-bytes-of-salt"
    client = RecordingClient(
        responses={"a": canned, "b": "plain output"},
        before_send=lambda event: None if event.label == "internal" else event,
        hash_user_ids=salt,
    )
    assert client.run_prompt("a", {}) is canned
    assert client.run_prompt("b", {}).output == "plain output"
    client.track_click("r-1", "e-1", "internal", external_user_id="ada")
    client.track_click("r-1", "e-1", "cta", external_user_id="ada")
    (event,) = client.recorded_events
    assert event.label == "cta" and event.external_user_id == hash_user_id("ada", salt)
    assert client.filtered == 1 and client.stats().filtered == 1


@given(labels=st.lists(st.sampled_from(["cta", "internal", "boom"]), max_size=20))
def test_clear_forgets_every_count_so_stats_start_again_at_zero(labels: list[str]) -> None:
    def hook(event: Event) -> Event | None:
        if event.label == "boom":
            raise RuntimeError("scrubber failed")
        return None if event.label == "internal" else event

    client = RecordingClient(before_send=hook)
    for label in labels:
        client.track_click("run", "exp", label)
    stats = client.stats()
    assert (stats.tracked, stats.filtered, stats.hook_errors) == (
        len(labels),
        labels.count("internal"),
        labels.count("boom"),
    )
    client.clear()
    assert client.stats() == DeliveryStats()
    assert (client.recorded_events, client.filtered, client.hook_errors) == ([], 0, [])
    client.track_click("run", "exp", "cta")
    assert client.stats().tracked == 1


def test_any_event_sink_plugs_into_a_real_client_through_the_documented_seam() -> None:
    sink = RecordingSink()
    client = PromptStreamClient("ps_test_key_0123456789", base_url="http://127.0.0.1:9", event_sink=sink)
    client.track_conversion("run", "exp", label="signup")
    assert [e.label for e in sink.events] == ["signup"]
    assert client.flush(timeout=1) is True and client.stats().tracked == 1
    client.close()
