"""The contenders, each behind the same three calls, all sending the same event: a user id (the same one unless the
caller names another, as the web-app benchmark does), two ids, a label and a 3-field metadata dict. Default settings
everywhere except the host (and, for PromptStream, a private spool dir)."""

from __future__ import annotations

import collections
import importlib
import os
from typing import Any, Protocol

USER_ID = "user-1234"
RUN_ID = "0193a0b4-7c1e-7d2a-9a3b-6f1e2d3c4b5a"
EXPERIMENT_ID = "exp-checkout-copy"
KEY = "bench-key"


class Contender(Protocol):
    def track(self, i: int, user_id: str = USER_ID) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class Floor:
    """What any tracker must at least do: build the event and append it to a deque."""

    def __init__(self, url: str, spool_dir: str) -> None:
        self.sink: collections.deque[dict[str, Any]] = collections.deque()

    def track(self, i: int, user_id: str = USER_ID) -> None:
        self.sink.append(
            {
                "prompt_run_id": RUN_ID,
                "experiment_id": EXPERIMENT_ID,
                "label": "cta",
                "external_user_id": user_id,
                "metadata": {"position": 1, "variant": "b", "i": i},
            }
        )

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class PromptStream:
    def __init__(self, url: str, spool_dir: str) -> None:
        from promptstream import PromptStreamClient

        self.client = PromptStreamClient(KEY, base_url=url, spool_dir=spool_dir)
        self._track = self.client.track_click
        self.run_id, self.experiment_id = RUN_ID, EXPERIMENT_ID
        prompt_id = os.environ.get("BENCH_PROMPT_ID")
        if prompt_id:  # the reference server checks that events belong to a real run
            run = self.client.run_prompt(prompt_id, {"name": "bench"}, external_user_id=USER_ID)
            self.run_id, self.experiment_id = run.run_id, run.experiment_id

    def track(self, i: int, user_id: str = USER_ID) -> None:
        self._track(self.run_id, self.experiment_id, "cta", user_id, metadata={"position": 1, "variant": "b", "i": i})

    def flush(self) -> None:
        self.client.flush(timeout=600)

    def close(self) -> None:
        self.client.close()


class Segment:
    def __init__(self, url: str, spool_dir: str) -> None:
        from segment.analytics import Client

        self.client = Client(KEY, host=url)
        self._track = self.client.track

    def track(self, i: int, user_id: str = USER_ID) -> None:
        self._track(user_id, "click", {"position": 1, "variant": "b", "i": i})

    def flush(self) -> None:
        self.client.flush()

    def close(self) -> None:
        self.client.shutdown()


class PostHog:
    def __init__(self, url: str, spool_dir: str) -> None:
        from posthog import Posthog

        self.client = Posthog(KEY, host=url)
        self._capture = self.client.capture

    def track(self, i: int, user_id: str = USER_ID) -> None:
        self._capture("click", distinct_id=user_id, properties={"position": 1, "variant": "b", "i": i})

    def flush(self) -> None:
        self.client.flush()

    def close(self) -> None:
        self.client.shutdown()


CONTENDERS: dict[str, type[Contender]] = {
    "floor": Floor,  # type: ignore[dict-item]
    "promptstream": PromptStream,  # type: ignore[dict-item]
    "segment": Segment,  # type: ignore[dict-item]
    "posthog": PostHog,  # type: ignore[dict-item]
}
IMPORT_NAMES = {"promptstream": "promptstream", "segment": "segment.analytics", "posthog": "posthog", "httpx": "httpx"}


def version_of(name: str) -> str:
    module = importlib.import_module({"segment": "segment.analytics.version"}.get(name, name))
    return str(getattr(module, "__version__", getattr(module, "VERSION", "?")))
