"""The pytest plugin PromptStream registers on install (entry point ``pytest11``): a ``promptstream_client``
fixture, a fresh ``RecordingClient`` for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import RecordingClient


@pytest.fixture
def promptstream_client() -> Iterator[RecordingClient]:
    """A ``RecordingClient``: assert on ``promptstream_client.events(type="click")`` and friends."""
    client = RecordingClient()
    yield client
    client.close()
