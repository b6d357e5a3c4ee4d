"""A custom CA (issue 14 §1, "Bring your own HTTP client"): the reference server served over TLS with a certificate
from a CA generated for the test (trustme). With ``verify=`` the CA, a client runs prompts and its tracked events are
delivered over TLS (stored by the server) — the async client's sender through ``sender_http_client``; without the CA
the run fails with the SDK's typed ``APIConnectionError``."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import uvicorn

from promptstream import APIConnectionError, AsyncPromptStreamClient, ConfigurationError, PromptStreamClient
from promptstream.server import Store, create_app
from promptstream.server._runner import bind_socket

from .helpers import API_KEY, wait_until


class TlsServer:
    """The reference server behind uvicorn's TLS, on a free loopback port, on a thread."""

    def __init__(self, store: Store, cert_file: Path, key_file: Path) -> None:
        sock = bind_socket("127.0.0.1", 0)
        self.url = f"https://localhost:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(store, [API_KEY]),
            log_level="warning",
            lifespan="off",
            access_log=False,
            ssl_certfile=str(cert_file),
            ssl_keyfile=str(key_file),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="promptstream-test-tls-server", daemon=True
        )
        self._sock = sock

    def start(self) -> TlsServer:
        self._thread.start()
        assert wait_until(lambda: self._server.started or not self._thread.is_alive(), timeout=10)
        assert self._server.started, "TLS server did not start"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def tls(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[TlsServer, Store]]:
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    leaf.private_key_pem.write_to_path(str(key_file))
    store = Store(tmp_path / "tls.sqlite3")
    server = TlsServer(store, cert_file, key_file).start()
    yield server, store
    server.stop()
    store.close()


def _prompt(store: Store) -> str:
    prompt_id: str = store.create_prompt("default", "tls", "Hello {{name}}")["prompt_id"]
    return prompt_id


def test_sync_client_with_the_ca_runs_and_delivers_events_over_tls(
    tls: tuple[TlsServer, Store], ca_file: Path, spool_dir: Path
) -> None:
    server, store = tls
    prompt_id = _prompt(store)
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file))) as http_client:
        client = PromptStreamClient(
            API_KEY, base_url=server.url, spool_dir=spool_dir, flush_interval=0.05, http_client=http_client
        )
        with client:
            run = client.run_prompt(prompt_id, {"name": "Ada"}, external_user_id="u1")
            assert run.output == "Hello Ada"
            ids = [
                client.track_click(run.run_id, run.experiment_id, label="copy"),
                client.track_conversion(run.run_id, run.experiment_id),
            ]
            assert client.flush(10)
    assert set(ids) <= set(store.event_ids())
    assert store.count("runs") == 1


@pytest.mark.parametrize("how", ["sdk defaults", "system store only"])
def test_without_the_ca_the_run_is_a_typed_connection_error(
    tls: tuple[TlsServer, Store], spool_dir: Path, how: str
) -> None:
    server, store = tls
    prompt_id = _prompt(store)
    http_client = None if how == "sdk defaults" else httpx.Client(verify=ssl.create_default_context())
    client = PromptStreamClient(API_KEY, base_url=server.url, spool=False, max_retries=0, http_client=http_client)
    with client, pytest.raises(APIConnectionError) as info:
        client.run_prompt(prompt_id, {"name": "Ada"})
    assert not isinstance(info.value, ssl.SSLError)
    assert store.count("runs") == 0
    if http_client is not None:
        http_client.close()


def test_async_client_sender_delivers_over_tls_with_sender_http_client(
    tls: tuple[TlsServer, Store], ca_file: Path, spool_dir: Path
) -> None:
    server, store = tls
    prompt_id = _prompt(store)

    async def scenario() -> list[str]:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca_file))) as http_client:
            with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file))) as sender_client:
                client = AsyncPromptStreamClient(
                    API_KEY,
                    base_url=server.url,
                    spool_dir=spool_dir,
                    flush_interval=0.05,
                    http_client=http_client,
                    sender_http_client=sender_client,
                )
                async with client:
                    run = await client.run_prompt(prompt_id, {"name": "Ada"}, external_user_id="u2")
                    ids = [client.track_rating(run.run_id, run.experiment_id, rating=4.0)]
                    assert await client.flush(10)
                return ids

    ids = asyncio.run(scenario())
    assert set(ids) <= set(store.event_ids())


def test_async_client_without_sender_http_client_cannot_deliver_to_a_private_ca(
    tls: tuple[TlsServer, Store], ca_file: Path, spool_dir: Path
) -> None:
    """Why sender_http_client exists: the awaited run reaches the server, the SDK-default sender cannot."""
    server, store = tls
    prompt_id = _prompt(store)

    async def scenario() -> bool:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca_file))) as http_client:
            client = AsyncPromptStreamClient(
                API_KEY,
                base_url=server.url,
                spool_dir=spool_dir,
                flush_interval=0.05,
                shutdown_timeout=0.0,
                http_client=http_client,
            )
            async with client:
                run = await client.run_prompt(prompt_id, {"name": "Ada"})
                client.track_conversion(run.run_id, run.experiment_id)
                return await client.flush(1.0)

    assert asyncio.run(scenario()) is False
    assert store.event_ids() == [] and store.count("runs") == 1


def test_sender_http_client_belongs_to_the_async_client() -> None:
    with httpx.Client() as sender, pytest.raises(ConfigurationError, match="sender_http_client"):
        PromptStreamClient(API_KEY, spool=False, sender_http_client=sender)
    wrong: Any = httpx.AsyncClient()
    with pytest.raises(ConfigurationError, match="sender_http_client"):
        AsyncPromptStreamClient(API_KEY, spool=False, sender_http_client=wrong)
