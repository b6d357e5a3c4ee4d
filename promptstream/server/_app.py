"""The reference server's HTTP face: protocol v1 (docs/protocol.md) on Starlette."""

from __future__ import annotations

import hashlib
import hmac
import math
import zlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ._accounts import Accounts
from ._decision import guardrails_from
from ._http import (
    ApiError,
    RequestIdMiddleware,
    api_error,
    http_error,
    json_response,
    store_error,
    unexpected_error,
)
from ._keys import DEFAULT_PROJECT_ID, may_be_stored_key
from ._limits import (
    MAX_BATCH_EVENTS,
    MAX_DEPTH,
    MAX_TEXT_LENGTH,
    api_key_problem,
    idempotency_key_problem,
    json_like_problem,
)
from ._ratelimit import rate_limiter_for
from ._split import split_events
from ._storage import Storage, StoreError
from ._threads import Lane
from ._tracing import traced
from ._wire import (
    AddVersion,
    AssignBody,
    BatchBody,
    CreateExperiment,
    CreatePrompt,
    EventBody,
    Rejection,
    RunBody,
    event_problem,
)
from .dashboard import dashboard_routes

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
RUN_THREADS = 64  # runs in flight at once (each may wait on a model)
WORK_THREADS = 32  # every other request's blocking work (SQLite, decoding) at once
# Event batches decoded, checked and stored at once. That work holds the GIL or the database's write lock, so more
# batches in flight add no throughput to one process; they would only queue ahead of a run for both (a run waited
# behind a flood of batches, docs/scaling.md). Batches beyond these wait as coroutines, holding no thread and no
# pooled connection.
INGEST_THREADS = 4
_json = msgspec.json.Encoder()
_MSGPACK = "application/msgpack"


