"""Projects, their API keys, and the reasons of their rejected events, on both backends at once: plain SQL with ``?``
marks, run by ``Store`` on its SQLite connection and by ``PgStore`` through ``_pg.PgSql``. ``ProjectMethods`` holds
the Storage methods over it, shared by both stores (each says how it reads and writes: ``_reading``/``_writing``).

A project owns its prompts, experiments, runs and events; every key belongs to one project and authenticates as it.
"""

from __future__ import annotations

import hmac
import json
import time
import unicodedata
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ._keys import LAST_USED_RESOLUTION, new_key, secret_hash
from ._rules import OFFLINE_EXPERIMENT_ID, experiment_not_found
from ._storage import StoreError
from ._wire import Rejection

MAX_REJECTIONS_KEPT = 1000  # per project: the newest; older ones are pruned as new ones arrive
MAX_RECENT = 1000  # the most rows recent_events / recent_rejections answer at once
MAX_REASON_LENGTH = 1000
MAX_NAME_LENGTH = 256

_KEY_COLUMNS = "id, project_id, name, prefix, created_at, last_used_at, revoked_at"
_EVENT_COLUMNS = (
    "event_id, type, prompt_run_id, experiment_id, timestamp, external_user_id, label, source, metadata, thumbs_up,"
    " rating, engagement_score, received_at"
)


class Sql(Protocol):
    """What the functions here need of a connection: sqlite3's ``execute`` and ``executemany`` with ``?`` marks."""

    def execute(self, sql: str, parameters: Any = (), /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise StoreError(422, "invalid_request", f"{what} must be 1 to {MAX_NAME_LENGTH} characters, not blank")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise StoreError(422, "invalid_request", f"{what} must not contain control characters or lone surrogates")


def _project_view(row: Sequence[Any]) -> dict[str, Any]:
    return {"project_id": row[0], "name": row[1], "created_at": row[2]}


def _key_view(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "key_id": row[0],
        "project_id": row[1],
        "name": row[2],
        "prefix": row[3],
        "created_at": row[4],
        "last_used_at": row[5],
        "revoked_at": row[6],
    }


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECENT:
        raise StoreError(422, "invalid_request", f"limit must be an integer from 1 to {MAX_RECENT}")
    return limit


def create_project(db: Sql, name: str, now: float) -> dict[str, Any]:
    _check_name("a project's name", name)
    if db.execute("SELECT 1 FROM projects WHERE name = ?", (name,)).fetchone() is not None:
        raise StoreError(409, "project_exists", f"a project named {name!r} exists already")
    project_id = str(uuid.uuid4())
    db.execute("INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)", (project_id, name, now))
    return {"project_id": project_id, "name": name, "created_at": now}


def get_project(db: Sql, project_id: str) -> dict[str, Any]:
    row = db.execute("SELECT id, name, created_at FROM projects WHERE id = ?", (project_id,)).fetchone()
    if row is None:
        raise StoreError(404, "project_not_found", f"no project with id {project_id!r}")
    return _project_view(row)


def list_projects(db: Sql) -> list[dict[str, Any]]:
    return [
        _project_view(row) for row in db.execute("SELECT id, name, created_at FROM projects ORDER BY created_at, id")
    ]


def create_api_key(db: Sql, project_id: str, name: str, now: float) -> tuple[dict[str, Any], str]:
    get_project(db, project_id)
    _check_name("a key's name", name)
    key_id, prefix, secret = new_key()
    db.execute(
        "INSERT INTO api_keys (id, project_id, name, prefix, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (key_id, project_id, name, prefix, secret_hash(secret), now),
    )
    return _key_view((key_id, project_id, name, prefix, now, None, None)), secret


def list_api_keys(db: Sql, project_id: str) -> list[dict[str, Any]]:
    get_project(db, project_id)
    query = f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE project_id = ? ORDER BY created_at, id"
    return [_key_view(row) for row in db.execute(query, (project_id,))]


def revoke_api_key(db: Sql, project_id: str, key_id: str, now: float) -> dict[str, Any]:
    """Revoke a key of the project (idempotent: a revoked key keeps its first revocation time); 404 for a key of
    another project, as for one that does not exist."""
    query = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND project_id = ? AND revoked_at IS NULL"
    db.execute(query, (now, key_id, project_id))
    row = db.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ? AND project_id = ?", (key_id, project_id)
    ).fetchone()
    if row is None:
        raise StoreError(404, "key_not_found", f"no API key with id {key_id!r}")
    return _key_view(row)


def project_for_key(db: Sql, secret: str, now: float) -> str | None:
    """The project of a live key, or None. Reads the database every time, so a revocation (by any server instance
    or the CLI) takes effect at the next request; writes last_used_at only when it is older than a minute."""
    digest = secret_hash(secret)
    row = db.execute(
        "SELECT id, project_id, secret_hash, last_used_at, revoked_at FROM api_keys WHERE secret_hash = ?", (digest,)
    ).fetchone()
    if row is None or not hmac.compare_digest(str(row[2]), digest) or row[4] is not None:
        return None
    stale = now - LAST_USED_RESOLUTION
    if row[3] is None or float(row[3]) <= stale:
        db.execute(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
            (now, row[0], stale),
        )
    return str(row[1])


