"""The benchmark's FastAPI app, served by uvicorn (``--workers 2``): each worker builds its tracker in the lifespan
(PromptStream's is ``AsyncPromptStreamClient``) and closes it at shutdown. Same routes as flask_app.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import tracking
from fastapi import FastAPI, Response


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    tracking.begin_worker(asynchronous=True)
    yield
    await tracking.aend_worker()


app = FastAPI(lifespan=lifespan)


@app.get("/answer")
async def answer() -> dict[str, Any]:
    return tracking.handle()


@app.get("/_bench/health")
async def health() -> dict[str, Any]:
    return {"pid": tracking.meter.pid}


@app.get("/_bench/counters")
async def counters() -> Response:
    # json.dumps directly: FastAPI's encoder walks every one of the per-request samples in Python
    return Response(json.dumps(tracking.meter.report()), media_type="application/json")
