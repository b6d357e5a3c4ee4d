"""Fuzzing the reference server: every endpoint, JSON and MessagePack bodies, gzip (valid, broken, bombs), deep
nesting, extremes of every number, huge strings, wrong types, odd headers. Whatever arrives, the answer is never a
5xx, every 4xx carries the error envelope, and the valid events that rode along in accepted batches stay stored.

Most examples run in-process (httpx.ASGITransport, fast); a shorter pass goes over real loopback HTTP."""

from __future__ import annotations

import datetime
import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream.server import Store, create_app

from ..helpers import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_BODY = 256 * 1024
BOMB = gzip.compress(b"\x00" * (MAX_BODY * 4))  # a few hundred bytes that inflate past the limit

# -- values -------------------------------------------------------------------------------------------------------

extreme_numbers = st.one_of(
    st.integers(min_value=-(2**63) - 5, max_value=-(2**63) + 5),
    st.integers(min_value=2**64 - 5, max_value=2**64 + 5),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 1e9, 1e9 + 1, -1e9 - 1, 1e6, 1e6 + 1, 2**53 + 1]),
)
texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=5),
    st.integers(250, 300).map(lambda n: "x" * n),
    st.integers(10_000, 200_000).map(lambda n: "é" * n),  # huge strings
    st.sampled_from(["2026-11-27T10:00:00.000Z", "2026-99-27T10:00:00Z", "\uff12\uff10\uff12\uff16-11-27T10:00Z", ""]),
)
msgpack_only = st.one_of(
    st.binary(max_size=20),
    st.builds(msgspec.msgpack.Ext, st.integers(-128, 127), st.binary(max_size=10)),
    st.datetimes(timezones=st.just(datetime.timezone.utc)),
)
scalars = st.one_of(st.none(), st.booleans(), extreme_numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
msgpack_values = st.recursive(
    scalars | msgpack_only,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
        st.dictionaries(st.integers() | st.none() | st.booleans(), inner, max_size=2),  # non-str keys
    ),
    max_leaves=25,
)
ids = st.one_of(st.builds(lambda: str(uuid.uuid4())), texts, extreme_numbers, st.none())


def deeply_nested(depth: int, msgpack: bool) -> bytes:
    return (b"\x91" * depth + b"\x01") if msgpack else (b"[" * depth + b"1" + b"]" * depth)


# -- bodies ------------------------------------------------------------------------------------------------------


def event_like(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "event_id": ids,
            "type": st.sampled_from(["click", "conversion", "feedback", "rating", "engagement", "bogus"]),
            "prompt_run_id": ids,
            "experiment_id": ids,
            "timestamp": texts,
        },
        optional={
            "external_user_id": ids,
            "label": ids,
            "source": ids,
            "metadata": values,
            "thumbs_up": values,
            "rating": extreme_numbers | values,
            "engagement_score": extreme_numbers | values,
            "unknown_field": values,
        },
    )


@st.composite
def requests(draw: st.DrawFn, prompt_id: str, run: dict[str, Any]) -> dict[str, Any]:
    """One request to any endpoint: method, path, body bytes, headers, and the valid event it carries (if any)."""
    msgpack = draw(st.booleans())
    values = msgpack_values if msgpack else json_values
    valid_event = None
    route = draw(
        st.sampled_from(["batch", "batch", "batch", "run", "run", "prompt", "version", "experiment", "get", "odd"])
    )
    if route == "batch":
        events: list[Any] = draw(st.lists(event_like(values) | values, max_size=6))
        if draw(st.booleans()):
            valid_event = {
                "event_id": str(uuid.uuid4()),
                "type": "click",
                "prompt_run_id": run["run_id"],
                "experiment_id": run["experiment_id"],
                "timestamp": "2026-11-27T10:00:00.000Z",
                "label": "fuzz",
            }
            events.insert(draw(st.integers(0, len(events))), valid_event)
        document: Any = {"sent_at": draw(texts | values), "events": events}
        method, path = "POST", "/v1/events/batch"
    elif route == "run":
        inputs = draw(st.dictionaries(st.text(max_size=5), values, max_size=3) | values)
        if isinstance(inputs, dict) and draw(st.booleans()):
            inputs["name"] = draw(values)
        document = {"inputs": inputs}
        if draw(st.booleans()):
            document["external_user_id"] = draw(ids)
        target = draw(st.sampled_from([prompt_id, "nope", "%00", "x" * 300]))
        method, path = "POST", f"/v1/prompts/{target}/runs"
    elif route == "prompt":
        document = {"name": draw(texts | values), "template": draw(texts | st.just("{{a}}" * 5000))}
        method, path = "POST", "/v1/prompts"
    elif route == "version":
        document = {"template": draw(texts | values)}
        method, path = "POST", f"/v1/prompts/{draw(st.sampled_from([prompt_id, 'nope']))}/versions"
    elif route == "experiment":
        variants = st.lists(st.fixed_dictionaries({"version": extreme_numbers | values, "weight": extreme_numbers}))
        document = {"prompt_id": draw(st.sampled_from([prompt_id, "nope"]) | values), "variants": draw(variants)}
        method, path = "POST", "/v1/experiments"
    elif route == "get":
        document = None
        target = draw(st.sampled_from([prompt_id, run["experiment_id"], "nope", "%ff%fe", "x" * 2000]))
        path = draw(
            st.sampled_from(
                [
                    "/v1/prompts",
                    f"/v1/prompts/{target}",
                    f"/v1/experiments?prompt_id={target}",
                    f"/v1/experiments/{target}",
                    f"/v1/experiments/{target}/results",
                ]
            )
        )
        method = "GET"
    else:
        document = draw(values)
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
        paths = ["/v1/events/batch", "/v1/prompts", "/", "/v1/nowhere", f"/v1/prompts/{prompt_id}"]
        path = draw(st.sampled_from(paths))

    headers = {"Content-Type": "application/msgpack" if msgpack else "application/json"}
    if document is None:
        content = b""
    else:
        try:
            content = (
                msgspec.msgpack.encode(document)
                if msgpack
                else json.dumps(document, allow_nan=draw(st.booleans())).encode("utf-8", "surrogatepass")
            )
        except (TypeError, ValueError, OverflowError):
            content = draw(st.binary(max_size=50))
            valid_event = None
    shape = draw(st.sampled_from(["plain"] * 6 + ["gzip", "bad-gzip", "bomb", "deep", "truncated", "noise"]))
    if shape == "gzip":
        content, headers["Content-Encoding"] = gzip.compress(content), "gzip"
    elif shape == "bad-gzip":
        content, headers["Content-Encoding"] = gzip.compress(content)[: draw(st.integers(0, 20))], "gzip"
        valid_event = None
    elif shape == "bomb":
        content, headers["Content-Encoding"] = BOMB, "gzip"
        valid_event = None
    elif shape == "deep":
        depth = draw(st.integers(17, 20_000))
        hole = deeply_nested(depth, msgpack)
        content = (
            msgspec.msgpack.encode({"sent_at": "x", "events": [0]}).replace(b"\x91\x00", b"\x91" + hole)
            if msgpack
            else b'{"sent_at": "x", "events": [' + hole + b"], " + b'"inputs": ' + hole + b"}"
        )
        valid_event = None
    elif shape == "truncated":
        content = content[: len(content) // 2]
        valid_event = None
    elif shape == "noise":
        headers["Content-Type"] = draw(st.sampled_from(["text/plain", "application/msgpack; charset=x", ""]))
        headers["Content-Encoding"] = draw(st.sampled_from(["br", "identity", " GZIP ", "deflate"]))
        valid_event = None
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=300))
    if draw(st.integers(0, 20)) == 0:
        headers["Authorization"] = draw(st.sampled_from(["Bearer", "Bearer  ", "Basic x", f"bearer {API_KEY}"]))
    else:
        headers["Authorization"] = AUTH["Authorization"]
    return {"method": method, "path": path, "content": content, "headers": headers, "valid_event": valid_event}


