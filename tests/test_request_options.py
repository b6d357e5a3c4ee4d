"""The request path (issue 14 §1): per-call timeout/max_retries/extra_headers, with_options views that share the
agent, pool and spool, default_headers, the user's own http_client (through a real local forward proxy), and
the request id and raw response of every run."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptstream import (
    APIStatusError,
    ArgumentTypeError,
    AsyncPromptStreamClient,
    ConfigurationError,
    InvalidArgumentError,
    PromptStreamClient,
    ServerError,
)

from .helpers import API_KEY, FaultInjector, fast, make_run


class Recorder:
    """httpx event hooks that keep what went out and what came back, as the user's own client would."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            event_hooks={"request": [self.requests.append], "response": [self.responses.append]}, **kwargs
        )


def test_per_call_options_reach_the_wire_and_leave_the_client_alone(server: Any, spool_dir: Path) -> None:
    prompt = server.create_prompt()
    recorder = Recorder()
    with (
        recorder.client() as http,
        PromptStreamClient(
            API_KEY,
            base_url=server.url,
            spool_dir=spool_dir,
            http_client=http,
            timeout=30,
            default_headers={"X-App": "a"},
        ) as client,
    ):
        client.run_prompt(prompt["prompt_id"], {"name": "x"}, timeout=2.5, extra_headers={"X-Trace": "t-1"})
        client.run_prompt(prompt["prompt_id"], {"name": "x"})
    runs = [r for r in recorder.requests if r.url.path.endswith("/runs")]
    assert runs[0].extensions["timeout"] == httpx.Timeout(2.5).as_dict()
    assert runs[0].headers["x-trace"] == "t-1" and runs[0].headers["x-app"] == "a"
    assert runs[1].extensions["timeout"] == httpx.Timeout(30).as_dict()
    assert "x-trace" not in runs[1].headers and runs[1].headers["x-app"] == "a"
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in recorder.requests)


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_per_call_max_retries_bounds_the_attempts(server_factory: Any, spool_dir: Path, retries: int) -> None:
    injectors: list[FaultInjector] = []

    def failing(app: Any) -> Any:
        injectors.append(FaultInjector(app, probability=1.0, status=503, only_path="/v1/prompts/p/runs"))
        return injectors[-1]

    server = server_factory(wrap=failing)
    client = PromptStreamClient(API_KEY, base_url=server.url, spool=False, max_retries=5)
    with client, pytest.raises(ServerError):
        client.run_prompt("p", {}, max_retries=retries)
    assert len(injectors[0].requests) == retries + 1


