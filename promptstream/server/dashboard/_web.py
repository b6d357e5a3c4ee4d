"""The dashboard's plumbing: templates, the session every page requires, CSRF on every form, security headers.

``page(handler)`` wraps each view: it finds the session from the cookie (a GET without one is sent to the sign-in
page, anything else gets 401), reads a POST's form and checks its CSRF token against the session's (403 when it is
missing or wrong), runs the view, and adds the headers every page carries. Views get a ``Context``.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .._accounts import Accounts, open_accounts
from .._storage import Storage, StoreError
from .._threads import Lane
from ._auth import ENV_ADMIN_PASSWORD, LoginThrottle, ensure_admin, token_hash
from ._data import DEFAULT_PROJECT, ProjectData

PREFIX = "/dashboard"
SESSION_COOKIE = "ps_session"
LOGIN_CSRF_COOKIE = "ps_login_csrf"
SESSION_LIFETIME = 12 * 3600.0  # a working day; signing out or changing the password ends it sooner
MAX_FORM_BYTES = 1024 * 1024
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    # every asset is our own; no inline script (the one script is a file), no framing (clickjacking)
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Forbidden(Exception):
    """A form without the right CSRF token."""


@dataclass
class Context:
    """What a view knows about its request: the signed-in session, its project's data and the posted form."""

    request: Request
    session: dict[str, Any]
    data: ProjectData
    form: dict[str, str]
    form_lists: dict[str, list[str]]
    project: dict[str, Any]


View = Callable[["Dashboard", Context], Awaitable[Response]]


class Dashboard:
    """The dashboard of one server: its store, its accounts (opened on first use) and its templates."""

    def __init__(self, store: Storage, accounts: Accounts | None = None) -> None:
        self.store = store
        self._accounts = accounts
        self._accounts_lock = threading.Lock()
        self.throttle: LoginThrottle = LoginThrottle()
        self.work: Lane = Lane("dashboard", 16)
        self.templates: Environment = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals["prefix"] = PREFIX
        self.templates.filters["timestamp"] = format_timestamp

    @property
    def accounts(self) -> Accounts:
        """The accounts, opened on the first dashboard request: a server used only through its API (most tests)
        never opens a second connection to its database. PROMPTSTREAM_ADMIN_PASSWORD creates the admin here when
        the server was not started by ``promptstream serve`` (which creates it before listening)."""
        with self._accounts_lock:
            if self._accounts is None:
                accounts = open_accounts(self.store)
                if os.environ.get(ENV_ADMIN_PASSWORD):
                    ensure_admin(accounts)
                self._accounts = accounts
            return self._accounts

    def close(self) -> None:
        with self._accounts_lock:
            if self._accounts is not None:
                self._accounts.close()
                self._accounts = None

    # -- rendering ------------------------------------------------------------------------------------------------

    def render(self, name: str, status_code: int = 200, **values: Any) -> Response:
        html = self.templates.get_template(name).render(**values)
        return secure(HTMLResponse(html, status_code=status_code))

    def render_page(self, ctx: Context, name: str, status_code: int = 200, **values: Any) -> Response:
        return self.render(
            name,
            status_code,
            session=ctx.session,
            csrf_token=ctx.session["csrf_token"],
            project=values.pop("project", None) or ctx.project,
            path=ctx.request.url.path,
            **values,
        )

    def error_page(self, status: int, message: str, ctx: Context | None = None) -> Response:
        if ctx is None:
            return self.render("error.html", status, status=status, message=message, session=None)
        return self.render_page(ctx, "error.html", status, status=status, message=message)

    # -- sessions -------------------------------------------------------------------------------------------------

    async def session_of(self, request: Request) -> dict[str, Any] | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 200:
            return None
        found: dict[str, Any] | None = await self.account("session", token_hash(token), time.time())
        return found

    async def account(self, method: str, *args: Any) -> Any:
        """``accounts.<method>(*args)`` on a worker thread (opening the accounts there too, on first use): the
        event loop never waits on the database."""
        return await self.work.run(lambda: getattr(self.accounts, method)(*args))


def format_timestamp(value: float | None) -> str:
    """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS UTC`` (what every page shows)."""
    if value is None:
        return "-"
    return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int, path: str) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="lax", secure=is_https(request)
    )


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a path of the dashboard (never another site: no open redirect)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/prompts"


async def read_form(request: Request) -> dict[str, list[str]]:
    """A urlencoded form (what every dashboard form posts), at most ``MAX_FORM_BYTES``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise StoreError(415, "unsupported_media_type", "forms are posted as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise StoreError(413, "payload_too_large", "the form is too large")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError):
        raise StoreError(400, "invalid_body", "the form could not be read") from None


def tokens_match(sent: str | None, expected: str | None) -> bool:
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def page(view: View, dashboard: Dashboard) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint for ``view``: signed in, CSRF checked on POST, errors as pages."""

    async def endpoint(request: Request) -> Response:
        session = await dashboard.session_of(request)
        if session is None:
            if request.method in ("GET", "HEAD"):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return secure(RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303))
            return dashboard.error_page(401, "Sign in first.")
        data = ProjectData(dashboard.store, session.get("project_id") or DEFAULT_PROJECT)
        ctx = Context(request, session, data, {}, {}, {"project_id": data.project_id})
        try:
            ctx.project = await dashboard.work.run(data.project)  # its name, for the header of every page
            if request.method == "POST":
                ctx.form_lists = await read_form(request)
                ctx.form = {name: values[-1] for name, values in ctx.form_lists.items()}
                if not tokens_match(ctx.form.get("csrf_token"), session["csrf_token"]):
                    raise Forbidden
            return secure(await view(dashboard, ctx))
        except Forbidden:
            return dashboard.error_page(403, "The form's security token is missing or wrong: reload and retry.", ctx)
        except StoreError as exc:
            return dashboard.error_page(exc.status, exc.message, ctx)

    return endpoint


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def redirect(path: str) -> Response:
    return secure(RedirectResponse(PREFIX + path, status_code=303))
