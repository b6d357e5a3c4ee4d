"""The dashboard's accounts: its users and their sign-in sessions, on SQLite or PostgreSQL (migration step 7 in
_sqlite.py and _pg.py). Separate from the API keys: a key is for an application, an account is for a person.

A session is a server-side record, so it can be revoked (sign-out, a password change) and it expires; the browser
holds only a random token, and the table holds only its SHA-256, so a copy of the database signs nobody in. Each
session carries its CSRF token (the synchronizer token every form posts back) and the project it is looking at.

The accounts keep a connection of their own to the store's database (the same file or URL): the storage classes
stay as they are, and this module owns all of its SQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Protocol

from ._sqlite import Transaction, connect
from ._storage import Storage, StoreError

SESSION_COLUMNS = "s.token_hash, s.user_id, u.username, s.csrf_token, s.project_id, s.created_at, s.expires_at"


class Accounts(Protocol):
    """Users and sessions of the dashboard; ``SqliteAccounts`` and ``PgAccounts`` implement it.

    Example:
        ```python
        accounts = open_accounts(store)
        if accounts.user_count() == 0:
            accounts.create_user("admin", hash_password("a long passphrase"))
        ```
    """

    def close(self) -> None: ...

    def user_count(self) -> int: ...

    def create_user(self, username: str, password_hash: str) -> dict[str, Any]: ...

    def user_by_name(self, username: str) -> dict[str, Any] | None: ...

    def set_password(self, user_id: str, password_hash: str) -> None: ...

    def create_session(
        self, user_id: str, token_hash: str, csrf_token: str, project_id: str, expires_at: float
    ) -> None: ...

    def session(self, token_hash: str, now: float) -> dict[str, Any] | None: ...

    def set_session_project(self, token_hash: str, project_id: str) -> None: ...

    def delete_session(self, token_hash: str) -> None: ...

    def delete_user_sessions(self, user_id: str) -> int: ...


def _user(row: Any) -> dict[str, Any]:
    return {"user_id": row[0], "username": row[1], "password_hash": row[2], "created_at": row[3]}


def _session(row: Any) -> dict[str, Any]:
    keys = ("token_hash", "user_id", "username", "csrf_token", "project_id", "created_at", "expires_at")
    return dict(zip(keys, row, strict=True))


class SqliteAccounts:
    """Accounts in the SQLite database at ``path`` (":memory:": a throwaway one of their own).

    Example:
        ```python
        accounts = SqliteAccounts("server.sqlite3")
        ```
    """

    def __init__(self, path: str) -> None:
        self._db = connect(path)
        self._lock = threading.Lock()

    def _transaction(self) -> Transaction:
        return Transaction(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def user_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM dashboard_users").fetchone()[0])

    def create_user(self, username: str, password_hash: str) -> dict[str, Any]:
        user_id, now = str(uuid.uuid4()), time.time()
        with self._lock, self._transaction():
            if self._db.execute("SELECT 1 FROM dashboard_users WHERE username = ?", (username,)).fetchone():
                raise StoreError(409, "user_exists", f"a user named {username!r} already exists")
            self._db.execute("INSERT INTO dashboard_users VALUES (?, ?, ?, ?)", (user_id, username, password_hash, now))
        return {"user_id": user_id, "username": username, "password_hash": password_hash, "created_at": now}

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT user_id, username, password_hash, created_at FROM dashboard_users WHERE username = ?",
                (username,),
            ).fetchone()
        return None if row is None else _user(row)

    def set_password(self, user_id: str, password_hash: str) -> None:
        with self._lock, self._transaction():
            self._db.execute("UPDATE dashboard_users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id))

    def create_session(
        self, user_id: str, token_hash: str, csrf_token: str, project_id: str, expires_at: float
    ) -> None:
        now = time.time()
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now,))
            self._db.execute(
                "INSERT INTO dashboard_sessions VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, user_id, csrf_token, project_id, now, expires_at),
            )

    def session(self, token_hash: str, now: float) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {SESSION_COLUMNS} FROM dashboard_sessions s JOIN dashboard_users u ON u.user_id = s.user_id"
                " WHERE s.token_hash = ? AND s.expires_at > ?",
                (token_hash, now),
            ).fetchone()
        return None if row is None else _session(row)

    def set_session_project(self, token_hash: str, project_id: str) -> None:
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE dashboard_sessions SET project_id = ? WHERE token_hash = ?", (project_id, token_hash)
            )

    def delete_session(self, token_hash: str) -> None:
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,))

    def delete_user_sessions(self, user_id: str) -> int:
        with self._lock, self._transaction():
            return self._db.execute("DELETE FROM dashboard_sessions WHERE user_id = ?", (user_id,)).rowcount


class PgAccounts:
    """Accounts in the PostgreSQL database at ``url`` (a small pool of its own).

    Example:
        ```python
        # doc: no-run: needs a PostgreSQL server
        accounts = PgAccounts("postgresql://promptstream@localhost/promptstream")
        ```
    """

    def __init__(self, url: str) -> None:
        from ._pg import open_pool

        self._pool = open_pool(url, max_size=4)

    def close(self) -> None:
        self._pool.close()

    def user_count(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM dashboard_users").fetchone()
            return int(row[0]) if row else 0

    def create_user(self, username: str, password_hash: str) -> dict[str, Any]:
        user_id, now = str(uuid.uuid4()), time.time()
        with self._pool.connection() as conn:
            inserted = conn.execute(
                "INSERT INTO dashboard_users VALUES (%s, %s, %s, %s) ON CONFLICT (username) DO NOTHING",
                (user_id, username, password_hash, now),
            ).rowcount
        if not inserted:
            raise StoreError(409, "user_exists", f"a user named {username!r} already exists")
        return {"user_id": user_id, "username": username, "password_hash": password_hash, "created_at": now}

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT user_id, username, password_hash, created_at FROM dashboard_users WHERE username = %s",
                (username,),
            ).fetchone()
        return None if row is None else _user(row)

    def set_password(self, user_id: str, password_hash: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("UPDATE dashboard_users SET password_hash = %s WHERE user_id = %s", (password_hash, user_id))

    def create_session(
        self, user_id: str, token_hash: str, csrf_token: str, project_id: str, expires_at: float
    ) -> None:
        now = time.time()
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM dashboard_sessions WHERE expires_at <= %s", (now,))
            conn.execute(
                "INSERT INTO dashboard_sessions VALUES (%s, %s, %s, %s, %s, %s)",
                (token_hash, user_id, csrf_token, project_id, now, expires_at),
            )

    def session(self, token_hash: str, now: float) -> dict[str, Any] | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM dashboard_sessions s JOIN dashboard_users u ON u.user_id = s.user_id"
                " WHERE s.token_hash = %s AND s.expires_at > %s",
                (token_hash, now),
            ).fetchone()
        return None if row is None else _session(row)

    def set_session_project(self, token_hash: str, project_id: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE dashboard_sessions SET project_id = %s WHERE token_hash = %s", (project_id, token_hash)
            )

    def delete_session(self, token_hash: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM dashboard_sessions WHERE token_hash = %s", (token_hash,))

    def delete_user_sessions(self, user_id: str) -> int:
        with self._pool.connection() as conn:
            return conn.execute("DELETE FROM dashboard_sessions WHERE user_id = %s", (user_id,)).rowcount


def open_accounts(store: Storage) -> Accounts:
    """The accounts kept in ``store``'s database: PostgreSQL for a ``PgStore``, else SQLite at its path.

    Example:
        ```python
        accounts = open_accounts(Store("server.sqlite3"))
        ```
    """
    url = getattr(store, "url", None)
    if isinstance(url, str) and url.startswith(("postgresql:", "postgres:")):
        return PgAccounts(url)
    return SqliteAccounts(str(getattr(store, "path", ":memory:")))
