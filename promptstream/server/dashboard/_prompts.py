"""Prompt pages: the list, creating one, a prompt's versions side by side with their diff, a new version, a
preview of a version rendered by the server's model provider, and starting an experiment over its versions."""

from __future__ import annotations

import difflib
import math
from typing import Any

from starlette.responses import Response

from .._limits import MAX_OUTPUT_BYTES, MAX_VARIANTS, MAX_WEIGHT
from .._storage import StoreError
from .._templates import rendered_size
from .._wire import VariantSpec
from ._web import Context, Dashboard, redirect

MAX_TEMPLATE_CHARS = 100_000


async def list_prompts(dashboard: Dashboard, ctx: Context) -> Response:
    prompts = await dashboard.work.run(ctx.data.prompts)
    return dashboard.render_page(ctx, "prompts.html", prompts=prompts, error=None, form={})


async def create_prompt(dashboard: Dashboard, ctx: Context) -> Response:
    name, template = ctx.form.get("name", "").strip(), ctx.form.get("template", "")
    problem = _text_problem("name", name, 256) or _text_problem("template", template, MAX_TEMPLATE_CHARS)
    if problem is None:
        try:
            created = await dashboard.work.run(ctx.data.create_prompt, name, template)
        except StoreError as exc:
            problem = exc.message
        else:
            return redirect(f"/prompts/{created['prompt_id']}")
    prompts = await dashboard.work.run(ctx.data.prompts)
    return dashboard.render_page(ctx, "prompts.html", 422, prompts=prompts, error=problem, form=ctx.form)


def _text_problem(field: str, value: str, limit: int) -> str | None:
    if not value.strip():
        return f"The {field} must not be empty."
    if len(value) > limit:
        return f"The {field} may have at most {limit:,} characters."
    return None


def side_by_side(old: str, new: str) -> list[dict[str, Any]]:
    """Rows of a two-column diff: each pairs a line of ``old`` with one of ``new`` (either may be None) and says
    whether the pair is equal, changed, removed or added.

    Example:
        ```python
        rows = side_by_side("a\\nb", "a\\nc")
        assert [row["tag"] for row in rows] == ["equal", "replace"]
        ```
    """
    left, right = old.splitlines(), new.splitlines()
    rows: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, left, right, autojunk=False).get_opcodes():
        span = max(i2 - i1, j2 - j1)
        for k in range(span):
            li, rj = i1 + k, j1 + k
            row_tag = tag
            if tag == "replace":
                row_tag = "replace" if li < i2 and rj < j2 else ("delete" if li < i2 else "insert")
            rows.append(
                {
                    "tag": row_tag,
                    "left_no": li + 1 if li < i2 else None,
                    "left": left[li] if li < i2 else None,
                    "right_no": rj + 1 if rj < j2 else None,
                    "right": right[rj] if rj < j2 else None,
                }
            )
    return rows


