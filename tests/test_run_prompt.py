"""run_prompt against the real reference server: results, typed errors, and retries that never duplicate a run."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import promptstream
from promptstream import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    PromptNotFoundError,
    PromptStreamClient,
    RateLimitError,
    RunResponse,
    ServerError,
)

from .helpers import API_KEY, FaultInjector

RUNS = "/v1/prompts/{}/runs"


def test_both_import_paths_give_the_same_client() -> None:
    import promptstream_sdk

    assert promptstream_sdk.PromptStreamClient is promptstream.PromptStreamClient
    assert isinstance(promptstream.__version__, str)


def test_run_prompt_returns_a_typed_immutable_response(server: Any, client: PromptStreamClient) -> None:
    prompt = server.create_prompt("Hello {{name}}!")
    response = client.run_prompt(prompt["prompt_id"], {"name": "Ada"}, external_user_id="user_123")
    assert isinstance(response, RunResponse)
    assert response.output == "Hello Ada!"
    assert response.variant_assigned == "v1"
    assert response.experiment_id == prompt["experiment_id"]
    with pytest.raises(AttributeError):
        response.output = "changed"  # type: ignore[misc]
    assert server.store.count("runs") == 1


def test_wrong_key_is_authentication_error_without_the_key_in_it(server: Any, client_factory: Any) -> None:
    prompt = server.create_prompt()
    secret = "ps_wrong_secret_key"
    client = client_factory(server.url, api_key=secret)
    with pytest.raises(AuthenticationError) as info:
        client.run_prompt(prompt["prompt_id"], {"name": "x"})
    assert info.value.status_code == 401 and info.value.request_id
    assert secret not in str(info.value) and secret not in repr(info.value) and secret not in repr(client)


def test_unknown_prompt_is_prompt_not_found(client: PromptStreamClient) -> None:
    with pytest.raises(PromptNotFoundError) as info:
        client.run_prompt("no-such-prompt", {})
    assert info.value.status_code == 404 and info.value.error_type == "prompt_not_found"


def test_missing_input_is_bad_request_naming_it(server: Any, client: PromptStreamClient) -> None:
    prompt = server.create_prompt("Dear {{name}}")
    with pytest.raises(BadRequestError, match="name") as info:
        client.run_prompt(prompt["prompt_id"], {})
    assert info.value.status_code == 422


def test_transient_503_after_the_run_was_stored_is_retried_without_a_second_run(
    server_factory: Any, client_factory: Any
) -> None:
    faults: list[FaultInjector] = []

    def wrap(app: Any) -> FaultInjector:
        faults.append(FaultInjector(app, first_n=2, after_processing=True, only_path=None))
        return faults[0]

    server = server_factory(wrap=wrap)
    prompt = server.create_prompt()
    faults[0].only_path = RUNS.format(prompt["prompt_id"])
    client = client_factory(server.url, max_retries=3)
    response = client.run_prompt(prompt["prompt_id"], {"name": "Ada"})
    assert faults[0].faults == 2 and len(faults[0].requests) == 3
    # the server ran the prompt on the first attempt; the retries replayed it under the same Idempotency-Key
    assert server.store.count("runs") == 1
    assert server.store.provider.calls == 1
    assert server.store.count("runs", "WHERE id = ?", [response.run_id]) == 1


def test_retries_give_up_with_server_error_after_max_retries(server_factory: Any, client_factory: Any) -> None:
    server = server_factory(wrap=lambda app: FaultInjector(app, probability=1.0, only_path=None))
    client = client_factory(server.url, max_retries=1)
    with pytest.raises(ServerError) as info:
        client.run_prompt("any", {})
    assert info.value.status_code == 503


def test_retry_after_is_honoured(server_factory: Any, client_factory: Any) -> None:
    injectors: list[FaultInjector] = []

    def wrap(app: Any) -> FaultInjector:
        injectors.append(FaultInjector(app, first_n=1, status=429, headers={"Retry-After": "1"}))
        return injectors[0]

    server = server_factory(wrap=wrap)
    prompt = server.create_prompt()
    injectors[0].only_path = RUNS.format(prompt["prompt_id"])
    client = client_factory(server.url, max_retries=2)
    client.run_prompt(prompt["prompt_id"], {"name": "x"})
    first, second = injectors[0].requests
    assert second - first >= 1.0  # never earlier than the server asked


def test_a_long_retry_after_raises_rate_limit_error_at_once(server_factory: Any, client_factory: Any) -> None:
    server = server_factory(
        wrap=lambda app: FaultInjector(app, probability=1.0, status=429, headers={"Retry-After": "3600"})
    )
    client = client_factory(server.url, max_retries=5)
    with pytest.raises(RateLimitError) as info:
        client.run_prompt("p", {})
    assert info.value.retry_after == 3600


def test_real_rate_limit_is_retried_until_it_succeeds(server_factory: Any, client_factory: Any) -> None:
    server = server_factory(rate_limit=1)
    prompt = server.create_prompt()
    client = client_factory(server.url, max_retries=3)
    runs = [client.run_prompt(prompt["prompt_id"], {"name": "x"}) for _ in range(3)]
    assert len({r.run_id for r in runs}) == 3
    assert server.store.count("runs") == 3


def test_nothing_listening_is_api_connection_error(client_factory: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_factory(f"http://127.0.0.1:{port}", max_retries=1)
    with pytest.raises(APIConnectionError) as info:
        client.run_prompt("p", {})
    assert not isinstance(info.value, APITimeoutError)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, name="silent-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    sock.close()


def test_a_server_that_never_answers_is_api_timeout_error(silent_server: str, client_factory: Any) -> None:
    client = client_factory(silent_server, timeout=0.3, max_retries=0)
    with pytest.raises(APITimeoutError):
        client.run_prompt("p", {})


def test_caller_supplied_idempotency_key_is_used(server: Any, client: PromptStreamClient) -> None:
    prompt = server.create_prompt()
    first = client.run_prompt(prompt["prompt_id"], {"name": "x"}, idempotency_key="order-42")
    second = client.run_prompt(prompt["prompt_id"], {"name": "x"}, idempotency_key="order-42")
    assert first == second and server.store.count("runs") == 1


def test_missing_api_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTSTREAM_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="PROMPTSTREAM_API_KEY"):
        PromptStreamClient()


def test_key_and_url_come_from_the_environment(server: Any, monkeypatch: pytest.MonkeyPatch, spool_dir: Any) -> None:
    monkeypatch.setenv("PROMPTSTREAM_API_KEY", API_KEY)
    monkeypatch.setenv("PROMPTSTREAM_BASE_URL", server.url)
    prompt = server.create_prompt()
    with PromptStreamClient(spool_dir=spool_dir) as client:
        assert client.run_prompt(prompt["prompt_id"], {"name": "x"}).output == "Hello x!"


def test_the_api_key_never_reaches_logs(
    server: Any, client: PromptStreamClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prompt = server.create_prompt()
    client.run_prompt(prompt["prompt_id"], {"name": "x"})
    client.track_click("r", "e", "l")
    client.flush(2)
    assert API_KEY not in caplog.text


def test_bad_base_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        PromptStreamClient("k", base_url="ftp://example")
