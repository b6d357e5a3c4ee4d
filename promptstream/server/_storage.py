"""The one storage interface of the reference server: what the HTTP app needs from a database. ``Store`` implements
it on SQLite (_store.py over _sqlite.py and one module of SQL per aggregate: _prompts.py, _experiments.py, _runs.py,
_events.py), ``PgStore`` on PostgreSQL (_pgstore.py over _pg.py); both pass the same tests.

Every data method takes the project first: a project owns its prompts, experiments, runs and events, and another
project's are not found (``StoreError`` 404), exactly as ones that do not exist. Projects and their API keys are in
_projects.py, shared by both.

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
            store.get_prompt("default", "no-such-prompt")
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

    def create_prompt(self, project_id: str, name: str, template: str) -> dict[str, Any]: ...

    def add_version(self, project_id: str, prompt_id: str, template: str) -> dict[str, Any]: ...

    def get_prompt(self, project_id: str, prompt_id: str) -> dict[str, Any]: ...

    def list_prompts(self, project_id: str) -> list[dict[str, Any]]: ...

    def create_experiment(
        self,
        project_id: str,
        prompt_id: str,
        variants: list[VariantSpec],
        name: str | None = None,
        *,
        experiment_id: str | None = None,
    ) -> dict[str, Any]: ...

    def end_experiment(self, project_id: str, experiment_id: str) -> dict[str, Any]: ...

    def get_experiment(self, project_id: str, experiment_id: str) -> dict[str, Any]: ...

    def list_experiments(self, project_id: str, prompt_id: str | None = None) -> list[dict[str, Any]]: ...

    def experiment_results(
        self, project_id: str, experiment_id: str, *, guardrails: tuple[str, ...] | None = None
    ) -> dict[str, Any]: ...

    def experiment_timeseries(self, project_id: str, experiment_id: str) -> dict[str, Any]: ...

    def create_run(
        self,
        project_id: str,
        prompt_id: str,
        inputs: dict[str, Any],
        external_user_id: str | None,
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> tuple[int, bytes]: ...

    def assign(
        self,
        project_id: str,
        prompt_id: str,
        external_user_id: str | None,
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> tuple[int, bytes]: ...

    def ingest_events(
        self,
        project_id: str,
        total: int,
        decoded: list[tuple[int, EventBody]],
        rejected: list[Rejection],
        *,
        idempotency: Idempotency | None,
        encode: Any,
    ) -> bytes: ...

    # -- projects and their keys (_projects.py) -------------------------------------------------------------------

    def create_project(self, name: str) -> dict[str, Any]: ...

    def get_project(self, project_id: str) -> dict[str, Any]: ...

    def list_projects(self) -> list[dict[str, Any]]: ...

    def create_api_key(self, project_id: str, name: str) -> tuple[dict[str, Any], str]: ...

    def list_api_keys(self, project_id: str) -> list[dict[str, Any]]: ...

    def revoke_api_key(self, project_id: str, key_id: str) -> dict[str, Any]: ...

    def project_for_key(self, secret: str) -> str | None: ...

    def recent_events(self, project_id: str, experiment_id: str, limit: int = 100) -> list[dict[str, Any]]: ...

    def recent_rejections(self, project_id: str, limit: int = 100) -> list[dict[str, Any]]: ...

    # -- inspection across every project, for tests and operators -------------------------------------------------

    def event_ids(self, project_id: str | None = None) -> list[str]: ...

    def count(self, table: str, where: str = "", args: Iterable[Any] = ()) -> int: ...

    def batch_log(self) -> list[dict[str, Any]]: ...