def _version_arg(value: str | None, default: int, latest: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return number if 1 <= number <= latest else default


async def show_prompt(dashboard: Dashboard, ctx: Context, **extra: Any) -> Response:
    prompt_id = ctx.request.path_params["prompt_id"]
    prompt = await dashboard.work.run(ctx.data.prompt, prompt_id)
    experiments = await dashboard.work.run(ctx.data.experiments, prompt_id)
    latest = int(prompt["latest_version"])
    query = ctx.request.query_params
    right = _version_arg(query.get("b"), latest, latest)
    left = _version_arg(query.get("a"), max(1, right - 1), latest)
    versions = {int(v["version"]): v for v in prompt["versions"]}
    values: dict[str, Any] = {
        "prompt": prompt,
        "experiments": list(reversed(experiments)),
        "left": versions[left],
        "right": versions[right],
        "diff": side_by_side(versions[left]["template"], versions[right]["template"]),
        "unified": "\n".join(
            difflib.unified_diff(
                versions[left]["template"].splitlines(),
                versions[right]["template"].splitlines(),
                f"version {left}",
                f"version {right}",
                lineterm="",
            )
        ),
        "preview": None,
        "error": None,
        "experiment_error": None,
        "form": {},
    }
    values.update(extra)
    status = 422 if values["error"] or values["experiment_error"] or values.get("preview_error") else 200
    return dashboard.render_page(ctx, "prompt.html", status, **values)


async def add_version(dashboard: Dashboard, ctx: Context) -> Response:
    prompt_id = ctx.request.path_params["prompt_id"]
    template = ctx.form.get("template", "")
    problem = _text_problem("template", template, MAX_TEMPLATE_CHARS)
    if problem is not None:
        return await show_prompt(dashboard, ctx, error=problem, form=ctx.form)
    added = await dashboard.work.run(ctx.data.add_version, prompt_id, template)
    return redirect(f"/prompts/{prompt_id}?b={added['version']}")


async def preview(dashboard: Dashboard, ctx: Context) -> Response:
    """Render one version with the inputs typed in, through the server's provider; nothing is stored."""
    prompt_id = ctx.request.path_params["prompt_id"]
    prompt = await dashboard.work.run(ctx.data.prompt, prompt_id)
    versions = {int(v["version"]): v for v in prompt["versions"]}
    try:
        version = int(ctx.form.get("version", ""))
    except ValueError:
        version = -1
    if version not in versions:
        return await show_prompt(dashboard, ctx, preview_error="Choose one of the prompt's versions.")
    inputs = {name: ctx.form.get(f"input_{name}", "") for name in versions[version]["inputs"]}
    if rendered_size(versions[version]["template"], inputs) > MAX_OUTPUT_BYTES:
        return await show_prompt(dashboard, ctx, preview_error="The rendered prompt would be larger than 1 MiB.")
    try:
        output = await dashboard.work.run(ctx.data.preview, prompt_id, version, inputs)
    except StoreError:
        raise
    except Exception as exc:  # the provider is the user's code or a remote model: show why, keep the page
        return await show_prompt(dashboard, ctx, preview_error=f"The model provider failed: {type(exc).__name__}")
    return await show_prompt(
        dashboard, ctx, preview={"version": version, "inputs": inputs, "output": output}, form=ctx.form
    )


def parse_variants(form_lists: dict[str, list[str]], versions: list[int]) -> tuple[list[VariantSpec], str | None]:
    """The variants of the experiment form: a weight per version, blank (or 0) for a version left out."""
    variants: list[VariantSpec] = []
    for version in versions:
        raw = (form_lists.get(f"weight_{version}") or [""])[-1].strip()
        if not raw:
            continue
        try:
            weight = float(raw)
        except ValueError:
            return [], f"The weight of version {version} is not a number."
        if weight == 0:
            continue
        if not math.isfinite(weight) or not 0 < weight <= MAX_WEIGHT:
            return [], f"A weight is a number above 0 and at most {MAX_WEIGHT:,.0f} (version {version})."
        variants.append(VariantSpec(version=version, weight=weight))
    if not variants:
        return [], "Give at least one version a weight."
    if len(variants) > MAX_VARIANTS:
        return [], f"An experiment has at most {MAX_VARIANTS} variants."
    return variants, None


async def create_experiment(dashboard: Dashboard, ctx: Context) -> Response:
    prompt_id = ctx.request.path_params["prompt_id"]
    prompt = await dashboard.work.run(ctx.data.prompt, prompt_id)
    variants, problem = parse_variants(ctx.form_lists, [int(v["version"]) for v in prompt["versions"]])
    name = ctx.form.get("name", "").strip() or None
    if problem is None and name is not None and len(name) > 256:
        problem = "The name may have at most 256 characters."
    if problem is not None:
        return await show_prompt(dashboard, ctx, experiment_error=problem, form=ctx.form)
    created = await dashboard.work.run(ctx.data.create_experiment, prompt_id, variants, name)
    return redirect(f"/experiments/{created['experiment_id']}")
