"""A tiny WSGI app for the gunicorn test: the client is created at import, in the master (--preload), and every
request tracks one event in whichever forked worker serves it, answering with the event id."""

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
