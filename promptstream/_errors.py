"""Every exception the SDK raises, in one hierarchy.

    PromptStreamError
    ├── ConfigurationError ............ the client cannot be built (no API key, bad option); also a ValueError
    ├── MissingDependencyError ........ an optional extra is not installed (pandas, polars, langchain); also an
    │                                   ImportError
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
    EventRejectedError ............ (to on_error only) events dead-lettered: the server refused them one by one,
                                    or they cannot be encoded for the wire

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
    "EventRejectedError",
    "InvalidArgumentError",
    "InvalidResponseError",
    "MissingDependencyError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PromptNotFoundError",
    "PromptStreamError",
    "RateLimitError",
    "ServerError",
]


class PromptStreamError(Exception):
    """Base class of every exception raised by this SDK.

    Example:
        ```python
        try:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except PromptStreamError as exc:  # anything the SDK raised, and nothing else
            log.warning("prompt failed, showing the fallback: %s", exc)
        ```
    """


class ConfigurationError(PromptStreamError, ValueError):
    """The client was configured wrongly, e.g. no API key was given. Raised by the constructor, never later.

    Example:
        ```python
        try:
            client = PromptStreamClient()  # no api_key= and no PROMPTSTREAM_API_KEY
        except ConfigurationError as exc:
            sys.exit(f"PromptStream is not configured: {exc}")
        ```
    """


class MissingDependencyError(PromptStreamError, ImportError):
    """An optional feature needs an extra that is not installed: ``extra`` names it (``pip install
    'promptstream[EXTRA]'``). Raised when the feature is used, never at ``import promptstream``.

    Example:
        ```python
        try:
            frame = results.to_pandas()
        except MissingDependencyError as exc:
            print(f"pip install 'promptstream[{exc.extra}]'")
        ```
    """

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class InvalidArgumentError(PromptStreamError, ValueError):
    """An argument failed validation; ``argument`` names it. Raised before any I/O, and nothing was queued.

    Example:
        ```python
        try:
            client.track_rating(run.run_id, run.experiment_id, rating=float("nan"))
        except InvalidArgumentError as exc:
            print(exc.argument)  # 'rating'
        ```
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type; ``argument`` names it. Also a ``TypeError``.

    Example:
        ```python
        try:
            client.track_click(run.run_id, run.experiment_id, label=42)
        except TypeError as exc:  # an ArgumentTypeError
            print(exc)  # "label: must be a str, got int"
        ```
    """


class APIConnectionError(PromptStreamError):
    """The request did not get an HTTP answer: DNS, connect, TLS or a connection cut mid-way. Raised once the
    retries (``max_retries``) are used up.

    Example:
        ```python
        try:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except APIConnectionError:  # also catches APITimeoutError
            run = None  # the server is unreachable: serve your fallback
        ```
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or pool wait), on every attempt.

    Example:
        ```python
        client = PromptStreamClient(timeout=httpx.Timeout(3.0, connect=1.0))
        try:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except APITimeoutError:
            run = None
        ```
    """


class APIStatusError(PromptStreamError):
    """The server answered with an error status; carries ``status_code``, ``request_id`` and ``error_type``.

    Example:
        ```python
        try:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except APIStatusError as exc:
            log.error("PromptStream said %s (%s), request %s", exc.status_code, exc.error_type, exc.request_id)
        ```
    """

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
    """400 or 422: the request was malformed or failed the server's validation (e.g. a missing template input).
    Never retried: the same request would fail again.

    Example:
        ```python
        try:
            client.run_prompt("PROMPT_ID", {})  # the template needs {text}
        except BadRequestError as exc:
            print(exc.message)
        ```
    """


class AuthenticationError(APIStatusError):
    """401: the API key is missing or not valid for this server. Background delivery pauses (``auth_pause``) instead
    of raising.

    Example:
        ```python
        try:
            client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except AuthenticationError:
            alert("PROMPTSTREAM_API_KEY was rejected: rotate it")
        ```
    """


class PermissionDeniedError(APIStatusError):
    """403: the API key is valid but may not do this.

    Example:
        ```python
        try:
            client.get_experiment_results(experiment_id)
        except PermissionDeniedError:
            print("this key cannot read results")
        ```
    """


class NotFoundError(APIStatusError):
    """404: the resource does not exist, e.g. an unknown experiment id.

    Example:
        ```python
        try:
            results = client.get_experiment_results("exp-unknown")
        except NotFoundError:
            results = None
        ```
    """


class PromptNotFoundError(NotFoundError):
    """404: no prompt has this id.

    Example:
        ```python
        try:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except PromptNotFoundError:
            run = None  # a typo in the id, or the prompt was deleted
        ```
    """


class PayloadTooLargeError(APIStatusError):
    """413: the request body is larger than the server accepts (``run_prompt`` inputs that are too big). The agent
    splits event batches by itself and never raises this.

    Example:
        ```python
        try:
            client.run_prompt("PROMPT_ID", {"text": huge_document})
        except PayloadTooLargeError:
            client.run_prompt("PROMPT_ID", {"text": huge_document[:100_000]})
        ```
    """


class RateLimitError(APIStatusError):
    """429: too many requests, still refused after the retries; ``retry_after`` is the server's wait in seconds, if
    it gave one.

    Example:
        ```python
        try:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except RateLimitError as exc:
            queue_for_later(delay=exc.retry_after or 30.0)
        ```
    """

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
    """5xx: the server failed; 502, 503 and 504 were retried first (the idempotency key makes that safe).

    Example:
        ```python
        try:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except ServerError as exc:
            log.error("PromptStream failed: %s", exc)
        ```
    """


class InvalidResponseError(APIStatusError):
    """The server answered with a success status, but its body does not match protocol v1 (a proxy or a wrong
    ``base_url`` is the usual cause).

    Example:
        ```python
        try:
            run = client.run_prompt("PROMPT_ID", {"text": "Hi"})
        except InvalidResponseError as exc:
            print("is base_url really a PromptStream server?", client.base_url, exc)
        ```
    """


class EventRejectedError(PromptStreamError):
    """Events were dead-lettered one by one: the server listed them as rejected in a 2xx answer, or they cannot be
    encoded for the wire (an int beyond MessagePack's range). Never raised: the agent passes it to ``on_error``;
    ``count`` events were affected and ``reason`` is the first reason given. Their neighbours were delivered.

    Example:
        ```python
        def on_error(exc: PromptStreamError) -> None:
            if isinstance(exc, EventRejectedError):
                log.warning("%d event(s) dead-lettered: %s", exc.count, exc.reason)

        client = PromptStreamClient(on_error=on_error)
        ```
    """

    def __init__(self, reason: str, *, count: int = 1) -> None:
        super().__init__(f"{count} event(s) rejected and kept as dead letters: {reason}")
        self.reason = reason
        self.count = count
