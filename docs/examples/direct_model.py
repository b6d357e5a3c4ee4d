"""Calling your model directly (no run_prompt, no framework): assign(...) gives the user's variant and its template,
you render it and call your model, and track_* against the assignment count in the experiment's results.

    PROMPTSTREAM_API_KEY=... GREETING_PROMPT_ID=... python direct_model.py ada
"""

from __future__ import annotations

import os
import sys

from promptstream import Assignment, PromptStreamClient

PROMPT_ID = os.environ["GREETING_PROMPT_ID"]
client = PromptStreamClient()  # PROMPTSTREAM_API_KEY and PROMPTSTREAM_BASE_URL from the environment


def my_model(prompt: str) -> str:
    """Your model call (an HTTP API, a local model, ...); here it echoes."""
    return f"[model] {prompt}"


def greet(user_id: str, name: str) -> tuple[Assignment, str]:
    assignment = client.assign(PROMPT_ID, external_user_id=user_id)  # sticky: the variant run_prompt would serve
    return assignment, my_model(assignment.render({"name": name}))


def converted(assignment: Assignment) -> None:
    client.track_conversion(assignment.run_id, assignment.experiment_id)


if __name__ == "__main__":
    assignment, reply = greet(sys.argv[1] if len(sys.argv) > 1 else "ada", "Ada")
    print(f"{assignment.variant_assigned}: {reply}")
    converted(assignment)
    client.close()
