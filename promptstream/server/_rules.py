"""The rules of the reference server's data, written once for both storage backends (``Store`` on SQLite and
``PgStore`` on PostgreSQL): what a valid prompt and experiment are, which variant a run gets, what a run's answer
holds, how a batch's events are sorted into new, duplicate and rejected, and when an idempotency claim is abandoned.
The stores keep only what differs: their SQL and how they lock."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from ._assignment import Variant, assign_bucket, pick_variant
from ._limits import MAX_OUTPUT_BYTES, weights_problem
from ._storage import StoreError
from ._templates import rendered_size, template_inputs
from ._wire import EventBody, Rejection, VariantSpec

DEFAULT_EXPERIMENT_NAME = "default"
DEFAULT_VARIANTS: list[dict[str, Any]] = [{"version": None, "weight": 1.0}]  # the default experiment: latest version
OFFLINE_EXPERIMENT_ID = "offline"  # docs/protocol.md, "Offline fallback runs"
# How long a request waits for a concurrent request with the same Idempotency-Key (a run whose model is slow) before
# it answers 409 rather than running the model a second time; a claim older than this was abandoned (its server died).
IN_FLIGHT_WAIT = 300.0


def prompt_not_found(prompt_id: str) -> StoreError:
    return StoreError(404, "prompt_not_found", f"no prompt with id {prompt_id!r}")


def experiment_not_found(experiment_id: str) -> StoreError:
    return StoreError(404, "experiment_not_found", f"no experiment with id {experiment_id!r}")


def check_prompt_name(name: str) -> None:
    if not name.strip():
        raise StoreError(422, "invalid_request", "name must not be empty")


def check_variants(variants: Sequence[VariantSpec], experiment_id: str | None) -> list[dict[str, Any]]:
    """The variants of a new experiment as stored, once their weights and versions are valid (versions are checked
    against the prompt by ``check_versions``)."""
    if experiment_id == OFFLINE_EXPERIMENT_ID:
        raise StoreError(422, "invalid_request", "the experiment id 'offline' is reserved for fallback runs")
    problem = weights_problem([spec.weight for spec in variants])
    if problem is not None:
        raise StoreError(422, "invalid_request", problem)
    if len({spec.version for spec in variants}) != len(variants):
        raise StoreError(422, "invalid_request", "each version may appear once among the variants")
    return [{"version": spec.version, "weight": spec.weight} for spec in variants]


def check_versions(variants: Sequence[VariantSpec], latest: int) -> None:
    for spec in variants:
        if not 1 <= spec.version <= latest:
            raise StoreError(422, "invalid_request", f"prompt has no version {spec.version}")


def prompt_view(row: Sequence[Any], versions: Iterable[Sequence[Any]], live_experiment_id: str) -> dict[str, Any]:
    """A prompt as the API shows it, from (id, name, created_at) and its (version, template, inputs JSON) rows."""
    shown = [{"version": v, "template": t, "inputs": json.loads(i)} for v, t, i in versions]
    return {
        "prompt_id": row[0],
        "name": row[1],
        "latest_version": shown[-1]["version"],
        "versions": shown,
        "experiment_id": live_experiment_id,
        "created_at": row[2],
    }


EXPERIMENT_COLUMNS = "id, prompt_id, name, variants, is_default, created_at, ended_at"


def experiment_view(row: Sequence[Any]) -> dict[str, Any]:
    """An experiment as the API shows it, from a row of ``EXPERIMENT_COLUMNS``."""
    return {
        "experiment_id": row[0],
        "prompt_id": row[1],
        "name": row[2],
        "variants": json.loads(row[3]),
        "is_default": bool(row[4]),
        "created_at": row[5],
        "ended_at": row[6],
        "active": row[6] is None,
    }


def variants_of(stored: str) -> list[Variant]:
    return [Variant(v["version"], v["weight"]) for v in json.loads(stored)]


def choose_variant(
    experiment_id: str, stored_variants: str, external_user_id: str | None, rng: random.Random
) -> Variant:
    """The variant a run gets: sticky per user (a hash of the experiment and the user), random without a user."""
    position = assign_bucket(experiment_id, external_user_id) if external_user_id is not None else rng.random()
    try:
        return pick_variant(variants_of(stored_variants), position)
    except ValueError as exc:  # only a database written by hand or by another tool holds such weights
        raise StoreError(409, "experiment_misconfigured", f"the live experiment cannot assign: {exc}") from None


def check_inputs(template: str, inputs: dict[str, Any]) -> None:
    """Before the model is called: every placeholder has an input, and the rendered prompt fits the output cap."""
    missing = [name for name in template_inputs(template) if name not in inputs]
    if missing:
        raise StoreError(422, "missing_input", f"missing template input(s): {', '.join(missing)}")
    size = rendered_size(template, inputs)
    if size > MAX_OUTPUT_BYTES:
        raise StoreError(
            422, "output_too_large", f"the rendered prompt would be {size} bytes, more than {MAX_OUTPUT_BYTES}"
        )


def check_output(output: object) -> str:
    """The model's answer, once it is a str within the output cap."""
    if not isinstance(output, str):
        raise TypeError(f"the model provider returned {type(output).__name__}, not str")
    size = len(output.encode("utf-8", "surrogatepass"))
    if size > MAX_OUTPUT_BYTES:
        raise StoreError(422, "output_too_large", f"the output is {size} bytes, more than {MAX_OUTPUT_BYTES}")
    return output


