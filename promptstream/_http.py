"""HTTP plumbing shared by the synchronous API and the background sender: one pooled httpx.Client per process,
the headers every request carries, and the mapping from error responses to the exception tree."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec

from ._config import redact_url
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PromptNotFoundError,
    RateLimitError,
    ServerError,
)
from ._forksafety import ForkRegistry
from ._models import ErrorEnvelope
from ._retry import parse_retry_after
from ._version import __version__

__all__ = ["HttpTransport", "error_from_response"]

USER_AGENT = f"promptstream-python/{__version__}"
_error_decoder = msgspec.json.Decoder(ErrorEnvelope)


class HttpTransport:
    """Owns the process's httpx.Client. After ``fork()`` the child never touches the parent's client (its sockets
    and TLS state belong to the parent); it builds its own on first use and leaves the inherited one unclosed."""

    def __init__(
        self, base_url: str, api_key: str, timeout: httpx.Timeout, *, http_client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        # A client the user brought (proxies, CA, mTLS, hooks): used in the process that passed it, never closed
        # by us. A forked child cannot share its sockets, so it builds its own with the SDK's defaults.
        self._user_client = http_client
        self._user_client_pid = os.getpid()
        self._api_key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
        self._client: httpx.Client | None = None
        self._client_pid = 0
        self._lock = threading.Lock()
        self._inherited: list[httpx.Client] = []  # kept referenced so the GC never closes a parent's socket
        _live_transports.add(self)

    def _before_fork(self) -> None:
        # Client creation (SSL context, lazy imports) happens under the lock: no fork lands in the middle of it.
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The child's copy of the lock is held (by _before_fork): it gets a fresh one.
        self._lock = threading.Lock()
        if self._client is not None:
            self._inherited.append(self._client)
            self._client = None

    def __repr__(self) -> str:
        return f"HttpTransport(base_url={redact_url(self.base_url)!r})"

    def _get_client(self) -> httpx.Client:
        if self._user_client is not None and self._user_client_pid == os.getpid():
            return self._user_client
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.base_url,
                    headers=self._headers,
                    timeout=self.timeout,
                    limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
                )
                self._client_pid = os.getpid()
            return self._client

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send one request; transport failures become APIConnectionError / APITimeoutError."""
        client = self._get_client()
        with _transport_errors(self._api_key):
            # The URL, auth and timeout are the SDK's on every request, whatever client carries it.
            return client.request(
                method,
                self.base_url + path,
                content=content,
                headers={**self._headers, **headers} if headers else self._headers,
                timeout=timeout if timeout is not None else self.timeout,
            )

    def new_async_client(self) -> httpx.AsyncClient:
        """An httpx.AsyncClient with this transport's base URL, headers and timeouts (AsyncPromptStreamClient's)."""
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    async def request_async(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """``request`` over an AsyncClient (the SDK's or the user's): the same URL, headers, timeout and errors."""
        with _transport_errors(self._api_key):
            return await client.request(
                method,
                self.base_url + path,
                content=content,
                headers={**self._headers, **headers} if headers else self._headers,
                timeout=timeout if timeout is not None else self.timeout,
            )

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._client_pid == os.getpid():
                self._client.close()
            self._client = None


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


@contextlib.contextmanager
def _transport_errors(secret: str) -> Iterator[None]:
    # httpx's messages can quote a header (and so the key) or a URL with its userinfo: neither reaches our errors.
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"request timed out: {type(exc).__name__}") from None
    except httpx.TransportError as exc:
        message = _scrub(redact_url(str(exc)) if "://" in str(exc) else str(exc), secret)
        raise APIConnectionError(f"connection failed: {type(exc).__name__}: {message}") from None


# The transports of this process, so a fork can lock them before and a forked child can drop what it inherited.
_live_transports: ForkRegistry[HttpTransport] = ForkRegistry(weak=True)

_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: BadRequestError,
}


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The exception for an error response, with the server's message, error type and request id."""
    status = response.status_code
    request_id = response.headers.get("x-request-id")
    try:
        body = _error_decoder.decode(response.content).error
        message, error_type = body.message, body.type
    except msgspec.DecodeError:
        message, error_type = response.reason_phrase or "error", None
    kwargs: dict[str, Any] = {"status_code": status, "request_id": request_id, "error_type": error_type}
    if status == 429:
        return RateLimitError(message, retry_after=parse_retry_after(response.headers.get("retry-after")), **kwargs)
    if status == 404 and error_type == "prompt_not_found":
        return PromptNotFoundError(message, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    return _STATUS_ERRORS.get(status, APIStatusError)(message, **kwargs)


# What httpx imports lazily when a client is created and on its first request (SSL context, host-name encoding):
# the sender imports these through import_in_background before it sends anything.
MODULES_FOR_FIRST_REQUEST = ("encodings.idna", "certifi", "ssl", "httpcore")
