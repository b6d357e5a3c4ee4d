"""gunicorn's hooks for the benchmark's Flask app: each worker zeroes its meter and builds the trackers that cannot
cross a fork; on a graceful exit it closes its tracker (flushing what is left)."""

from __future__ import annotations

from typing import Any

import tracking


def post_fork(server: Any, worker: Any) -> None:
    tracking.begin_worker()


def worker_exit(server: Any, worker: Any) -> None:
    tracking.end_worker()
