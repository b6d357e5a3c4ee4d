"""The benchmark's Flask app, served by gunicorn (sync workers, ``--preload``; see gunicorn_conf.py). Routes:
``GET /answer`` builds a ~2 KB JSON answer and tracks 3 events (tracking.handle); ``GET /_bench/health`` answers the
serving worker's pid; ``GET /_bench/counters`` that worker's meter (tracking.Meter.report).
"""

from __future__ import annotations

import json
from typing import Any

import tracking
from flask import Flask, Response

tracking.begin_in_master()
app = Flask(__name__)


@app.get("/answer")
def answer() -> dict[str, Any]:
    return tracking.handle()


@app.get("/_bench/health")
def health() -> dict[str, Any]:
    return {"pid": tracking.meter.pid}


@app.get("/_bench/counters")
def counters() -> Response:
    return Response(json.dumps(tracking.meter.report()), mimetype="application/json")
