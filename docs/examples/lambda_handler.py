"""AWS-Lambda-style handlers: the runtime may freeze the process the moment the handler returns, so flush before
returning, keep the client at module level (reused by warm invocations), and spool to /tmp, the one writable
directory.
"""

from __future__ import annotations

import os
from typing import Any

from promptstream import PromptStreamClient

# /tmp: the only writable directory in Lambda, private to the execution environment
client = PromptStreamClient(spool_dir=os.environ.get("PROMPTSTREAM_SPOOL_DIR", "/tmp/promptstream"))  # noqa: S108


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    user = event["user_id"]
    run = client.run_prompt(os.environ["GREETING_PROMPT_ID"], {"name": user}, external_user_id=user)
    if event.get("clicked"):
        client.track_click(run.run_id, run.experiment_id, label="cta", external_user_id=user)
    # Bounded: if the server is slow the events stay in /tmp's spool and go out with a later invocation.
    delivered = client.flush(timeout=2.0)
    return {"run_id": run.run_id, "text": run.output, "delivered": delivered}
