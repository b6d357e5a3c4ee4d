"""Every invalid argument raises the documented typed error at the call site, naming the argument, and nothing is
queued; valid neighbours are unaffected."""

from __future__ import annotations

import math
from typing import Any

import pytest

from promptstream import ArgumentTypeError, InvalidArgumentError, PromptStreamClient
from promptstream._validation import MAX_ID_LENGTH, MAX_METADATA_BYTES, MAX_METADATA_DEPTH


@pytest.fixture
def offline(client_factory: Any) -> PromptStreamClient:
    # nothing listens here: validation must not need a server
    return client_factory("http://127.0.0.1:9", spool=False)


def cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"k": value}
    return value


ID_CASES = [
    (None, ArgumentTypeError),
    (5, ArgumentTypeError),
    (b"bytes", ArgumentTypeError),
    ("", InvalidArgumentError),
    ("x" * (MAX_ID_LENGTH + 1), InvalidArgumentError),
    ("bad\ud800", InvalidArgumentError),
]

METADATA_CASES = [
    ([1, 2], ArgumentTypeError),
    ("text", ArgumentTypeError),
    ({1: "int key"}, ArgumentTypeError),
    ({"nested": {2: "x"}}, ArgumentTypeError),
    ({"x": float("nan")}, InvalidArgumentError),
    ({"x": [math.inf]}, InvalidArgumentError),
    ({"x": object()}, InvalidArgumentError),
    ({"x": "\udcff"}, InvalidArgumentError),
    ({"x": "a" * MAX_METADATA_BYTES}, InvalidArgumentError),
    (cyclic(), InvalidArgumentError),
    (deep(MAX_METADATA_DEPTH + 1), InvalidArgumentError),
]

NUMBER_CASES = [
    (None, ArgumentTypeError),
    ("4", ArgumentTypeError),
    (True, ArgumentTypeError),
    (float("nan"), InvalidArgumentError),
    (float("inf"), InvalidArgumentError),
    (-math.inf, InvalidArgumentError),
]


def valid_args(method: str) -> dict[str, Any]:
    args: dict[str, Any] = {"prompt_run_id": "run-1", "experiment_id": "exp-1"}
    args.update(
        {
            "track_click": {"label": "cta"},
            "track_conversion": {},
            "track_feedback": {"thumbs_up": True},
            "track_rating": {"rating": 4},
            "track_engagement": {"engagement_score": 1.5},
        }[method]
    )
    return args


ALL = ["track_click", "track_conversion", "track_feedback", "track_rating", "track_engagement"]
WITH_METADATA = ["track_click", "track_conversion", "track_feedback"]


def cases() -> list[Any]:
    out = []
    for method in ALL:
        for argument in ("prompt_run_id", "experiment_id", "external_user_id"):
            for value, error in ID_CASES:
                if argument == "external_user_id" and value is None:
                    continue  # optional
                out.append(pytest.param(method, argument, value, error, id=f"{method}-{argument}-{value!r:.20}"))
    for method in WITH_METADATA:
        for value, error in METADATA_CASES:
            out.append(pytest.param(method, "metadata", value, error, id=f"{method}-metadata-{value!r:.20}"))
        for value, error in [(5, ArgumentTypeError), ("", InvalidArgumentError), ("s" * 300, InvalidArgumentError)]:
            out.append(pytest.param(method, "source", value, error, id=f"{method}-source-{value!r:.10}"))
    for method in ("track_click", "track_conversion"):
        for value, error in [(None, ArgumentTypeError), (3, ArgumentTypeError), ("", InvalidArgumentError)]:
            out.append(pytest.param(method, "label", value, error, id=f"{method}-label-{value!r}"))
    for value, error in [(1, ArgumentTypeError), ("yes", ArgumentTypeError), (None, ArgumentTypeError)]:
        out.append(pytest.param("track_feedback", "thumbs_up", value, error, id=f"thumbs_up-{value!r}"))
    for method, argument in (("track_rating", "rating"), ("track_engagement", "engagement_score")):
        for value, error in NUMBER_CASES:
            out.append(pytest.param(method, argument, value, error, id=f"{argument}-{value!r}"))
    return out


@pytest.mark.parametrize(("method", "argument", "value", "error"), cases())
def test_invalid_argument_raises_typed_error_naming_it(
    offline: PromptStreamClient, method: str, argument: str, value: Any, error: type[Exception]
) -> None:
    args = valid_args(method)
    args[argument] = value
    before = offline.stats().tracked
    with pytest.raises(error) as info:
        getattr(offline, method)(**args)
    assert isinstance(info.value, InvalidArgumentError)
    assert isinstance(info.value, (ValueError, TypeError))
    assert info.value.argument == argument and argument in str(info.value)
    assert offline.stats().tracked == before  # nothing was queued


@pytest.mark.parametrize("method", ALL)
def test_valid_calls_return_a_uuid7_event_id(offline: PromptStreamClient, method: str) -> None:
    event_id = getattr(offline, method)(**valid_args(method))
    assert len(event_id) == 36 and event_id[14] == "7"
    assert offline.stats().tracked == 1


def test_numbers_accept_ints_and_float_subclasses(offline: PromptStreamClient) -> None:
    class MyFloat(float):
        pass

    offline.track_rating("r", "e", 5)
    offline.track_engagement("r", "e", MyFloat(2.5))
    assert offline.stats().tracked == 2


def test_run_prompt_validates_before_any_io(offline: PromptStreamClient) -> None:
    with pytest.raises(ArgumentTypeError) as info:
        offline.run_prompt(123, {})  # type: ignore[arg-type]
    assert info.value.argument == "prompt_id"
    with pytest.raises(ArgumentTypeError) as info:
        offline.run_prompt("p", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert info.value.argument == "inputs"
    with pytest.raises(InvalidArgumentError) as info:
        offline.run_prompt("p", {"x": float("nan")})
    assert info.value.argument == "inputs"
    with pytest.raises(ArgumentTypeError) as info:
        offline.run_prompt("p", {}, external_user_id=7)  # type: ignore[arg-type]
    assert info.value.argument == "external_user_id"


def test_disabled_client_validates_and_sends_nothing(client_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTSTREAM_DISABLED", "1")
    client = client_factory("http://127.0.0.1:9")
    assert client.disabled
    assert len(client.track_click("r", "e", "l")) == 36
    with pytest.raises(InvalidArgumentError):
        client.track_click("", "e", "l")
    assert client.flush(0.1) is True
    assert client.stats().tracked == 0
