"""FastAPI: the lifespan creates one AsyncPromptStreamClient per worker process and closes it (flushing) at shutdown.

    PROMPTSTREAM_API_KEY=... PROMPTSTREAM_BASE_URL=... GREETING_PROMPT_ID=... uvicorn fastapi_app:app --workers 4

Each uvicorn worker is its own process with its own client; they share one spool file safely.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from promptstream import AsyncPromptStreamClient


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.promptstream = AsyncPromptStreamClient()  # key and server from the environment
    yield
    await app.state.promptstream.aclose()  # delivers what is left, off the event loop


app = FastAPI(lifespan=lifespan)


@app.post("/greet/{user_id}")
async def greet(user_id: str, request: Request) -> dict[str, str]:
    client: AsyncPromptStreamClient = request.app.state.promptstream
    run = await client.run_prompt(os.environ["GREETING_PROMPT_ID"], {"name": user_id}, external_user_id=user_id)
    return {"run_id": run.run_id, "experiment_id": run.experiment_id, "text": run.output}


@app.post("/runs/{run_id}/clicked")
async def clicked(run_id: str, experiment_id: str, request: Request) -> dict[str, str]:
    client: AsyncPromptStreamClient = request.app.state.promptstream
    return {"event_id": client.track_click(run_id, experiment_id, label="cta")}  # no await: it only enqueues
