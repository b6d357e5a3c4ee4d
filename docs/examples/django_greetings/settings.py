"""Settings: only what the recipe needs. The client's options live in one ``PROMPTSTREAM`` dict, so tests and
deployments change them in one place; anything left out falls back to the PROMPTSTREAM_* environment variables."""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "recipe-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_greetings.urls"
INSTALLED_APPS = ["django_greetings.apps.GreetingsConfig"]
MIDDLEWARE: list[str] = []
DATABASES: dict[str, Any] = {}
USE_TZ = True

# Keyword arguments for PromptStreamClient; the API key comes from PROMPTSTREAM_API_KEY, never from this file.
PROMPTSTREAM: dict[str, Any] = {"timeout": 5.0}
GREETING_PROMPT_ID = os.environ.get("GREETING_PROMPT_ID", "")
