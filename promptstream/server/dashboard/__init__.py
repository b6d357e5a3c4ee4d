"""The dashboard of the reference server, under ``/dashboard``: sign in, prompts (versions, diffs, previews),
experiments (live results with charts), events, API keys and settings.

Server-rendered Jinja2 templates on the server's own Starlette app, one small CSS file, one small script that only
refreshes the results page, and charts drawn as inline SVG by the server: every asset is served by the server
itself (it works offline), and every page but the refresh works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .._accounts import Accounts, open_accounts
from .._storage import Storage
from . import _admin, _experiments, _prompts, _signin
from ._auth import ADMIN_USERNAME, ENV_ADMIN_PASSWORD, AdminSetup, ensure_admin, hash_password, verify_password
from ._web import HERE, PREFIX, Dashboard, View, page, secure

__all__ = [
    "ADMIN_USERNAME",
    "ENV_ADMIN_PASSWORD",
    "PREFIX",
    "AdminSetup",
    "Dashboard",
    "dashboard_routes",
    "ensure_admin",
    "hash_password",
    "open_accounts",
    "sign_in_banner",
    "verify_password",
]

# (path, view, methods): every one of them needs a signed-in session (``page``)
PAGES: list[tuple[str, View, list[str]]] = [
    ("/logout", _signin.logout, ["POST"]),
    ("/prompts", _prompts.list_prompts, ["GET"]),
    ("/prompts", _prompts.create_prompt, ["POST"]),
    ("/prompts/{prompt_id}", _prompts.show_prompt, ["GET"]),
    ("/prompts/{prompt_id}/versions", _prompts.add_version, ["POST"]),
    ("/prompts/{prompt_id}/preview", _prompts.preview, ["POST"]),
    ("/prompts/{prompt_id}/experiments", _prompts.create_experiment, ["POST"]),
    ("/experiments", _experiments.list_experiments, ["GET"]),
    ("/experiments/{experiment_id}", _experiments.show_experiment, ["GET"]),
    ("/experiments/{experiment_id}/live", _experiments.live_results, ["GET"]),
    ("/experiments/{experiment_id}/end", _experiments.end_experiment, ["POST"]),
    ("/events", _experiments.events, ["GET"]),
    ("/keys", _admin.list_keys, ["GET"]),
    ("/keys", _admin.create_key, ["POST"]),
    ("/keys/{key_id}/revoke", _admin.revoke_key, ["POST"]),
    ("/settings", _admin.settings, ["GET"]),
    ("/settings/password", _signin.change_password, ["POST"]),
    ("/settings/sessions", _signin.sign_out_everywhere, ["POST"]),
    ("/projects", _admin.create_project, ["POST"]),
    ("/projects/switch", _admin.switch_project, ["POST"]),
]


def sign_in_banner(url: str, admin: AdminSetup) -> str:
    """What ``promptstream serve`` prints about the dashboard: its URL and how to sign in.

    Example:
        ```python
        print(sign_in_banner("http://127.0.0.1:8700", AdminSetup(created=False)))
        ```
    """
    where = f"Dashboard: {url}{PREFIX}/"
    if admin.password is not None:
        return (
            f"{where}\n  created the account '{ADMIN_USERNAME}' with the password below, shown only this once"
            f" (change it under Settings):\n  {admin.password}"
        )
    if admin.from_environment:
        return f"{where}\n  created the account '{ADMIN_USERNAME}' with the password in {ENV_ADMIN_PASSWORD}"
    return f"{where} (sign in as '{ADMIN_USERNAME}')"


def dashboard_routes(store: Storage, accounts: Accounts | None = None) -> list[BaseRoute]:
    """The routes of the dashboard for ``store`` (``/`` redirects to it), for the server's Starlette app.

    Example:
        ```python
        app = Starlette(routes=api_routes + dashboard_routes(store))
        ```
    """
    dashboard = Dashboard(store, accounts)

    def bound(
        function: Callable[[Dashboard, Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await function(dashboard, request)

        return endpoint

    async def home(request: Request) -> Response:
        return secure(RedirectResponse(PREFIX + "/prompts", status_code=303))

    routes: list[BaseRoute] = [
        Route("/login", bound(_signin.login_form), methods=["GET"]),
        Route("/login", bound(_signin.login), methods=["POST"]),
        Route("/", home, methods=["GET"]),
        # the stylesheet and the refresh script: needed by the sign-in page itself, and they hold no data
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="dashboard-static"),
    ]
    routes += [Route(path, page(view, dashboard), methods=methods) for path, view, methods in PAGES]
    return [Route("/", home, methods=["GET"]), Mount(PREFIX, routes=routes)]
