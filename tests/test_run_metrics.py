"""Run metrics end to end, on both backends: what the model provider reports (latency, tokens, its model) and the
cost from the configured prices reach ``RunResponse`` (sync and async clients), the database, and a replay; a
provider that reports nothing gets the measured latency; the offline default reports deterministic figures."""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import AsyncPromptStreamClient, PromptStreamClient
from promptstream.server import Completion, Prices, ServerThread, TemplateProvider
from promptstream.server._templates import count_tokens

from .conftest import RunningServer
from .helpers import API_KEY


class ReportingModel:
    """A provider that reports figures drawn from a seeded generator, and remembers what it reported."""

    def __init__(self, seed: int, model: str = "gpt-test") -> None:
        self.rng = random.Random(seed)
        self.model = model
        self.reported: list[Completion] = []

    def complete(self, template: str, inputs: dict[str, Any]) -> Completion:
        completion = Completion(
            f"{template}|{inputs}",
            input_tokens=self.rng.randint(0, 5000),
            output_tokens=self.rng.randint(0, 2000),
            latency_ms=self.rng.uniform(1.0, 9000.0),
            model=self.model,
        )
        self.reported.append(completion)
        return completion


def _start(storage_factory: Any, **store: Any) -> RunningServer:
    storage = storage_factory(**store)
    return RunningServer(storage, ServerThread(storage, [API_KEY]).start())


def test_reported_figures_and_prices_reach_the_run_response_and_the_database(storage_factory: Any) -> None:
    provider = ReportingModel(seed=1)
    prices = Prices.parse(["gpt-test=3/15", "prompt:priced=0.5/1.25"])
    server = _start(storage_factory, provider=provider, prices=prices)
    try:
        plain = server.store.create_prompt("default", "plain", "Hello {{name}}")
        priced = server.store.create_prompt("default", "priced", "Hi {{name}}")  # its own price wins over its model's
        with PromptStreamClient(api_key=API_KEY, base_url=server.url) as client:
            runs = [client.run_prompt(plain["prompt_id"], {"name": f"u{i}"}) for i in range(5)]
            runs += [client.run_prompt(priced["prompt_id"], {"name": f"u{i}"}) for i in range(5)]
        db = server.database()
        for run, reported in zip(runs, provider.reported, strict=True):
            price = (3.0, 15.0) if run.output.startswith("Hello") else (0.5, 1.25)
            assert reported.input_tokens is not None and reported.output_tokens is not None
            expected_cost = (reported.input_tokens * price[0] + reported.output_tokens * price[1]) / 1e6
            assert run.latency_ms == reported.latency_ms
            assert (run.input_tokens, run.output_tokens) == (reported.input_tokens, reported.output_tokens)
            assert run.cost_usd == pytest.approx(expected_cost, rel=1e-12)
            stored = db.execute(
                "SELECT latency_ms, input_tokens, output_tokens, cost_usd FROM runs WHERE id = ?", (run.run_id,)
            ).fetchone()
            assert tuple(stored) == (run.latency_ms, run.input_tokens, run.output_tokens, run.cost_usd)
        db.close()
    finally:
        server.thread.stop()


def test_async_client_and_an_idempotent_replay_carry_the_same_figures(storage_factory: Any) -> None:
    server = _start(storage_factory, provider=ReportingModel(seed=2), prices=Prices.parse(["gpt-test=1/2"]))
    try:
        prompt = server.store.create_prompt("default", "p", "Hello {{name}}")

        async def twice() -> tuple[Any, Any]:
            async with AsyncPromptStreamClient(api_key=API_KEY, base_url=server.url) as client:
                first = await client.run_prompt(prompt["prompt_id"], {"name": "a"}, idempotency_key="same-run")
                again = await client.run_prompt(prompt["prompt_id"], {"name": "a"}, idempotency_key="same-run")
                return first, again

        first, again = asyncio.run(twice())
        assert first == again and first.cost_usd is not None and first.latency_ms is not None
        assert server.store.count("runs") == 1
    finally:
        server.thread.stop()


class Silent:
    """A provider that returns a bare string after a pause: the server measures its latency."""

    def complete(self, template: str, inputs: dict[str, Any]) -> str:
        time.sleep(0.03)
        return template


