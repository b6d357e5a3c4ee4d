"""The reference server's HTTP face: protocol v1 (docs/protocol.md) on Starlette."""

from __future__ import annotations

import hashlib
import hmac
import math
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ._http import (
    ApiError,
    RateLimiter,
    RequestIdMiddleware,
    api_error,
    http_error,
    json_response,
    store_error,
    unexpected_error,
)
from ._limits import (
    MAX_BATCH_EVENTS,
    MAX_DEPTH,
    MAX_TEXT_LENGTH,
    api_key_problem,
    idempotency_key_problem,
    json_like_problem,
)
from ._split import split_events
from ._storage import Storage, StoreError
from ._threads import Lane
from ._tracing import traced
from ._wire import (
    AddVersion,
    BatchBody,
    CreateExperiment,
    CreatePrompt,
    EventBody,
    Rejection,
    RunBody,
    event_problem,
)

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
RUN_THREADS = 64  # runs in flight at once (each may wait on a model)
WORK_THREADS = 32  # every other request's blocking work (SQLite, decoding) at once
_json = msgspec.json.Encoder()
_MSGPACK = "application/msgpack"


class ServerApp:
    """Holds the store, keys and limits; its methods are the route handlers.

    Handlers authenticate and read the body on the event loop, then do everything that costs time (inflating,
    decoding, checking, SQLite, the model) on a worker thread, so one slow request never stalls the others.
    """

    def __init__(
        self,
        store: Storage,
        api_keys: Sequence[str],
        *,
        rate_limit: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not api_keys:
            raise ValueError("the server needs at least one API key")
        for number, key in enumerate(api_keys, start=1):
            problem = api_key_problem(key)
            if problem is not None:
                raise ValueError(f"API key #{number} {problem}")  # never the key itself: it is a secret
        self.store = store
        self._key_digests = [hashlib.sha256(k.encode()).digest() for k in api_keys]
        self.rate_limiter = RateLimiter(rate_limit) if rate_limit else None
        self.max_body_bytes = max_body_bytes
        self._work = Lane("work", WORK_THREADS)
        self._runs = Lane("run", RUN_THREADS)
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

    async def _read(self, request: Request) -> bytes:
        """The body as sent, at most ``max_body_bytes``."""
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
        return b"".join(chunks)

    def _inflate(self, body: bytes, request: Request) -> bytes:
        """The body decompressed as its Content-Encoding says, still at most ``max_body_bytes`` (on a worker)."""
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
        except RecursionError:  # msgspec's own guard, far beyond any nesting the protocol allows
            raise ApiError(422, "invalid_request", f"body nests deeper than {MAX_DEPTH} levels") from None

    @staticmethod
    def _idempotency(request: Request, scope: str, endpoint: str, body: bytes) -> tuple[str, str, str] | None:
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        problem = idempotency_key_problem(key)
        if problem is not None:
            raise ApiError(400, "invalid_request", problem)
        request_hash = hashlib.sha256(endpoint.encode() + b"\x00" + body).hexdigest()
        return f"{scope}:{endpoint}", key, request_hash

    async def _json_body(self, request: Request, kind: type[Any]) -> Any:
        raw = await self._read(request)
        return await self._work.run(lambda: self._decode(self._inflate(raw, request), kind))

    # -- handlers -------------------------------------------------------------------------------------------------

    async def create_prompt(self, request: Request) -> Response:
        self._authorize(request)
        body = await self._json_body(request, CreatePrompt)
        return json_response(await self._work.run(self.store.create_prompt, body.name, body.template), 201)

    async def list_prompts(self, request: Request) -> Response:
        self._authorize(request)
        return json_response({"prompts": await self._work.run(self.store.list_prompts)})

    async def get_prompt(self, request: Request) -> Response:
        self._authorize(request)
        return json_response(await self._work.run(self.store.get_prompt, request.path_params["prompt_id"]))

    async def add_version(self, request: Request) -> Response:
        self._authorize(request)
        body = await self._json_body(request, AddVersion)
        prompt_id = request.path_params["prompt_id"]
        return json_response(await self._work.run(self.store.add_version, prompt_id, body.template), 201)

    async def create_run(self, request: Request) -> Response:
        scope = self._authorize(request)
        raw = await self._read(request)
        # runs wait on the model: their own lane, so a crowd of slow runs never takes the threads that event
        # ingestion and the other endpoints need
        status, response = await self._runs.run(self._run, request, scope, raw)
        return Response(response, status_code=status, media_type="application/json")

    def _run(self, request: Request, scope: str, raw: bytes) -> tuple[int, bytes]:
        prompt_id = request.path_params["prompt_id"]
        body = self._inflate(raw, request)
        run: RunBody = self._decode(body, RunBody)
        problem = json_like_problem(run.inputs)
        if problem is not None:
            raise ApiError(422, "invalid_request", f"inputs: {problem}")
        idempotency = self._idempotency(request, scope, f"runs/{prompt_id}", body)
        return self.store.create_run(
            prompt_id, run.inputs, run.external_user_id, idempotency=idempotency, encode=_json.encode
        )

    async def create_experiment(self, request: Request) -> Response:
        self._authorize(request)
        body = await self._json_body(request, CreateExperiment)
        created = await self._work.run(self.store.create_experiment, body.prompt_id, body.variants, body.name)
        return json_response(created, 201)

    async def list_experiments(self, request: Request) -> Response:
        self._authorize(request)
        prompt_id = request.query_params.get("prompt_id")
        return json_response({"experiments": await self._work.run(self.store.list_experiments, prompt_id)})

    async def get_experiment(self, request: Request) -> Response:
        self._authorize(request)
        return json_response(await self._work.run(self.store.get_experiment, request.path_params["experiment_id"]))

    async def end_experiment(self, request: Request) -> Response:
        self._authorize(request)
        return json_response(await self._work.run(self.store.end_experiment, request.path_params["experiment_id"]))

    async def experiment_results(self, request: Request) -> Response:
        self._authorize(request)
        experiment_id = request.path_params["experiment_id"]
        return json_response(await self._work.run(self.store.experiment_results, experiment_id))

    async def ingest_batch(self, request: Request) -> Response:
        scope = self._authorize(request)
        codec = self._codec(request)
        raw = await self._read(request)
        answer = await self._work.run(self._ingest, request, scope, codec, raw)
        return Response(answer, media_type="application/json")

    def _ingest(self, request: Request, scope: str, codec: str, raw: bytes) -> bytes:
        body = self._inflate(raw, request)
        items: Sequence[msgspec.Raw | bytes]
        try:
            items = self._batch_decoders[codec].decode(body).events
        except msgspec.ValidationError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_body", f"body is not valid {codec}: {exc}") from None
        except RecursionError:
            # nested so deep that even stepping over an event trips the decoder's guard: find the events without
            # recursion, so only the deep one is refused; failing that, the client splits the refused batch
            found = split_events(body, codec)
            if found is None:
                raise ApiError(422, "invalid_request", f"body nests deeper than {MAX_DEPTH} levels") from None
            items = found
        if len(items) > MAX_BATCH_EVENTS:
            raise ApiError(
                413, "payload_too_large", f"a batch carries at most {MAX_BATCH_EVENTS} events, got {len(items)}"
            )
        decoder = self._event_decoders[codec]
        decoded: list[tuple[int, EventBody]] = []
        rejected: list[Rejection] = []
        for index, item in enumerate(items):
            try:
                event = decoder.decode(item)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                rejected.append(Rejection(index=index, event_id=_loose_event_id(codec, item), reason=str(exc)))
                continue
            except RecursionError:
                reason = f"metadata: nests deeper than {MAX_DEPTH} levels"
                rejected.append(Rejection(index=index, event_id=None, reason=reason))
                continue
            problem = event_problem(event)
            if problem is not None:
                rejected.append(Rejection(index=index, event_id=event.event_id, reason=problem))
            else:
                decoded.append((index, event))
        idempotency = self._idempotency(request, scope, "events/batch", body)
        return self.store.ingest_events(len(items), decoded, rejected, idempotency=idempotency, encode=_json.encode)


def _loose_event_id(codec: str, item: msgspec.Raw | bytes) -> str | None:
    """The event_id of an event that failed to decode, when it has a usable one (echoed in its rejection)."""
    try:
        loose = msgspec.json.decode(item) if codec == "json" else msgspec.msgpack.decode(item)
    except (msgspec.DecodeError, RecursionError):
        return None
    if isinstance(loose, dict):
        event_id = loose.get("event_id")
        if isinstance(event_id, str) and 0 < len(event_id) <= MAX_TEXT_LENGTH:
            return event_id
    return None


def create_app(
    store: Storage,
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
        ("/v1/experiments/{experiment_id}/end", server.end_experiment, ["POST"]),
        ("/v1/experiments/{experiment_id}/results", server.experiment_results, ["GET"]),
        ("/v1/events/batch", server.ingest_batch, ["POST"]),
    ]
    app = Starlette(
        routes=[Route(path, endpoint, methods=methods) for path, endpoint, methods in routes],
        exception_handlers={
            ApiError: api_error,
            StoreError: store_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    return RequestIdMiddleware(traced(app))  # inside: the span sees the request id, and the 500s it makes