def is_offline_run(prompt_run_id: str, experiment_id: str) -> bool:
    """A client-made fallback run (docs/protocol.md, "Offline fallback runs"): ``offline:`` and a UUID, in the
    ``offline`` experiment. No experiment has that id, so its events are in no experiment's results."""
    prefix = "offline:"
    if experiment_id != OFFLINE_EXPERIMENT_ID or not prompt_run_id.startswith(prefix):
        return False
    try:
        uuid.UUID(prompt_run_id[len(prefix) :])
    except ValueError:
        return False
    return True


def sort_events(
    decoded: Sequence[tuple[int, EventBody]], runs: dict[str, str], stored: set[str], rejected: list[Rejection]
) -> tuple[list[EventBody], int]:
    """The events of a batch that are new (each once), and how many are duplicates (of ``stored`` event ids or of an
    earlier event of the batch); appends to ``rejected`` those whose run is unknown in the project (``runs``: run id
    to experiment id) or in another experiment."""
    fresh: list[EventBody] = []
    seen: set[str] = set()
    duplicates = 0
    for index, event in decoded:
        run_experiment = runs.get(event.prompt_run_id)
        if run_experiment is None and is_offline_run(event.prompt_run_id, event.experiment_id):
            run_experiment = event.experiment_id  # stored as an offline event: in no experiment's results
        if run_experiment is None:
            rejected.append(Rejection(index, event.event_id, "unknown prompt_run_id"))
        elif run_experiment != event.experiment_id:
            rejected.append(Rejection(index, event.event_id, "experiment_id does not match the run's"))
        elif event.event_id in stored or event.event_id in seen:
            duplicates += 1
        else:
            seen.add(event.event_id)
            fresh.append(event)
    rejected.sort(key=lambda r: r.index)
    return fresh, duplicates


def run_answer(run_id: str, experiment_id: str, prompt_id: str, version: int, output: str) -> dict[str, Any]:
    """The body of a run's response (docs/protocol.md); the run is stored with the same variant."""
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "variant_assigned": f"v{version}",
        "output": output,
        "prompt_id": prompt_id,
        "version": version,
    }


# The events table's columns, in the order ``event_row`` gives their values.
EVENT_COLUMNS = (
    "event_id, type, prompt_run_id, experiment_id, timestamp, external_user_id, label, source, metadata, thumbs_up,"
    " rating, engagement_score, received_at, project_id, trace_id, span_id"
)


def event_row(project_id: str, event: EventBody, now: float) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.type,
        event.prompt_run_id,
        event.experiment_id,
        event.timestamp,
        event.external_user_id,
        event.label,
        event.source,
        None if event.metadata is None else json.dumps(event.metadata),
        None if event.thumbs_up is None else int(event.thumbs_up),
        event.rating,
        event.engagement_score,
        now,
        project_id,
        event.trace_id,
        event.span_id,
    )


def stored_answer(row: Sequence[Any] | None, request_hash: str) -> tuple[int, bytes] | None:
    """The (status, body) kept for an Idempotency-Key, from its (request_hash, status, response) row (status 0, no
    body: a run still running on PostgreSQL); 422 when the key was used for another body."""
    if row is None:
        return None
    if row[0] != request_hash:
        raise StoreError(
            422, "idempotency_key_reused", "this Idempotency-Key was already used with a different request body"
        )
    return int(row[1]), b"" if row[2] is None else bytes(row[2])
