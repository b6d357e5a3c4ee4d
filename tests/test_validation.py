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


# -- issue 13: the wire limits of docs/protocol.md, at the call site, for generated values ---------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from promptstream._validation import MAX_INT, MAX_NUMBER, MIN_INT, check_inputs  # noqa: E402

huge_ints = st.one_of(
    st.integers(min_value=int(MAX_NUMBER) + 1), st.integers(max_value=-int(MAX_NUMBER) - 1), st.just(10**400)
)
huge_floats = st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not -MAX_NUMBER <= x <= MAX_NUMBER)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(huge_ints, huge_floats), method=st.sampled_from(["track_rating", "track_engagement"]))
def test_numbers_beyond_1e9_raise_invalid_argument(offline: PromptStreamClient, value: Any, method: str) -> None:
    argument = "rating" if method == "track_rating" else "engagement_score"
    with pytest.raises(InvalidArgumentError) as info:
        getattr(offline, method)("r", "e", value)
    assert info.value.argument == argument


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.integers(-int(MAX_NUMBER), int(MAX_NUMBER)), st.floats(-MAX_NUMBER, MAX_NUMBER)))
def test_numbers_within_1e9_are_accepted(offline: PromptStreamClient, value: float) -> None:
    offline.track_rating("r", "e", value)
    offline.track_engagement("r", "e", value)


def nest(depth: int, leaf: Any, kind: str) -> Any:
    """A value of exactly ``depth`` levels (a scalar is depth 0)."""
    value = leaf
    for _ in range(depth):
        value = {"k": value} if kind == "dict" else [value]
    return value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(1, 40), kinds=st.lists(st.sampled_from(["dict", "list"]), min_size=1, max_size=3))
def test_nesting_is_limited_to_16_levels_for_metadata_and_inputs(
    offline: PromptStreamClient, depth: int, kinds: list[str]
) -> None:
    value: Any = 1
    for level in range(depth - 1):
        value = nest(1, value, kinds[level % len(kinds)])
    top = {"k": value}  # the top level is a dict: depth levels in all
    if depth <= MAX_METADATA_DEPTH:
        offline.track_click("r", "e", "l", metadata=top)
        assert check_inputs(top) is top
    else:
        with pytest.raises(InvalidArgumentError) as info:
            offline.track_click("r", "e", "l", metadata=top)
        assert info.value.argument == "metadata"
        with pytest.raises(InvalidArgumentError) as info:
            offline.run_prompt("p", top)
        assert info.value.argument == "inputs"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(st.integers(min_value=MAX_INT + 1), st.integers(max_value=MIN_INT - 1)),
    where=st.sampled_from(["top", "list", "nested"]),
)
def test_ints_msgpack_cannot_carry_are_refused(offline: PromptStreamClient, value: int, where: str) -> None:
    metadata = {"top": {"x": value}, "list": {"x": [1, value]}, "nested": {"x": {"y": [{"z": value}]}}}[where]
    with pytest.raises(InvalidArgumentError) as info:
        offline.track_click("r", "e", "l", metadata=metadata)
    assert info.value.argument == "metadata"
    with pytest.raises(InvalidArgumentError) as info:
        offline.run_prompt("p", metadata)
    assert info.value.argument == "inputs"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.integers(MIN_INT, MAX_INT), st.floats(allow_nan=False, allow_infinity=False)))
def test_ints_and_finite_floats_msgpack_can_carry_are_accepted(offline: PromptStreamClient, value: float) -> None:
    offline.track_click("r", "e", "l", metadata={"x": value, "y": [value]})


non_json = st.one_of(
    st.binary(max_size=3),
    st.sets(st.integers(), max_size=2),
    st.dates(),
    st.uuids(),
    st.decimals(allow_nan=False),
    st.complex_numbers(),
    st.just(object()),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=non_json)
def test_values_json_has_no_word_for_are_refused(offline: PromptStreamClient, value: Any) -> None:
    with pytest.raises(ArgumentTypeError):
        offline.track_conversion("r", "e", metadata={"x": [value]})
    with pytest.raises(ArgumentTypeError):
        offline.run_prompt("p", {"x": {"y": value}})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.one_of(
        st.text(min_size=1, max_size=300).filter(
            lambda k: not (k.isascii() and k.isprintable() and k.strip(" ") == k and len(k) <= 256)
        ),
        st.just(""),
        st.just("é"),
        st.just("x" * 257),
    )
)
def test_idempotency_keys_not_printable_ascii_are_refused(offline: PromptStreamClient, key: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        offline.run_prompt("p", {}, idempotency_key=key)
    assert info.value.argument == "idempotency_key"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    timeout=st.one_of(
        st.text(max_size=3),
        st.binary(max_size=2),
        st.booleans(),
        st.lists(st.integers(), max_size=1),
        st.floats(max_value=-1e-9),
        st.just(math.nan),
        st.integers(max_value=-1),
    ),
    method=st.sampled_from(["flush", "close"]),
)
def test_bad_timeouts_raise_the_documented_errors(offline: PromptStreamClient, timeout: Any, method: str) -> None:
    expected = InvalidArgumentError
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        expected = ArgumentTypeError
    with pytest.raises(expected) as info:
        getattr(offline, method)(timeout=timeout)
    assert info.value.argument == "timeout"


def test_huge_timeouts_are_capped_not_overflowed(offline: PromptStreamClient) -> None:
    assert offline.flush(timeout=1e300) is True
    assert offline.flush(timeout=10**400) is True
    offline.close(timeout=math.inf)


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_a_scalar_inside_sixteen_levels_is_depth_sixteen(offline: PromptStreamClient, kind: str) -> None:
    """A scalar adds no level: 16 containers around it are depth 16, accepted; 17 are refused."""
    assert check_inputs({"k": nest(MAX_METADATA_DEPTH - 1, 1, kind)})
    offline.track_click("r", "e", "l", metadata={"k": nest(MAX_METADATA_DEPTH - 1, 1, kind)})
    with pytest.raises(InvalidArgumentError):
        offline.track_click("r", "e", "l", metadata={"k": nest(MAX_METADATA_DEPTH, 1, kind)})