# -- the check -----------------------------------------------------------------------------------------------------


def check(response: httpx.Response, request: dict[str, Any], stored_by_us: list[str]) -> None:
    assert response.status_code < 500, (request["method"], request["path"], response.text[:500])
    if response.status_code >= 400:
        envelope = response.json()
        assert set(envelope) == {"error"} and set(envelope["error"]) == {"type", "message"}, envelope
        assert isinstance(envelope["error"]["type"], str) and isinstance(envelope["error"]["message"], str)
        return
    if request["path"] == "/v1/events/batch" and request["method"] == "POST":
        result = response.json()
        assert set(result) == {"accepted", "duplicates", "rejected"} and len(result["rejected"]) <= 1000
        event = request["valid_event"]
        if event is not None and response.status_code == 200:
            reasons = [r["reason"] for r in result["rejected"] if r["event_id"] == event["event_id"]]
            assert not reasons, reasons
            stored_by_us.append(event["event_id"])


def header_pairs(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


@pytest.fixture
def app_store(storage_factory: Any) -> Iterator[tuple[Store, BlockingPortal, httpx.AsyncClient]]:
    store = storage_factory()  # both backends: the storage contract
    app = create_app(store, [API_KEY], max_body_bytes=MAX_BODY)
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fuzz", timeout=60)
        try:
            yield store, portal, client
        finally:
            portal.call(client.aclose)


def fuzz(store: Store, send: Callable[[dict[str, Any]], httpx.Response | None], examples: int) -> None:
    prompt = store.create_prompt("default", "fuzzed", "Hello {{name}}!")
    _, body = store.create_run(
        "default", prompt["prompt_id"], {"name": "x"}, "u", idempotency=None, encode=msgspec.json.encode
    )
    run = msgspec.json.decode(body)
    stored_by_us: list[str] = []

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(request=requests(prompt["prompt_id"], run))
    def attack(request: dict[str, Any]) -> None:
        response = send(request)
        if response is not None:  # None: a header no HTTP client may send (h11 refuses it before the wire)
            check(response, request, stored_by_us)

    attack()
    assert set(stored_by_us) <= set(store.event_ids())  # accepted events stay stored, whatever came after
    assert store.get_prompt("default", prompt["prompt_id"])["name"] == "fuzzed"  # and the server's data is intact


def test_fuzzing_the_server_in_process_finds_no_5xx(app_store: tuple[Store, BlockingPortal, httpx.AsyncClient]) -> None:
    store, portal, client = app_store

    def send(request: dict[str, Any]) -> httpx.Response:
        return portal.call(
            lambda: client.request(
                request["method"],
                request["path"],
                content=request["content"],
                headers=header_pairs(request["headers"]),
            )
        )

    fuzz(store, send, examples=400)


def test_fuzzing_the_server_over_loopback_finds_no_5xx(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:

        def send(request: dict[str, Any]) -> httpx.Response | None:
            headers = header_pairs(request["headers"])
            try:
                return http.request(request["method"], request["path"], content=request["content"], headers=headers)
            except httpx.LocalProtocolError:
                return None

        fuzz(server.store, send, examples=60)
        assert http.get("/v1/prompts", headers=AUTH).status_code == 200  # still serving on the same client
