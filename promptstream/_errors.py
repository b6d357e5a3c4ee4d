"""Every exception the SDK raises, in one hierarchy.

    PromptStreamError
    ├── ConfigurationError ............ the client cannot be built (no API key, bad option); also a ValueError
    ├── InvalidArgumentError .......... an argument failed validation before any I/O; also a ValueError
    │   └── ArgumentTypeError ......... an argument has the wrong type; also a TypeError
    ├── APIConnectionError ............ the server could not be reached or the connection broke
    │   └── APITimeoutError ........... the request timed out
    └── APIStatusError ................ the server answered with an error status
        ├── BadRequestError ........... 400 / 422: the server refused the request body
        ├── AuthenticationError ....... 401: missing or wrong API key
        ├── PermissionDeniedError ..... 403: the key may not do this
        ├── NotFoundError ............. 404
        │   └── PromptNotFoundError ... 404 for an unknown prompt
        ├── PayloadTooLargeError ...... 413
        ├── RateLimitError ............ 429, with ``retry_after`` seconds when the server said
        ├── ServerError ............... 5xx
        └── InvalidResponseError ...... a success status whose body is not what the protocol promises

``track_*`` raise only ``InvalidArgumentError`` (and its subclass), at the call site; network, server and disk
problems of the background delivery never reach the caller (see ``PromptStreamClient.stats()``).
"""

from __future__ import annotations

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ArgumentTypeError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "InvalidArgumentError",
    "InvalidResponseError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PromptNotFoundError",
    "PromptStreamError",
    "RateLimitError",
    "ServerError",
]


class PromptStreamError(Exception):
    """Base class of every exception raised by this SDK."""


class ConfigurationError(PromptStreamError, ValueError):
    """The client was configured wrongly, e.g. no API key was given."""


class InvalidArgumentError(PromptStreamError, ValueError):
    """An argument failed validation; ``argument`` names it. Raised before any I/O."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type; ``argument`` names it."""


class APIConnectionError(PromptStreamError):
    """The request did not get an HTTP answer: DNS, connect, TLS or a connection cut mid-way."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or pool wait)."""


class APIStatusError(PromptStreamError):
    """The server answered with an error status; carries ``status_code``, ``request_id`` and ``error_type``."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(f"{status_code} {error_type or 'error'}: {message} (request id: {request_id})")
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.error_type = error_type


class BadRequestError(APIStatusError):
    """400 or 422: the request was malformed or failed the server's validation (e.g. a missing template input)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or not valid for this server."""


class PermissionDeniedError(APIStatusError):
    """403: the API key is valid but may not do this."""


class NotFoundError(APIStatusError):
    """404: the resource does not exist."""


class PromptNotFoundError(NotFoundError):
    """404: no prompt has this id."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body is larger than the server accepts."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` is the server's wait in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        request_id: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id, error_type=error_type)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the server failed; retried automatically where that is safe."""


class InvalidResponseError(APIStatusError):
    """The server answered with a success status, but its body does not match protocol v1."""