def test_with_options_is_a_view_sharing_agent_pool_and_spool(server: Any, spool_dir: Path) -> None:
    run_id, experiment_id = make_run(server)
    client = PromptStreamClient(API_KEY, base_url=server.url, agent_config=fast(spool_dir), timeout=30)
    try:
        view = client.with_options(timeout=1.5, max_retries=0, default_headers={"X-Team": "search"})
        assert isinstance(view, PromptStreamClient)
        assert view._agent is client._agent and view._transport is client._transport
        assert (view.timeout, view.max_retries) == (httpx.Timeout(1.5), 0)
        assert (client.timeout, client.max_retries, client.default_headers) == (httpx.Timeout(30), 2, {})
        event_id = view.track_click(run_id, experiment_id, "cta")
        assert client.stats().tracked == 1  # one agent: the view's event is the client's
        assert client.flush(timeout=10) and event_id in server.stored_event_ids()
        with pytest.raises(ConfigurationError, match="max_retries"):
            client.with_options(max_retries=-1)
    finally:
        client.close(timeout=2)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": "3"}, ArgumentTypeError),
        ({"timeout": -1}, InvalidArgumentError),
        ({"timeout": float("nan")}, InvalidArgumentError),
        ({"max_retries": 1.0}, ArgumentTypeError),
        ({"max_retries": 11}, InvalidArgumentError),
        ({"extra_headers": ["X-A"]}, ArgumentTypeError),
        ({"extra_headers": {"X-A": "é"}}, InvalidArgumentError),
        ({"extra_headers": {"Bad Name": "v"}}, InvalidArgumentError),
        ({"extra_headers": {"Authorization": "Bearer other"}}, InvalidArgumentError),
        ({"extra_headers": {"X-A": "a\r\nX-Injected: 1"}}, InvalidArgumentError),
    ],
)
def test_bad_per_call_options_are_argument_errors_before_any_io(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with PromptStreamClient(API_KEY, base_url="http://127.0.0.1:9", spool=False) as client:
        with pytest.raises(error):
            client.run_prompt("p", {}, **kwargs)
        with pytest.raises(error):
            client.get_experiment_results("e", **kwargs)


def test_run_response_carries_request_id_and_raw_response(server: Any, spool_dir: Path) -> None:
    prompt = server.create_prompt()
    recorder = Recorder()
    with (
        recorder.client() as http,
        PromptStreamClient(API_KEY, base_url=server.url, spool_dir=spool_dir, http_client=http) as client,
    ):
        run = client.run_prompt(prompt["prompt_id"], {"name": "x"}, idempotency_key="k-1")
        again = client.run_prompt(prompt["prompt_id"], {"name": "x"}, idempotency_key="k-1")
    seen = [r.headers["x-request-id"] for r in recorder.responses if r.url.path.endswith("/runs")]
    assert run.request_id == seen[0] and again.request_id == seen[1] and seen[0] != seen[1]
    assert run == again  # the same run: the exchange is not part of equality
    assert run.response is not None and run.response.status_code in (200, 201)
    assert run.response.headers["content-type"].startswith("application/json")


class ForwardProxy(http.server.ThreadingHTTPServer):
    """A real HTTP forward proxy on loopback: it receives absolute-form requests and forwards them."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str]] = []
        self.upstream = httpx.Client(trust_env=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: ForwardProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.seen.append((self.command, self.path))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
        upstream = self.server.upstream.request(self.command, self.path, content=body, headers=headers)
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy()
    thread = threading.Thread(target=server.serve_forever, name="test-forward-proxy", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    server.upstream.close()


def test_runs_and_events_go_through_the_users_proxy(server: Any, spool_dir: Path, proxy: ForwardProxy) -> None:
    run_id, experiment_id = make_run(server)
    prompt = server.create_prompt(name="proxied")
    with httpx.Client(proxy=proxy.url) as http:
        client = PromptStreamClient(API_KEY, base_url=server.url, http_client=http, agent_config=fast(spool_dir))
        try:
            client.run_prompt(prompt["prompt_id"], {"name": "x"})
            event_id = client.track_click(run_id, experiment_id, "cta")
            assert client.flush(timeout=10)
        finally:
            client.close(timeout=2)
        assert not http.is_closed  # the user's client stays the user's
    assert event_id in server.stored_event_ids()
    paths = {path for _, path in proxy.seen}
    assert f"{server.url}/v1/prompts/{prompt['prompt_id']}/runs" in paths
    assert f"{server.url}/v1/events/batch" in paths


def test_http_client_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="http_client"):
        PromptStreamClient(API_KEY, spool_dir=tmp_path, http_client=httpx.AsyncClient())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="http_client"):
        AsyncPromptStreamClient(API_KEY, spool_dir=tmp_path, http_client=httpx.Client())
    with pytest.raises(ConfigurationError, match="default_headers"):
        PromptStreamClient(API_KEY, spool_dir=tmp_path, default_headers={"Idempotency-Key": "x"})


def test_async_client_uses_the_users_async_client_and_per_call_options(server: Any, spool_dir: Path) -> None:
    prompt = server.create_prompt()
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    async def scenario() -> None:
        async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
            client = AsyncPromptStreamClient(API_KEY, base_url=server.url, http_client=http, spool_dir=spool_dir)
            view = client.with_options(max_retries=0)
            run = await view.run_prompt(prompt["prompt_id"], {"name": "x"}, timeout=4, extra_headers={"X-T": "1"})
            assert run.request_id
            with pytest.raises(APIStatusError):
                await view.get_experiment_results("nope", max_retries=0)
            await client.aclose(timeout=1)
            assert not http.is_closed

    asyncio.run(scenario())
    assert sent[0].headers["x-t"] == "1" and sent[0].extensions["timeout"] == httpx.Timeout(4).as_dict()