class Garbled:
    """A provider whose figures are no measurements: they are not recorded."""

    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures

    def complete(self, template: str, inputs: dict[str, Any]) -> Completion:
        return Completion(template, **self.figures)


def test_a_provider_that_reports_nothing_gets_the_measured_latency_and_no_tokens(storage_factory: Any) -> None:
    server = _start(storage_factory, provider=Silent(), prices=Prices.parse(["template=1/1"]))
    try:
        prompt = server.store.create_prompt("default", "p", "Hello")
        with PromptStreamClient(api_key=API_KEY, base_url=server.url) as client:
            run = client.run_prompt(prompt["prompt_id"], {})
        assert run.latency_ms is not None and run.latency_ms >= 30.0  # it slept 30 ms inside the call
        assert run.input_tokens is None and run.output_tokens is None and run.cost_usd is None
    finally:
        server.thread.stop()


@pytest.mark.sqlite_only  # one server per example: the figures' checks are the server's, not the backend's
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tokens=st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.none(), st.just("12")),
    latency=st.one_of(st.floats(), st.integers(-(2**70), 2**70), st.booleans(), st.none()),
)
def test_figures_that_are_no_measurements_are_left_out(storage_factory: Any, tokens: Any, latency: Any) -> None:
    server = _start(
        storage_factory,
        provider=Garbled({"input_tokens": tokens, "output_tokens": 5, "latency_ms": latency, "model": "m"}),
        prices=Prices.parse(["m=1/1"]),
    )
    try:
        prompt = server.store.create_prompt("default", "p", "Hello")
        with PromptStreamClient(api_key=API_KEY, base_url=server.url, max_retries=0) as client:
            run = client.run_prompt(prompt["prompt_id"], {})
        valid_tokens = isinstance(tokens, int) and not isinstance(tokens, bool) and 0 <= tokens <= 1e9
        assert run.input_tokens == (tokens if valid_tokens else None)
        assert run.cost_usd == ((tokens + 5) / 1e6 if valid_tokens else None)
        valid_latency = (
            isinstance(latency, int | float) and not isinstance(latency, bool) and 0 <= latency <= 1e9
        ) and math.isfinite(latency)
        assert run.latency_ms is not None and math.isfinite(run.latency_ms) and run.latency_ms >= 0
        if valid_latency:
            assert run.latency_ms == float(latency)
    finally:
        server.thread.stop()


@settings(max_examples=100, deadline=None)
@given(
    template=st.text(max_size=60).filter(lambda t: "{{" not in t),
    price=st.tuples(st.floats(0, 1e6), st.floats(0, 1e6)),
)
def test_the_offline_provider_reports_deterministic_figures(template: str, price: tuple[float, float]) -> None:
    first, second = TemplateProvider().complete(template, {}), TemplateProvider().complete(template, {})
    assert first == second
    assert first.output_tokens == first.input_tokens == count_tokens(template)
    assert first.latency_ms == 200.0 + 20.0 * count_tokens(template)
    prices = Prices.parse([f"template={price[0]!r}/{price[1]!r}"])
    cost = prices.cost(first.model, ("prompt-id", "name"), first.input_tokens, first.output_tokens)
    assert cost == pytest.approx((first.input_tokens or 0) * (price[0] + price[1]) / 1e6)


@pytest.mark.parametrize(
    "spec", ["gpt=1", "gpt=a/b", "gpt=-1/2", "gpt=1/1e7", "prompt:=1/2", "=1/2", "gpt=nan/1", "gpt=1/2/3"]
)
def test_a_malformed_price_is_refused_with_its_spec_named(spec: str) -> None:
    with pytest.raises(ValueError, match="price"):
        Prices.parse([spec])


def test_promptstream_serve_refuses_a_bad_price_before_it_listens(tmp_path: Any) -> None:
    from .helpers import run_child

    result = run_child(
        "import sys\nfrom promptstream.cli import main\n"
        "sys.exit(main(['serve', '--db', ':memory:', '--api-key', 'ps_test_key_0123456789', '--price', 'x=1']))",
        env={"PROMPTSTREAM_SERVER_PRICES": ""},
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "price 'x=1'" in result.stderr
