"""Alias package: the original SDK documentation imports ``from promptstream_sdk import PromptStreamClient``."""

from promptstream import *  # noqa: F403
from promptstream import __all__, __version__  # noqa: F401
