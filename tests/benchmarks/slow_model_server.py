"""A reference server whose model takes a fixed time per call, for run_latency.py: ``python slow_model_server.py
PORT DB MODEL_MS KEY``. Uses only what every release since the first exports (``Store``, ``create_app``) and, for a
``postgresql://`` DB, ``PgStore``; the model sleeps (releasing the GIL, as a network call to a model does) and
answers the template."""

from __future__ import annotations

import sys
import time
from typing import Any

import uvicorn

from promptstream.server import Store, create_app


class SlowModel:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def complete(self, template: str, inputs: dict[str, Any]) -> str:
        time.sleep(self.seconds)
        return template


def main() -> None:
    port, db, model_ms, key = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
    model = SlowModel(model_ms / 1000)
    if db.startswith("postgresql://"):
        from promptstream.server._pgstore import PgStore

        store: Any = PgStore(db, provider=model)
    else:
        store = Store(db, provider=model)
    uvicorn.run(create_app(store, [key]), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
