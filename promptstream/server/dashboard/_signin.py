"""Signing in and out. The sign-in form has no session yet, so its CSRF token is a double-submit one: a random
value in an HttpOnly, SameSite cookie and the same value in the form; another site can make a browser post the
form but can neither read nor set the cookie."""

from __future__ import annotations

import math
import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .._storage import StoreError
from ._admin import settings_values
from ._auth import check_login, hash_password, new_token, password_problem, token_hash
from ._data import DEFAULT_PROJECT
from ._web import (
    LOGIN_CSRF_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    Context,
    Dashboard,
    new_csrf_token,
    read_form,
    redirect,
    safe_next,
    secure,
    set_cookie,
    tokens_match,
)

MAX_USERNAME = 256


async def login_form(dashboard: Dashboard, request: Request) -> Response:
    if await dashboard.session_of(request) is not None:
        return secure(RedirectResponse(safe_next(request.query_params.get("next")), status_code=303))
    return await _login_page(dashboard, request, safe_next(request.query_params.get("next")), None, 200)


async def _login_page(
    dashboard: Dashboard, request: Request, next_path: str, error: str | None, status: int
) -> Response:
    csrf = new_csrf_token()
    no_account = await dashboard.account("user_count") == 0
    response = dashboard.render(
        "login.html", status, login_csrf=csrf, next_path=next_path, error=error, no_account=no_account, session=None
    )
    set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf, max_age=3600, path=PREFIX + "/login")
    return response


async def login(dashboard: Dashboard, request: Request) -> Response:
    try:
        fields = {name: values[-1] for name, values in (await read_form(request)).items()}
    except StoreError as exc:
        return dashboard.error_page(exc.status, exc.message)
    next_path = safe_next(fields.get("next"))
    if not tokens_match(fields.get("csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return dashboard.error_page(403, "The form's security token is missing or wrong: reload the page and retry.")
    username = fields.get("username", "").strip()[:MAX_USERNAME]
    password = fields.get("password", "")
    address = request.client.host if request.client else "unknown"
    wait = dashboard.throttle.wait_needed(username, address)
    if wait > 0:
        message = f"Too many failed attempts: try again in {math.ceil(wait)} s."
        response = await _login_page(dashboard, request, next_path, message, 429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    user = await dashboard.work.run(lambda: check_login(dashboard.accounts, username, password[:1024]))
    if user is None:
        dashboard.throttle.failed(username, address)
        return await _login_page(dashboard, request, next_path, "Wrong user name or password.", 401)
    dashboard.throttle.succeeded(username)
    token, digest = new_token()
    expires = time.time() + SESSION_LIFETIME
    await dashboard.account("create_session", str(user["user_id"]), digest, new_csrf_token(), DEFAULT_PROJECT, expires)
    response = secure(RedirectResponse(next_path, status_code=303))
    set_cookie(response, request, SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME), path=PREFIX)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX + "/login")
    return response


async def logout(dashboard: Dashboard, ctx: Context) -> Response:
    token = ctx.request.cookies.get(SESSION_COOKIE, "")
    await dashboard.account("delete_session", token_hash(token))
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


async def change_password(dashboard: Dashboard, ctx: Context) -> Response:
    """A new password ends every session of the user (this one too: sign in again with the new password)."""
    current, new = ctx.form.get("current_password", ""), ctx.form.get("new_password", "")
    user = await dashboard.work.run(lambda: check_login(dashboard.accounts, ctx.session["username"], current[:1024]))
    problem = "The current password is wrong." if user is None else password_problem(new)
    if problem is None and new != ctx.form.get("confirm_password"):
        problem = "The two new passwords differ."
    if problem is not None or user is None:
        values = await dashboard.work.run(settings_values, ctx)
        return dashboard.render_page(ctx, "settings.html", 422, error=problem, **values)
    hashed = await dashboard.work.run(hash_password, new)  # scrypt takes ~0.1 s: never on the event loop
    await dashboard.account("set_password", str(user["user_id"]), hashed)
    await dashboard.account("delete_user_sessions", str(user["user_id"]))
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


async def sign_out_everywhere(dashboard: Dashboard, ctx: Context) -> Response:
    await dashboard.account("delete_user_sessions", ctx.session["user_id"])
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response
