"""Celery: one client per worker process, created after the fork, flushed when a task ends.

    PROMPTSTREAM_API_KEY=... GREETING_PROMPT_ID=... celery -A celery_app worker --concurrency 4

The prefork pool's children are forked from the main worker process and may leave through ``os._exit``, which
skips exit hooks. So each child creates its client in ``worker_process_init`` (after the fork) and closes it in
``worker_process_shutdown``. Flushing when a task ends bounds what a killed worker (OOM, a deploy's SIGKILL) can
leave behind to nothing; it costs the task about one round trip to the server (the flush waits until the spool's
pending events are acknowledged).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, worker_process_init, worker_process_shutdown

from promptstream import PromptStreamClient

app = Celery("greetings", broker=os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0"))
app.config_from_envvar("CELERY_CONFIG_MODULE", silent=True)  # the test points this at a filesystem broker

client: PromptStreamClient | None = None  # one per worker process, set after the fork


@worker_process_init.connect
def start_promptstream(**_: Any) -> None:
    global client
    client = PromptStreamClient()


@worker_process_shutdown.connect
def stop_promptstream(**_: Any) -> None:
    if client is not None:
        client.close(timeout=5.0)


@task_postrun.connect
def flush_promptstream(**_: Any) -> None:
    if client is not None:
        client.flush(timeout=2.0)  # bounded: whatever is slower stays in the spool and goes out later


@app.task
def greet_and_track(user_id: str) -> str:
    assert client is not None, "runs in a worker process"
    run = client.run_prompt(os.environ["GREETING_PROMPT_ID"], {"name": user_id}, external_user_id=user_id)
    return client.track_engagement(run.run_id, run.experiment_id, engagement_score=float(len(run.output)))
