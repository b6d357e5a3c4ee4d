"""Which database ``--db`` / PROMPTSTREAM_SERVER_DB names: a PostgreSQL URL, a SQLite URL, or a plain SQLite path.

A URL is never taken for a path: ``postgresql://...`` once silently became a folder named ``postgresql:`` holding a
SQLite file. Anything that looks like ``scheme:`` (two or more letters, so ``C:\\data`` stays a Windows path) is read
as a URL, and a scheme we do not serve is a ``ValueError`` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._pricing import Prices
from ._storage import Storage
from ._templates import ModelProvider

ENV_SERVER_DB = "PROMPTSTREAM_SERVER_DB"
POSTGRES_SCHEMES = ("postgresql", "postgres")
# PostgreSQL connections each server process keeps at most (docs/scaling.md, "Connection pools"): the worker threads
# that reach the database at once are bounded by this, and workers x instances x this must stay below the
# database's max_connections.
DEFAULT_POOL_SIZE = 16
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")


@dataclass(frozen=True)
class Database:
    """A parsed ``--db``: ``kind`` is "sqlite" (``target`` a file path or ":memory:") or "postgresql" (``target``
    the URL as given, for the driver).

    Example:
        ```python
        database = Database("sqlite", "server.sqlite3")
        print(database.kind, database.target)
        ```
    """

    kind: str
    target: str

    def describe(self) -> str:
        """What the banner shows: the path, or the URL without its password.

        Example:
            ```python
            print(parse_database("postgresql://app:secret@db/ps").describe())  # postgresql://app:***@db/ps
            ```
        """
        if self.kind == "sqlite":
            return self.target
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", self.target)


def parse_database(value: str) -> Database:
    """Read a ``--db`` value. Raises ValueError (one line, for the CLI) for an empty value or an unknown scheme.

    Example:
        ```python
        print(parse_database("postgresql://app@db.internal/promptstream").kind)  # postgresql
        print(parse_database("sqlite:////var/lib/promptstream.sqlite3").target)  # /var/lib/promptstream.sqlite3
        print(parse_database("server.sqlite3").kind)  # sqlite
        ```
    """
    if not value or not value.strip():
        raise ValueError("--db must not be empty")
    match = _SCHEME.match(value)
    if match is None:
        return Database("sqlite", value)
    scheme = match.group(1).lower()
    if scheme in POSTGRES_SCHEMES:
        if not value[match.end() :].startswith("//"):
            raise ValueError(f"--db {scheme}: URL must look like {scheme}://user@host:5432/dbname")
        return Database("postgresql", value)
    if scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db; sqlite:// is in memory
        rest = value[match.end() :]
        if rest in ("//", "///:memory:", "///"):
            return Database("sqlite", ":memory:")
        if not rest.startswith("///"):
            raise ValueError(
                "--db sqlite: URL must look like sqlite:///relative/file.db or sqlite:////absolute/file.db"
            )
        return Database("sqlite", rest[3:])
    raise ValueError(
        f"--db: unsupported database scheme {scheme!r}; use postgresql://..., sqlite:///path or a file path"
    )


def open_storage(
    database: Database | str,
    provider: ModelProvider | None = None,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    prices: Prices | None = None,
) -> Storage:
    """The storage a ``--db`` value names, with its schema migrated to this release's version; on PostgreSQL, with
    a pool of at most ``pool_size`` connections.

    Example:
        ```python
        storage = open_storage(":memory:")
        storage.close()
        ```
    """
    if isinstance(database, str):
        database = parse_database(database)
    if database.kind == "postgresql":
        from ._pgstore import PgStore  # psycopg is in the `postgres` extra; SQLite users never import it

        return PgStore(database.target, provider=provider, max_connections=pool_size, prices=prices)
    from ._store import Store

    return Store(database.target, provider=provider, prices=prices)
