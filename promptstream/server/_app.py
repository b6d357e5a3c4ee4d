"""The reference server's HTTP face: protocol v1 (docs/protocol.md) on Starlette."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._store import Store, StoreError
from ._wire import AddVersion, BatchBody, CreateExperiment, CreatePrompt, EventBody, Rejection, RunBody

logger = logging.getLogger("promptstream.server")

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
_json = msgspec.json.Encoder()
_MSGPACK = "application/msgpack"


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}


def error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = _json.encode({"error": {"type": error_type, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_json.encode(body), status_code=status, media_type="application/json")


class RateLimiter:
    """Token bucket per API key: ``rate`` requests per second, bursts up to ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_needed(self, key: str) -> float:
        """0 when the request may go now (and it is counted), else the seconds until a token is free."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.rate, now))
            tokens = min(self.rate, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class RequestIdMiddleware:
    """Gives every response an ``X-Request-Id`` and logs one line per request (never the Authorization header)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logger.info(
                "%s %s %d %.1fms id=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )


class ServerApp:
    """Holds the store, keys and limits; its methods are the route handlers."""

    def __init__(
        self,
        store: Store,
        api_keys: Sequence[str],
        *,
        rate_limit: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not api_keys:
            raise ValueError("the server needs at least one API key")
        self.store = store
        self._key_digests = [hashlib.sha256(k.encode()).digest() for k in api_keys]
        self.rate_limiter = RateLimiter(rate_limit) if rate_limit else None
        self.max_body_bytes = max_body_bytes
        self._event_decoders: dict[str, msgspec.json.Decoder[EventBody] | msgspec.msgpack.Decoder[EventBody]] = {
            "json": msgspec.json.Decoder(EventBody),
            "msgpack": msgspec.msgpack.Decoder(EventBody),
        }
        self._batch_decoders: dict[str, msgspec.json.Decoder[BatchBody] | msgspec.msgpack.Decoder[BatchBody]] = {
            "json": msgspec.json.Decoder(BatchBody),
            "msgpack": msgspec.msgpack.Decoder(BatchBody),
        }

    # -- request plumbing -----------------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> str:
        """The caller's scope (a digest of its key, never the key) after auth and rate limiting."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        digest = hashlib.sha256(token.strip().encode()).digest()
        # compare_digest against every key: the time taken does not reveal which prefix matched
        if scheme.lower() != "bearer" or not any(hmac.compare_digest(digest, d) for d in self._key_digests):
            raise ApiError(401, "authentication_error", "missing or invalid API key")
        scope = digest.hex()[:16]
        if self.rate_limiter is not None:
            wait = self.rate_limiter.wait_needed(scope)
            if wait > 0:
                raise ApiError(429, "rate_limited", "too many requests", {"Retry-After": str(max(1, math.ceil(wait)))})
        return scope

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise ApiError(413, "payload_too_large", f"body is larger than {self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise ApiError(413, "payload_too_large", f"body is larger than {self.max_body_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            # the client went away mid-body (a process exiting, a cut connection): nothing was stored, nobody
            # is listening for an answer, and the client will resend; not a server error
            raise ApiError(
                400, "client_disconnected", "the client disconnected before sending the whole body"
            ) from None
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            # bounded: a small gzip bomb must not become a large allocation
            inflater = zlib.decompressobj(wbits=31)
            try:
                body = inflater.decompress(body, self.max_body_bytes + 1)
            except zlib.error as exc:
                raise ApiError(400, "invalid_body", f"body is not valid gzip: {exc}") from None
            if len(body) > self.max_body_bytes or inflater.unconsumed_tail:
                raise ApiError(413, "payload_too_large", f"decompressed body exceeds {self.max_body_bytes} bytes")
            if not inflater.eof:
                raise ApiError(400, "invalid_body", "gzip body is truncated")
        elif encoding not in ("identity", ""):
            raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported")
        return body

    @staticmethod
    def _codec(request: Request) -> str:
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type == _MSGPACK:
            return "msgpack"
        if content_type in ("application/json", ""):
            return "json"
        raise ApiError(415, "unsupported_media_type", f"Content-Type {content_type!r} is not supported")

    @staticmethod
    def _decode(body: bytes, kind: type[Any]) -> Any:
        try:
            return msgspec.json.decode(body, type=kind)
        except msgspec.ValidationError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_body", f"body is not valid JSON: {exc}") from None

    @staticmethod
    def _idempotency(request: Request, scope: str, endpoint: str, body: bytes) -> tuple[str, str, str] | None:
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        if not 0 < len(key) <= 255:
            raise ApiError(400, "invalid_request", "Idempotency-Key must be 1 to 255 characters")
        request_hash = hashlib.sha256(endpoint.encode() + b"\x00" + body).hexdigest()
        return f"{scope}:{endpoint}", key, request_hash

    # -- handlers -------------------------------------------------------------------------------------------------

    async def create_prompt(self, request: Request) -> Response:
        self._authorize(request)
        body = self._decode(await self._body(request), CreatePrompt)
        return json_response(self.store.create_prompt(body.name, body.template), 201)

    async def list_prompts(self, request: Request) -> Response:
        self._authorize(request)
        return json_response({"prompts": self.store.list_prompts()})

    async def get_prompt(self, request: Request) -> Response:
        self._authorize(request)
        return json_response(self.store.get_prompt(request.path_params["prompt_id"]))

    async def add_version(self, request: Request) -> Response:
        self._authorize(request)
        body = self._decode(await self._body(request), AddVersion)
        return json_response(self.store.add_version(request.path_params["prompt_id"], body.template), 201)

    async def create_run(self, request: Request) -> Response:
        scope = self._authorize(request)
        raw = await self._body(request)
        prompt_id = request.path_params["prompt_id"]
        body = self._decode(raw, RunBody)
        idempotency = self._idempotency(request, scope, f"runs/{prompt_id}", raw)
        status, response = self.store.create_run(
            prompt_id, body.inputs, body.external_user_id, idempotency=idempotency, encode=_json.encode
        )
        return Response(response, status_code=status, media_type="application/json")

    async def create_experiment(self, request: Request) -> Response:
        self._authorize(request)
        body = self._decode(await self._body(request), CreateExperiment)
        return json_response(self.store.create_experiment(body.prompt_id, body.variants, body.name), 201)

    async def list_experiments(self, request: Request) -> Response:
        self._authorize(request)
        return json_response({"experiments": self.store.list_experiments(request.query_params.get("prompt_id"))})

    async def get_experiment(self, request: Request) -> Response:
        self._authorize(request)
        return json_response(self.store.get_experiment(request.path_params["experiment_id"]))

    async def experiment_results(self, request: Request) -> Response:
        self._authorize(request)
        return json_response(self.store.experiment_results(request.path_params["experiment_id"]))

    async def ingest_batch(self, request: Request) -> Response:
        scope = self._authorize(request)
        codec = self._codec(request)
        raw = await self._body(request)
        try:
            batch: BatchBody = self._batch_decoders[codec].decode(raw)
        except msgspec.ValidationError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_body", f"body is not valid {codec}: {exc}") from None
        decoder = self._event_decoders[codec]
        decoded: list[tuple[int, EventBody]] = []
        rejected: list[Rejection] = []
        for index, item in enumerate(batch.events):
            try:
                decoded.append((index, decoder.decode(item)))
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                rejected.append(Rejection(index=index, event_id=_loose_event_id(codec, item), reason=str(exc)))
        idempotency = self._idempotency(request, scope, "events/batch", raw)
        response = self.store.ingest_events(
            len(batch.events), decoded, rejected, idempotency=idempotency, encode=_json.encode
        )
        return Response(response, media_type="application/json")


def _loose_event_id(codec: str, item: msgspec.Raw) -> str | None:
    try:
        loose = msgspec.json.decode(item) if codec == "json" else msgspec.msgpack.decode(item)
    except msgspec.DecodeError:
        return None
    if isinstance(loose, dict) and isinstance(loose.get("event_id"), str):
        return str(loose["event_id"])
    return None


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error_type, exc.message, exc.headers)


async def _store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    return error_response(exc.status, exc.error_type, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_type = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error_type, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def create_app(
    store: Store,
    api_keys: Sequence[str],
    *,
    rate_limit: float | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> ASGIApp:
    """The ASGI application for ``store`` and ``api_keys``; ``promptstream serve`` runs it under uvicorn.

    Example:
        ```python
        # doc: no-run: uvicorn.run serves until interrupted
        app = create_app(Store("server.sqlite3"), ["ps_dev_key"], rate_limit=100.0)
        uvicorn.run(app, port=8700)
        ```
    """
    server = ServerApp(store, api_keys, rate_limit=rate_limit, max_body_bytes=max_body_bytes)
    handler = Callable[[Request], Awaitable[Response]]
    routes: list[tuple[str, handler, list[str]]] = [
        ("/v1/prompts", server.create_prompt, ["POST"]),
        ("/v1/prompts", server.list_prompts, ["GET"]),
        ("/v1/prompts/{prompt_id}", server.get_prompt, ["GET"]),
        ("/v1/prompts/{prompt_id}/versions", server.add_version, ["POST"]),
        ("/v1/prompts/{prompt_id}/runs", server.create_run, ["POST"]),
        ("/v1/experiments", server.create_experiment, ["POST"]),
        ("/v1/experiments", server.list_experiments, ["GET"]),
        ("/v1/experiments/{experiment_id}", server.get_experiment, ["GET"]),
        ("/v1/experiments/{experiment_id}/results", server.experiment_results, ["GET"]),
        ("/v1/events/batch", server.ingest_batch, ["POST"]),
    ]
    app = Starlette(
        routes=[Route(path, endpoint, methods=methods) for path, endpoint, methods in routes],
        exception_handlers={
            ApiError: _api_error,
            StoreError: _store_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    return RequestIdMiddleware(app)
