"""Keys and settings: API keys (created and shown once, listed by prefix, revoked), the project (switch, create)
and the account (password, sessions)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._storage import StoreError
from ._web import Context, Dashboard, redirect


async def list_keys(dashboard: Dashboard, ctx: Context, status: int = 200, error: str | None = None) -> Response:
    keys = await dashboard.work.run(ctx.data.keys)
    return dashboard.render_page(ctx, "keys.html", status, keys=keys, error=error)


async def create_key(dashboard: Dashboard, ctx: Context) -> Response:
    name = ctx.form.get("name", "").strip()
    if not name or len(name) > 256:
        return await list_keys(dashboard, ctx, 422, "A key needs a name of 1 to 256 characters.")
    record, secret = await dashboard.work.run(ctx.data.create_key, name)
    # the only response that ever holds the secret: not cached, and the key list shows its prefix from now on
    return dashboard.render_page(ctx, "key_created.html", key=record, secret=secret)


async def revoke_key(dashboard: Dashboard, ctx: Context) -> Response:
    await dashboard.work.run(ctx.data.revoke_key, ctx.request.path_params["key_id"])
    return redirect("/keys")


def settings_values(ctx: Context) -> dict[str, Any]:
    """What the settings page shows (blocking: run it on a worker)."""
    data = ctx.data
    return {"projects": data.projects(), "project": data.project()}


async def settings(dashboard: Dashboard, ctx: Context) -> Response:
    values = await dashboard.work.run(settings_values, ctx)
    return dashboard.render_page(ctx, "settings.html", error=None, **values)


async def switch_project(dashboard: Dashboard, ctx: Context) -> Response:
    project_id = ctx.form.get("project_id", "")
    known = {p["project_id"] for p in await dashboard.work.run(ctx.data.projects)}
    if project_id not in known:
        raise StoreError(404, "project_not_found", "no such project")
    await dashboard.account("set_session_project", ctx.session["token_hash"], project_id)
    return redirect("/prompts")


async def create_project(dashboard: Dashboard, ctx: Context) -> Response:
    name = ctx.form.get("name", "").strip()
    if not name or len(name) > 256:
        raise StoreError(422, "invalid_request", "A project needs a name of 1 to 256 characters.")
    created = await dashboard.work.run(ctx.data.create_project, name)
    await dashboard.account("set_session_project", ctx.session["token_hash"], created["project_id"])
    return redirect("/keys")
