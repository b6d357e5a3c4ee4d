"""gunicorn with --preload: the client is created at import, in the master, before gunicorn forks its workers.
After fork() every worker gets a fresh agent (its own queue, threads, spool connection and HTTP client) and they
share one spool file, so nothing needs a post_fork hook. Every request tracks one event in whichever worker serves
it and answers with the event id.

    RUN=... EXP=... PROMPTSTREAM_API_KEY=... gunicorn --preload --workers 4 gunicorn_app:app

tests/faults/test_gunicorn.py runs exactly this with four workers and checks that every event is stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from promptstream import PromptStreamClient

client = PromptStreamClient()  # before the fork: the gunicorn --preload case
RUN, EXPERIMENT = os.environ["RUN"], os.environ["EXP"]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    event_id = client.track_click(RUN, EXPERIMENT, "page", metadata={"path": environ.get("PATH_INFO", "/")})
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid()))])
    return [event_id.encode()]
