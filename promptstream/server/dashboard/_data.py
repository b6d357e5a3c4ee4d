"""What the dashboard reads and writes, for one project, through the server's ``Storage``: every page goes through
this one class, so the dashboard follows the storage interface in one place, and every call names the session's
project (another project's prompt or experiment is a 404, as in the API). The calls are blocking: the views run them
on a worker thread.
"""

from __future__ import annotations

from typing import Any

from .._storage import Storage, StoreError
from .._templates import call_model
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

    # -- projects -------------------------------------------------------------------------------------------------

    def projects(self) -> list[dict[str, Any]]:
        return self.store.list_projects()

    def project(self) -> dict[str, Any]:
        return self.store.get_project(self.project_id)

    def create_project(self, name: str) -> dict[str, Any]:
        return self.store.create_project(name)

    # -- prompts --------------------------------------------------------------------------------------------------

    def prompts(self) -> list[dict[str, Any]]:
        return self.store.list_prompts(self.project_id)

    def prompt(self, prompt_id: str) -> dict[str, Any]:
        return self.store.get_prompt(self.project_id, prompt_id)

    def create_prompt(self, name: str, template: str) -> dict[str, Any]:
        return self.store.create_prompt(self.project_id, name, template)

    def add_version(self, prompt_id: str, template: str) -> dict[str, Any]:
        return self.store.add_version(self.project_id, prompt_id, template)

    def preview(self, prompt_id: str, version: int, inputs: dict[str, Any]) -> str:
        """The output of ``version`` for ``inputs``, from the server's model provider (nothing is stored)."""
        versions = {v["version"]: v for v in self.prompt(prompt_id)["versions"]}
        if version not in versions:
            raise StoreError(404, "version_not_found", f"the prompt has no version {version}")
        return call_model(self.store.provider, versions[version]["template"], inputs).output

    # -- experiments ----------------------------------------------------------------------------------------------

    def experiments(self, prompt_id: str | None = None) -> list[dict[str, Any]]:
        return self.store.list_experiments(self.project_id, prompt_id)

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        return self.store.get_experiment(self.project_id, experiment_id)

    def create_experiment(self, prompt_id: str, variants: list[VariantSpec], name: str | None) -> dict[str, Any]:
        return self.store.create_experiment(self.project_id, prompt_id, variants, name)

    def end_experiment(self, experiment_id: str) -> dict[str, Any]:
        return self.store.end_experiment(self.project_id, experiment_id)

    def results(self, experiment_id: str) -> dict[str, Any]:
        return self.store.experiment_results(self.project_id, experiment_id)

    def timeseries(self, experiment_id: str) -> dict[str, Any] | None:
        """The experiment's figures per day, where the storage has them (else None: the charts use the results)."""
        read = getattr(self.store, "experiment_timeseries", None)
        if read is None:
            return None
        return dict(read(self.project_id, experiment_id))

    # -- events ---------------------------------------------------------------------------------------------------

    def recent_events(self, experiment_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.recent_events(self.project_id, experiment_id, limit)

    def recent_rejections(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.recent_rejections(self.project_id, limit)

    # -- keys -----------------------------------------------------------------------------------------------------

    def keys(self) -> list[dict[str, Any]]:
        return self.store.list_api_keys(self.project_id)

    def create_key(self, name: str) -> tuple[dict[str, Any], str]:
        return self.store.create_api_key(self.project_id, name)

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self.store.revoke_api_key(self.project_id, key_id)