def keep_rejections(db: Sql, project_id: str, rejected: Sequence[Rejection], key: str | None, now: float) -> None:
    """Keep the reasons of a batch's rejected events, then prune the project's oldest beyond MAX_REJECTIONS_KEPT."""
    if not rejected:
        return
    db.executemany(
        "INSERT INTO rejections (project_id, event_id, reason, batch_index, idempotency_key, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(project_id, r.event_id, r.reason[:MAX_REASON_LENGTH], r.index, key, now) for r in rejected],
    )
    db.execute(
        "DELETE FROM rejections WHERE project_id = ? AND seq <= (SELECT seq FROM rejections WHERE project_id = ?"
        " ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (project_id, project_id, MAX_REJECTIONS_KEPT),
    )


def recent_rejections(db: Sql, project_id: str, limit: int) -> list[dict[str, Any]]:
    get_project(db, project_id)
    rows = db.execute(
        "SELECT event_id, reason, batch_index, idempotency_key, received_at FROM rejections WHERE project_id = ?"
        " ORDER BY seq DESC LIMIT ?",
        (project_id, _check_limit(limit)),
    )
    names = ("event_id", "reason", "index", "idempotency_key", "received_at")
    return [dict(zip(names, row, strict=True)) for row in rows]


def recent_events(db: Sql, project_id: str, experiment_id: str, limit: int) -> list[dict[str, Any]]:
    if experiment_id != OFFLINE_EXPERIMENT_ID:
        query = "SELECT 1 FROM experiments WHERE id = ? AND project_id = ?"
        if db.execute(query, (experiment_id, project_id)).fetchone() is None:
            raise experiment_not_found(experiment_id)
    rows = db.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE experiment_id = ? AND project_id = ?"
        " ORDER BY received_at DESC, event_id DESC LIMIT ?",
        (experiment_id, project_id, _check_limit(limit)),
    )
    names = [name.strip() for name in _EVENT_COLUMNS.split(",")]
    events = [dict(zip(names, row, strict=True)) for row in rows]
    for event in events:
        event["metadata"] = None if event["metadata"] is None else json.loads(event["metadata"])
        event["thumbs_up"] = None if event["thumbs_up"] is None else bool(event["thumbs_up"])
    return events


class ProjectMethods:
    """The Storage methods of projects, keys and the events view, for any store that says how it reads and writes
    (``Store``, ``PgStore``)."""

    def _reading(self) -> AbstractContextManager[Sql]:
        raise NotImplementedError

    def _writing(self) -> AbstractContextManager[Sql]:
        raise NotImplementedError

    def create_project(self, name: str) -> dict[str, Any]:
        """A new project (its name unique; 409 ``project_exists`` otherwise): {"project_id", "name", "created_at"}.

        Example:
            ```python
            project = store.create_project("checkout")
            ```
        """
        with self._writing() as db:
            return create_project(db, name, time.time())

    def get_project(self, project_id: str) -> dict[str, Any]:
        """A project; 404 ``project_not_found``.

        Example:
            ```python
            print(store.get_project("default")["name"])
            ```
        """
        with self._reading() as db:
            return get_project(db, project_id)

    def list_projects(self) -> list[dict[str, Any]]:
        """Every project, oldest first (the "default" project is always there).

        Example:
            ```python
            names = [project["name"] for project in store.list_projects()]
            ```
        """
        with self._reading() as db:
            return list_projects(db)

    def create_api_key(self, project_id: str, name: str) -> tuple[dict[str, Any], str]:
        """A new key of the project: its record and the secret key, which is returned this once and never stored.

        Example:
            ```python
            record, secret = store.create_api_key("default", "ci")
            print(record["prefix"])  # ps_live_..., how lists show the key
            ```
        """
        with self._writing() as db:
            return create_api_key(db, project_id, name, time.time())

    def list_api_keys(self, project_id: str) -> list[dict[str, Any]]:
        """The project's keys (never their secrets), oldest first, revoked ones included.

        Example:
            ```python
            live = [key for key in store.list_api_keys("default") if key["revoked_at"] is None]
            ```
        """
        with self._reading() as db:
            return list_api_keys(db, project_id)

    def revoke_api_key(self, project_id: str, key_id: str) -> dict[str, Any]:
        """Revoke a key: the next request with it gets 401, on every server instance. Idempotent.

        Example:
            ```python
            record, secret = store.create_api_key("default", "temporary")
            store.revoke_api_key("default", record["key_id"])
            assert store.project_for_key(secret) is None
            ```
        """
        with self._writing() as db:
            return revoke_api_key(db, project_id, key_id, time.time())

    def project_for_key(self, secret: str) -> str | None:
        """The project a live key belongs to, or None for an unknown or revoked key (the app's authentication).

        Example:
            ```python
            _, secret = store.create_api_key("default", "ci")
            assert store.project_for_key(secret) == "default"
            ```
        """
        with self._reading() as db:
            return project_for_key(db, secret, time.time())

    def recent_events(self, project_id: str, experiment_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The experiment's newest stored events, newest first, as stored (the dashboard's events view).

        Example:
            ```python
            for event in store.recent_events("default", experiment_id, limit=20):
                print(event["type"], event["received_at"])
            ```
        """
        with self._reading() as db:
            return recent_events(db, project_id, experiment_id, limit)

    def recent_rejections(self, project_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The project's newest rejected events with the server's reasons, newest first: {"event_id", "reason",
        "index" (in its batch), "idempotency_key" (of its batch), "received_at"}.

        Example:
            ```python
            reasons = [rejection["reason"] for rejection in store.recent_rejections("default")]
            ```
        """
        with self._reading() as db:
            return recent_rejections(db, project_id, limit)
