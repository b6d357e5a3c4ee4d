"""The pytest plugin PromptStream registers on install (entry point ``pytest11``): a ``promptstream_client``
fixture, a fresh ``RecordingClient`` for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import RecordingClient


@pytest.fixture
def promptstream_client() -> Iterator[RecordingClient]:
    """A fresh ``RecordingClient`` for each test, closed after it.

    Example:
        ```python
        def test_checkout_tracks_a_conversion(promptstream_client):
            checkout(cart, promptstream=promptstream_client)
            assert promptstream_client.events(type="conversion", label="purchase")
        ```
    """
    client = RecordingClient()
    yield client
    client.close()
