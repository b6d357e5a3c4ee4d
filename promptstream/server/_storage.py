"""The one storage interface of the reference server: what the HTTP app needs from a database. ``Store`` implements
it on SQLite (_store.py over _sqlite.py and one module of SQL per aggregate: _prompts.py, _experiments.py, _runs.py,
_events.py); a PostgreSQL implementation would implement the same protocol and pass the same tests.

Every method is blocking and short; the app calls them from a worker thread, never on its event loop. Refusals are
``StoreError`` (a status and an error type for the envelope); anything else is a server failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from ._templates import ModelProvider
from ._wire import EventBody, Rejection, VariantSpec

Idempotency = tuple[str, str, str]  # (scope, key, hash of the request body)


class StoreError(Exception):
    """A request the store refuses; the app turns it into an error response.

    Example:
        ```python
        try:
            store.get_prompt("no-such-prompt")
        except StoreError as exc:
            print(exc.status, exc.error_type)  # 404 prompt_not_found
        ```
    """

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class Storage(Protocol):
    """What the server stores and reads; ``Store`` (SQLite) is the reference implementation. ``create_app`` and
    ``ServerThread`` accept any object that has these methods.

    Example:
        ```python
        storage: Storage = Store("server.sqlite3")
        app = create_app(storage, ["ps_dev_key"])
        ```
    """

    provider: ModelProvider

    def close(self) -> None: ...

    def create_prompt(self, name: str, template: str) -> dict[str, Any]: ...

    def add_version(self, prompt_id: str, template: str) -> dict[str, Any]: ...

    def get_prompt(self, prompt_id: str) -> dict[str, Any]: ...

    def list_prompts(self) -> list[dict[str, Any]]: ...

    def create_experiment(
        self, prompt_id: str, variants: list[VariantSpec], name: str | None = None, *, experiment_id: str | None = None
    ) -> dict[str, Any]: ...

    def end_experiment(self, experiment_id: str) -> dict[str, Any]: ...

    def get_experiment(self, experiment_id: str) -> dict[str, Any]: ...

    def list_experiments(self, prompt_id: str | None = None) -> list[dict[str, Any]]: ...

    def experiment_results(
        self, experiment_id: str, *, guardrails: tuple[str, ...] | None = None
    ) -> dict[str, Any]: ...

    def experiment_timeseries(self, project_id: str, experiment_id: str) -> dict[str, Any]: ...

    def create_run(
        self,
        prompt_id: str,
        inputs: dict[str, Any],
        external_user_id: str | None,
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> tuple[int, bytes]: ...

    def ingest_events(
        self,
        total: int,
        decoded: list[tuple[int, EventBody]],
        rejected: list[Rejection],
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> bytes: ...

    def event_ids(self) -> list[str]: ...

    def count(self, table: str, where: str = "", args: Iterable[Any] = ()) -> int: ...

    def batch_log(self) -> list[dict[str, Any]]: ...
