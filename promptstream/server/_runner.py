"""Running the reference server: in the foreground for ``promptstream serve``, or on a background thread with a
free loopback port for tests and the demo."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import platformdirs
import uvicorn
from starlette.types import ASGIApp

from ._accounts import Accounts, open_accounts
from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._database import DEFAULT_POOL_SIZE, Database, open_storage, parse_database
from ._limits import api_key_problem
from ._pricing import Prices
from ._storage import Storage
from ._workers import can_fork, run_workers
from .dashboard import ensure_admin, sign_in_banner

ENV_SERVER_API_KEYS = "PROMPTSTREAM_SERVER_API_KEYS"
logger = logging.getLogger("promptstream.server")


def default_data_dir() -> Path:
    """Where ``promptstream serve`` keeps its database and dev key by default: the user data dir.

    Example:
        ```python
        db = default_data_dir() / "server.sqlite3"
        ```
    """
    return Path(platformdirs.user_data_dir("promptstream"))


def resolve_server_keys(keys: Sequence[str], data_dir: Path) -> tuple[list[str], bool]:
    """Keys from the command line, else the environment, else a dev key generated once and kept in the data dir.
    Returns the keys and whether a dev key was generated now. Raises ValueError, without echoing it, for a key that
    is empty or has spaces, control or non-ASCII characters: an empty key would let any ``Bearer`` header in, and
    such a key could never be sent.

    Example:
        ```python
        keys, generated = resolve_server_keys([], default_data_dir())
        if generated:
            print("dev API key:", keys[0])
        ```
    """
    if keys:
        _check_keys(keys, "from the command line")
        return list(keys), False
    from_env = [k.strip() for k in os.environ.get(ENV_SERVER_API_KEYS, "").split(",") if k.strip()]
    if from_env:
        _check_keys(from_env, f"in {ENV_SERVER_API_KEYS}")
        return from_env, False
    key_file = data_dir / "dev-api-key"
    if key_file.exists():
        kept = [key_file.read_text().strip()]
        _check_keys(kept, f"in {key_file}")
        return kept, False
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = "ps_dev_" + secrets.token_urlsafe(24)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return [key], True


def _check_keys(keys: Sequence[str], origin: str) -> None:
    for number, key in enumerate(keys, start=1):
        problem = api_key_problem(key)
        if problem is not None:
            raise ValueError(f"API key #{number} {origin} {problem}")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port, chosen by the kernel and kept: nobody can take
    it between choosing and listening).

    Example:
        ```python
        sock = bind_socket("127.0.0.1", 0)
        ```
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto == IPPROTO_TCP,
    # and without it every response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ServerThread:
    """A reference server on a background thread, on a free loopback port unless ``port`` is given: for tests.

    ``stop()`` and ``start()`` again on the same port simulate an outage.

    Example:
        ```python
        with ServerThread(Store(), ["ps_test_key"]) as server:
            client = PromptStreamClient(api_key="ps_test_key", base_url=server.url)
        ```
    """

    def __init__(
        self,
        store: Storage,
        api_keys: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.port: int = port
        app = create_app(store, api_keys, rate_limit=rate_limit, max_body_bytes=max_body_bytes)
        self._app = wrap(app) if wrap is not None else app  # e.g. fault injection in tests
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port``, with the port bound once started.

        Example:
            ```python
            client = PromptStreamClient(api_key="ps_test_key", base_url=server.url)
            ```
        """
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Bind the port and serve on a daemon thread; returns once the server accepts connections.

        Example:
            ```python
            server = ServerThread(store, ["ps_test_key"]).start()
            ```
        """
        sock = bind_socket(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self._app, log_level="warning", lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"promptstream-server-{self.port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        # uvicorn sets `started` from its own loop; poll it with a deadline rather than sleeping blindly
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            pause.wait(0.01)
        if not server.started:
            raise RuntimeError("reference server did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread (at most ``timeout``); ``start()`` brings it back on the same port.

        Example:
            ```python
            server.stop()  # the SDK now sees an outage
            server.start()  # and delivers its backlog
            ```
        """
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start() if self._thread is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    *,
    host: str,
    port: int,
    db: str | Database,
    api_keys: Sequence[str],
    rate_limit: float | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    workers: int = 1,
    pool_size: int = DEFAULT_POOL_SIZE,
    on_listening: Callable[[str], None] | None = None,
    prices: Prices | None = None,
) -> int:
    """Run the server in the foreground until interrupted (``promptstream serve``); returns the exit status.
    ``prices`` give runs a cost (``--price``).

    The port is bound first (port 0 picks a free one) and the database opened (and migrated) once; ``on_listening``
    then gets the real URL, before any request is served, so a banner never announces a server that could not
    listen. With ``workers`` > 1, that many processes (_workers.py) serve the one socket, each with its own storage
    and ``pool_size`` PostgreSQL connections. Raises OSError when the address cannot be bound (we bind it ourselves,
    so the caller can say so in one line rather than uvicorn exiting the process), ConnectionError when the database
    cannot be used, and ValueError for an unusable API key or a worker count this database or platform cannot serve.

    Example:
        ```python
        # doc: no-run: serves until interrupted
        serve(host="127.0.0.1", port=8700, db="server.sqlite3", api_keys=["ps_dev_key"], rate_limit=None)
        ```
    """
    database = parse_database(db) if isinstance(db, str) else db
    check_workers(database, workers)
    if not api_keys:
        raise ValueError("the server needs at least one API key")
    _check_keys(api_keys, "given")  # before anything is bound or opened, and before any worker starts
    sock = bind_socket(host, port)
    try:
        store = open_storage(database, pool_size=pool_size, prices=prices)
        accounts = open_accounts(store)
        try:
            admin = ensure_admin(accounts)  # before listening: a bad PROMPTSTREAM_ADMIN_PASSWORD stops the start
        finally:
            if workers > 1:  # migrated and the admin made once, here; no connection or pool thread crosses the fork
                accounts.close()
                store.close()
    except BaseException:
        sock.close()
        raise

    def serve_one(listening: socket.socket, store: Storage | None = None, accounts: Accounts | None = None) -> None:
        store = store or open_storage(database, pool_size=pool_size, prices=prices)
        accounts = accounts or open_accounts(store)
        try:
            app = create_app(store, api_keys, rate_limit=rate_limit, max_body_bytes=max_body_bytes, accounts=accounts)
            config = uvicorn.Config(app, log_level="info", access_log=False, lifespan="off")
            uvicorn.Server(config).run(sockets=[listening])
        finally:
            with contextlib.suppress(Exception):
                accounts.close()
            with contextlib.suppress(Exception):
                store.close()

    try:
        if on_listening is not None:
            on_listening(url_of(sock))
        print(sign_in_banner(url_of(sock), admin), flush=True)  # the generated password: this once, never logged
        if workers > 1:
            return run_workers(workers, sock, serve_one)
        serve_one(sock, store, accounts)
        return 0
    finally:
        sock.close()


def check_workers(database: Database, workers: int) -> None:
    """Refuse a worker count this database or platform cannot serve as one server (ValueError, one line).

    SQLite is refused more than one worker: its store claims an idempotent run whose model is running in its own
    process's memory (two workers would run the same key twice), its rate limit is per process, and SQLite lets one
    writer in at a time, so more processes add no write throughput, only lock waits that end in errors under load.

    Example:
        ```python
        check_workers(parse_database("postgresql://app@db/ps"), 4)
        ```
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    if workers == 1:
        return
    if database.kind != "postgresql":
        raise ValueError(
            f"--workers {workers} needs PostgreSQL (--db postgresql://...): a SQLite database is served by one"
            " process; run more workers or instances on a PostgreSQL database (docs/scaling.md)"
        )
    if not can_fork():
        raise ValueError(f"--workers {workers} needs os.fork (Linux, macOS); run one process per port instead")


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket, with the port it really got.

    Example:
        ```python
        print(url_of(bind_socket("127.0.0.1", 0)))  # http://127.0.0.1:43117
        ```
    """
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