class Caller(NamedTuple):
    """Who sent a request: the project its key belongs to (every store call is confined to it) and the scope its
    rate limit is counted in (a digest of its key, never the key)."""

    project_id: str
    scope: str


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
        self.rate_limiter = rate_limiter_for(store, rate_limit) if rate_limit else None
        self.max_body_bytes = max_body_bytes
        self._work = Lane("work", WORK_THREADS)
        self._runs = Lane("run", RUN_THREADS)
        self._batches = Lane("ingest", INGEST_THREADS)
        self._event_decoders: dict[str, msgspec.json.Decoder[EventBody] | msgspec.msgpack.Decoder[EventBody]] = {
            "json": msgspec.json.Decoder(EventBody),
            "msgpack": msgspec.msgpack.Decoder(EventBody),
        }
        self._batch_decoders: dict[str, msgspec.json.Decoder[BatchBody] | msgspec.msgpack.Decoder[BatchBody]] = {
            "json": msgspec.json.Decoder(BatchBody),
            "msgpack": msgspec.msgpack.Decoder(BatchBody),
        }

    # -- request plumbing -----------------------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Caller:
        """The caller (its project) after auth and rate limiting. The keys given to the server (``--api-key``) are
        the default project's, checked in memory; a project's key (``ps_live_...``) is looked up in the database on
        every request, with no cache, so a revocation stops it at once on every instance."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "authentication_error", "missing or invalid API key")
        project_id: str | None = None
        # compare_digest against every key: the time taken does not reveal which prefix matched
        if any(hmac.compare_digest(digest, d) for d in self._key_digests):
            project_id = DEFAULT_PROJECT_ID
        elif may_be_stored_key(token):
            project_id = await self._work.run(self.store.project_for_key, token)
        if project_id is None:
            raise ApiError(401, "authentication_error", "missing or invalid API key")
        scope = digest.hex()[:16]
        if self.rate_limiter is not None:
            limiter = self.rate_limiter
            # a shared bucket is a database round trip: off the event loop, as every other storage call
            wait = await self._work.run(limiter.wait_needed, scope) if limiter.shared else limiter.wait_needed(scope)
            if wait > 0:
                raise ApiError(429, "rate_limited", "too many requests", {"Retry-After": str(max(1, math.ceil(wait)))})
        return Caller(project_id, scope)

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
    def _idempotency(request: Request, endpoint: str, body: bytes) -> tuple[str, str, str] | None:
        """(scope, key, hash of the body) of an idempotent request: the scope is the endpoint, and the store keeps
        the record under the caller's project, so every key of a project shares its Idempotency-Keys (a retry after
        a key rotation replays) and projects never see each other's."""
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        problem = idempotency_key_problem(key)
        if problem is not None:
            raise ApiError(400, "invalid_request", problem)
        request_hash = hashlib.sha256(endpoint.encode() + b"\x00" + body).hexdigest()
        return endpoint, key, request_hash

    async def _json_body(self, request: Request, kind: type[Any]) -> Any:
        raw = await self._read(request)
        return await self._work.run(lambda: self._decode(self._inflate(raw, request), kind))

    # -- handlers -------------------------------------------------------------------------------------------------

    async def create_prompt(self, request: Request) -> Response:
        caller = await self._authorize(request)
        body = await self._json_body(request, CreatePrompt)
        created = await self._work.run(self.store.create_prompt, caller.project_id, body.name, body.template)
        return json_response(created, 201)

    async def list_prompts(self, request: Request) -> Response:
        caller = await self._authorize(request)
        return json_response({"prompts": await self._work.run(self.store.list_prompts, caller.project_id)})

    async def get_prompt(self, request: Request) -> Response:
        caller = await self._authorize(request)
        prompt_id = request.path_params["prompt_id"]
        return json_response(await self._work.run(self.store.get_prompt, caller.project_id, prompt_id))

    async def add_version(self, request: Request) -> Response:
        caller = await self._authorize(request)
        body = await self._json_body(request, AddVersion)
        prompt_id = request.path_params["prompt_id"]
        added = await self._work.run(self.store.add_version, caller.project_id, prompt_id, body.template)
        return json_response(added, 201)

    async def create_run(self, request: Request) -> Response:
        caller = await self._authorize(request)
        raw = await self._read(request)
        # runs wait on the model: their own lane, so a crowd of slow runs never takes the threads that event
        # ingestion and the other endpoints need
        status, response = await self._runs.run(self._run, request, caller, raw)
        return Response(response, status_code=status, media_type="application/json")

    def _run(self, request: Request, caller: Caller, raw: bytes) -> tuple[int, bytes]:
        prompt_id = request.path_params["prompt_id"]
        body = self._inflate(raw, request)
        run: RunBody = self._decode(body, RunBody)
        problem = json_like_problem(run.inputs)
        if problem is not None:
            raise ApiError(422, "invalid_request", f"inputs: {problem}")
        idempotency = self._idempotency(request, f"runs/{prompt_id}", body)
        return self.store.create_run(
            caller.project_id, prompt_id, run.inputs, run.external_user_id, idempotency=idempotency, encode=_json.encode
        )

    async def assign(self, request: Request) -> Response:
        caller = await self._authorize(request)
        raw = await self._read(request)
        status, response = await self._work.run(self._assign, request, caller, raw)
        return Response(response, status_code=status, media_type="application/json")

    def _assign(self, request: Request, caller: Caller, raw: bytes) -> tuple[int, bytes]:
        body = self._inflate(raw, request)
        assignment: AssignBody = self._decode(body, AssignBody)
        idempotency = self._idempotency(request, "assignments", body)
        return self.store.assign(
            caller.project_id,
            assignment.prompt_id,
            assignment.external_user_id,
            idempotency=idempotency,
            encode=_json.encode,
        )

    async def create_experiment(self, request: Request) -> Response:
        caller = await self._authorize(request)
        body = await self._json_body(request, CreateExperiment)
        created = await self._work.run(
            self.store.create_experiment, caller.project_id, body.prompt_id, body.variants, body.name
        )
        return json_response(created, 201)

    async def list_experiments(self, request: Request) -> Response:
        caller = await self._authorize(request)
        prompt_id = request.query_params.get("prompt_id")
        listed = await self._work.run(self.store.list_experiments, caller.project_id, prompt_id)
        return json_response({"experiments": listed})

    async def get_experiment(self, request: Request) -> Response:
        caller = await self._authorize(request)
        experiment_id = request.path_params["experiment_id"]
        return json_response(await self._work.run(self.store.get_experiment, caller.project_id, experiment_id))

    async def end_experiment(self, request: Request) -> Response:
        caller = await self._authorize(request)
        experiment_id = request.path_params["experiment_id"]
        return json_response(await self._work.run(self.store.end_experiment, caller.project_id, experiment_id))

    async def experiment_results(self, request: Request) -> Response:
        caller = await self._authorize(request)
        experiment_id = request.path_params["experiment_id"]
        try:
            guardrails = guardrails_from(request.query_params.get("guardrails"))
        except ValueError as exc:
            raise StoreError(422, "invalid_request", str(exc)) from None
        call = partial(self.store.experiment_results, caller.project_id, experiment_id, guardrails=guardrails)
        return json_response(await self._work.run(call))

    async def experiment_timeseries(self, request: Request) -> Response:
        caller = await self._authorize(request)
        experiment_id = request.path_params["experiment_id"]
        answer = await self._work.run(self.store.experiment_timeseries, caller.project_id, experiment_id)
        return json_response(answer)

    async def ingest_batch(self, request: Request) -> Response:
        caller = await self._authorize(request)
        codec = self._codec(request)
        raw = await self._read(request)
        answer = await self._batches.run(self._ingest, request, caller, codec, raw)
        return Response(answer, media_type="application/json")

    def _ingest(self, request: Request, caller: Caller, codec: str, raw: bytes) -> bytes:
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
        idempotency = self._idempotency(request, "events/batch", body)
        return self.store.ingest_events(
            caller.project_id, len(items), decoded, rejected, idempotency=idempotency, encode=_json.encode
        )


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
    accounts: Accounts | None = None,
) -> ASGIApp:
    """The ASGI application for ``store`` and ``api_keys``; ``promptstream serve`` runs it under uvicorn. The
    dashboard is under ``/dashboard`` (its accounts: ``accounts``, else opened from the store on first use).

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
        ("/v1/assignments", server.assign, ["POST"]),
        ("/v1/experiments", server.create_experiment, ["POST"]),
        ("/v1/experiments", server.list_experiments, ["GET"]),
        ("/v1/experiments/{experiment_id}", server.get_experiment, ["GET"]),
        ("/v1/experiments/{experiment_id}/end", server.end_experiment, ["POST"]),
        ("/v1/experiments/{experiment_id}/results", server.experiment_results, ["GET"]),
        ("/v1/experiments/{experiment_id}/timeseries", server.experiment_timeseries, ["GET"]),
        ("/v1/events/batch", server.ingest_batch, ["POST"]),
    ]
    app = Starlette(
        routes=[Route(path, endpoint, methods=methods) for path, endpoint, methods in routes]
        + dashboard_routes(store, accounts),
        exception_handlers={
            ApiError: api_error,
            StoreError: store_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    return RequestIdMiddleware(traced(app))  # inside: the span sees the request id, and the 500s it makes
