"""One client per process, created when Django has loaded the apps.

``ready()`` runs once per process. Under ``gunicorn --preload`` that is the master, before the fork, which is
fine: each worker gets a fresh agent after ``fork()``. The client's exit hook delivers what is left when the
process ends, so no shutdown code is needed.
"""

from __future__ import annotations

from django.apps import AppConfig, apps
from django.conf import settings

from promptstream import PromptStreamClient


class GreetingsConfig(AppConfig):
    name = "django_greetings"
    promptstream: PromptStreamClient

    def ready(self) -> None:
        self.promptstream = PromptStreamClient(**settings.PROMPTSTREAM)


def promptstream() -> PromptStreamClient:
    """The process's client, for views."""
    config = apps.get_app_config("django_greetings")
    assert isinstance(config, GreetingsConfig)
    return config.promptstream
