"""The HTTP plumbing around the handlers: the error envelope, request ids with one log line per
request, and the last-resort 500 that keeps the connection usable."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._storage import StoreError

logger = logging.getLogger("promptstream.server")
_json = msgspec.json.Encoder()


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


class RequestIdMiddleware:
    """Gives every response an ``X-Request-Id``, logs one line per request (never the Authorization header), and
    turns any unexpected exception into a clean JSON 500.

    The last part matters for keep-alive: Starlette's own last-resort handler sends its 500 and then re-raises, and
    uvicorn answers an exception after a response by closing the connection, so the client's next request on that
    connection was reset. Here nothing escapes once a response is complete, and the connection stays usable.
    """

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
        finished = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status == 0:
                logger.error("unhandled error id=%s", request_id, exc_info=exc)
                response = error_response(500, "internal_error", "internal server error")
                await response(scope, receive, send_with_id)
            elif not finished:
                raise  # a response cut off half-way: only closing the connection tells the client
            # else: Starlette already answered with the envelope (and logged) and re-raised only to report it
        finally:
            logger.info(
                "%s %s %d %.1fms id=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error_type, exc.message, exc.headers)


async def store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    busy = {"Retry-After": "1"} if exc.status == 503 else None  # the database is busy: the client retries
    return error_response(exc.status, exc.error_type, exc.message, busy)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_type = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error_type, str(exc.detail), dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")
