"""``client.assign(...)``: the server's sticky assignment without running a model (``POST /v1/assignments``,
docs/protocol.md), for apps that call their model themselves, a framework callback included. The server records
the assignment as a run without output, so ``track_*`` against its ``run_id`` count in the experiment's results
exactly like a ``run_prompt`` run's events."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from ._errors import InvalidArgumentError
from ._ids import new_idempotency_key
from ._models import ResponseInfo
from ._validation import check_id, check_idempotency_key

__all__ = ["AssignRequest", "Assignment", "assign_request", "decode_assignment"]

# The protocol's placeholder syntax (docs/protocol.md, "Templates"): {{ name }}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_encode = msgspec.json.Encoder().encode


class AssignRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``POST /v1/assignments``."""

    prompt_id: str
    external_user_id: str | None = None


class Assignment(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """The result of ``client.assign``: which prompt version serves this user, recorded by the server as a run
    without output. Render ``template`` (``render(inputs)``), call your model, then ``track_*`` with ``run_id``
    and ``experiment_id``.

    Example:
        ```python
        assignment = client.assign("PROMPT_ID", external_user_id="user_123")
        prompt_text = assignment.render({"text": "Hi"})  # send it to your model
        client.track_conversion(assignment.run_id, assignment.experiment_id)
        ```
    """

    run_id: str
    """The run the server recorded: pass it to every ``track_*`` call about what your model produced."""
    experiment_id: str
    """The prompt's live experiment the user was assigned in."""
    variant_assigned: str
    """The variant, e.g. ``"v2"``: sticky per ``external_user_id`` (the same one ``run_prompt`` would serve)."""
    prompt_id: str
    """The prompt assigned from."""
    version: int
    """The prompt version the variant serves."""
    template: str | None = None
    """That version's template, for you to render; None from a server that does not send it."""
    external_user_id: str | None = None
    """The user assigned, as the server stored it (hashed when the client hashes user ids); None without one."""

    def render(self, inputs: Mapping[str, Any]) -> str:
        """``template`` with each ``{{name}}`` replaced by ``inputs[name]`` (strings as they are, other values as
        JSON): the text ``run_prompt`` would have produced with the reference server's offline model.

        Raises ``InvalidArgumentError`` naming ``inputs`` when a placeholder has no input, or when there is no
        template.

        Example:
            ```python
            prompt_text = client.assign("PROMPT_ID").render({"text": "Hi"})
            ```
        """
        if self.template is None:
            raise InvalidArgumentError("inputs", "the server sent no template to render")
        missing = sorted({name for name in _PLACEHOLDER.findall(self.template) if name not in inputs})
        if missing:
            raise InvalidArgumentError("inputs", f"missing template input(s): {', '.join(missing)}")
        return _PLACEHOLDER.sub(lambda m: _text(inputs[m.group(1)]), self.template)

    @property
    def request_id(self) -> str | None:
        """The server's ``x-request-id`` of the call that returned this assignment.

        Example:
            ```python
            print(client.assign("PROMPT_ID").request_id)
            ```
        """
        info = self.response
        return None if info is None else info.request_id

    @property
    def response(self) -> ResponseInfo | None:
        """Status, headers and timing of the HTTP response; None for one built by hand.

        Example:
            ```python
            info = client.assign("PROMPT_ID").response
            ```
        """
        info: ResponseInfo | None = self.__dict__.get("_response")
        return info


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


decode_assignment = msgspec.json.Decoder(Assignment).decode


def assign_request(
    prompt_id: object, external_user_id: str | None, idempotency_key: object
) -> tuple[str, bytes, dict[str, str]]:
    """Path, body and headers of an assignment; ``external_user_id`` already checked (and hashed) by the client."""
    body = _encode(AssignRequest(prompt_id=check_id("prompt_id", prompt_id), external_user_id=external_user_id))
    key = new_idempotency_key() if idempotency_key is None else check_idempotency_key(idempotency_key)
    return "/v1/assignments", body, {"Content-Type": "application/json", "Idempotency-Key": key}
