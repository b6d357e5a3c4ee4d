"""Flask: an app factory that gives each process one PromptStreamClient, kept in ``app.extensions``.

    PROMPTSTREAM_API_KEY=... GREETING_PROMPT_ID=... flask --app flask_app:create_app run

The client's exit hook delivers what is left when the process ends; with gunicorn, see gunicorn_app.py for
creating the client before the fork (``--preload``).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, current_app, request

from promptstream import PromptStreamClient


def create_app(client: PromptStreamClient | None = None) -> Flask:
    app = Flask(__name__)
    app.extensions["promptstream"] = client or PromptStreamClient()

    @app.post("/greet/<user_id>")
    def greet(user_id: str) -> dict[str, Any]:
        promptstream: PromptStreamClient = current_app.extensions["promptstream"]
        run = promptstream.run_prompt(os.environ["GREETING_PROMPT_ID"], {"name": user_id}, external_user_id=user_id)
        return {"run_id": run.run_id, "experiment_id": run.experiment_id, "text": run.output}

    @app.post("/runs/<run_id>/converted")
    def converted(run_id: str) -> dict[str, Any]:
        promptstream: PromptStreamClient = current_app.extensions["promptstream"]
        plan = (request.get_json(silent=True) or {}).get("plan", "free")
        event_id = promptstream.track_conversion(
            run_id, request.args["experiment_id"], label="signup", metadata={"plan": plan}
        )
        return {"event_id": event_id}

    return app
