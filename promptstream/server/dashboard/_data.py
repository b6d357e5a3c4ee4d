"""What the dashboard reads and writes, for one project, through the server's ``Storage``.

Every page goes through this one class, so the dashboard follows the storage interface in one place: a store with
projects (``create_project``...) takes ``project_id`` first in every data method (CONTRACT.md, issue 16 §1); a store
without them is one implicit project, "default". The calls are blocking: the views run them on a worker thread.
"""

from __future__ import annotations

from typing import Any

from .._storage import Storage, StoreError
from .._wire import VariantSpec

DEFAULT_PROJECT = "default"


class ProjectData:
    """One project's prompts, experiments, events and keys.

    Example:
        ```python
        data = ProjectData(store, "default")
        names = [prompt["name"] for prompt in data.prompts()]
        ```
    """

    def __init__(self, store: Storage, project_id: str) -> None:
        self.store = store
        self.project_id = project_id
        self.has_projects = hasattr(store, "create_project")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        function = getattr(self.store, method)
        if self.has_projects:
            return function(self.project_id, *args, **kwargs)
        if self.project_id != DEFAULT_PROJECT:
            raise StoreError(404, "project_not_found", f"no project with id {self.project_id!r}")
        return function(*args, **kwargs)

    def supports(self, method: str) -> bool:
        return hasattr(self.store, method)

    # -- projects -------------------------------------------------------------------------------------------------

    def projects(self) -> list[dict[str, Any]]:
        if not self.has_projects:
            return [{"project_id": DEFAULT_PROJECT, "name": "Default project", "created_at": None}]
        return list(self.store.list_projects())  # type: ignore[attr-defined]

    def project(self) -> dict[str, Any]:
        if not self.has_projects:
            return self.projects()[0]
        return dict(self.store.get_project(self.project_id))  # type: ignore[attr-defined]

    def create_project(self, name: str) -> dict[str, Any]:
        if not self.has_projects:
            raise StoreError(409, "projects_unsupported", "this server's storage has a single project")
        return dict(self.store.create_project(name))  # type: ignore[attr-defined]

    # -- prompts --------------------------------------------------------------------------------------------------

    def prompts(self) -> list[dict[str, Any]]:
        return list(self._call("list_prompts"))

    def prompt(self, prompt_id: str) -> dict[str, Any]:
        return dict(self._call("get_prompt", prompt_id))

    def create_prompt(self, name: str, template: str) -> dict[str, Any]:
        return dict(self._call("create_prompt", name, template))

    def add_version(self, prompt_id: str, template: str) -> dict[str, Any]:
        return dict(self._call("add_version", prompt_id, template))

    def preview(self, prompt_id: str, version: int, inputs: dict[str, Any]) -> str:
        """The output of ``version`` for ``inputs``, from the server's model provider (nothing is stored)."""
        versions = {v["version"]: v for v in self.prompt(prompt_id)["versions"]}
        if version not in versions:
            raise StoreError(404, "version_not_found", f"the prompt has no version {version}")
        return str(self.store.provider.complete(versions[version]["template"], inputs))

    # -- experiments ----------------------------------------------------------------------------------------------

    def experiments(self, prompt_id: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("list_experiments", prompt_id))

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        return dict(self._call("get_experiment", experiment_id))

    def create_experiment(self, prompt_id: str, variants: list[VariantSpec], name: str | None) -> dict[str, Any]:
        return dict(self._call("create_experiment", prompt_id, variants, name))

    def end_experiment(self, experiment_id: str) -> dict[str, Any]:
        return dict(self._call("end_experiment", experiment_id))

    def results(self, experiment_id: str) -> dict[str, Any]:
        return dict(self._call("experiment_results", experiment_id))

    def timeseries(self, experiment_id: str) -> dict[str, Any] | None:
        """The experiment's figures per day, where the storage has them (else None: charts fall back to results)."""
        if not self.supports("experiment_timeseries"):
            return None
        # written after the projects interface: it always takes the project first
        return dict(self.store.experiment_timeseries(self.project_id, experiment_id))  # type: ignore[attr-defined]

    # -- events ---------------------------------------------------------------------------------------------------

    def recent_events(self, experiment_id: str, limit: int = 100) -> list[dict[str, Any]] | None:
        if not self.supports("recent_events"):
            return None
        return list(self._call("recent_events", experiment_id, limit=limit))

    def recent_rejections(self, limit: int = 100) -> list[dict[str, Any]] | None:
        if not self.supports("recent_rejections"):
            return None
        return list(self._call("recent_rejections", limit=limit))

    # -- keys -----------------------------------------------------------------------------------------------------

    def keys(self) -> list[dict[str, Any]] | None:
        if not self.supports("list_api_keys"):
            return None
        return list(self._call("list_api_keys"))

    def create_key(self, name: str) -> tuple[dict[str, Any], str]:
        if not self.supports("create_api_key"):
            raise StoreError(409, "keys_unsupported", "this server's keys come from --api-key only")
        record, secret = self._call("create_api_key", name)
        return dict(record), str(secret)

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        if not self.supports("revoke_api_key"):
            raise StoreError(409, "keys_unsupported", "this server's keys come from --api-key only")
        return dict(self._call("revoke_api_key", key_id))
