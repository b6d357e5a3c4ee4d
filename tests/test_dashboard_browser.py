"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright for Python, against the real
reference server on loopback; the SDK, with a key made in the dashboard, sends the traffic the results page shows.

Chromium is the system's (/usr/bin/chromium, `apt-get install chromium`; .ci/run installs it), never a browser
downloaded by `playwright install`. Without it (or without Playwright) these tests skip with the reason on a user's
machine and fail under CI=true.

Every page is checked with axe-core (no serious or critical violation) and walked by keyboard. With
PROMPTSTREAM_DASHBOARD_SCREENSHOTS=<dir> the flow saves a screenshot of each page there (docs/images/dashboard/ is
made that way: docs/dashboard.md).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptstream import AuthenticationError, PromptStreamClient
from promptstream.server import ServerThread, Store

from .helpers import API_KEY

CHROMIUM = os.environ.get("PROMPTSTREAM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
USERS = 300
SCREENSHOTS = os.environ.get("PROMPTSTREAM_DASHBOARD_SCREENSHOTS")
FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, summary"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed: pip install -e '.[dev]'")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set PROMPTSTREAM_TEST_CHROMIUM)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    monkeypatch.setenv("PROMPTSTREAM_ADMIN_PASSWORD", PASSWORD)
    store = Store(tmp_path / "server.sqlite3")
    with ServerThread(store, [API_KEY]) as thread:
        yield thread
    store.close()


@pytest.fixture
def page(browser: Any, dashboard: ServerThread) -> Iterator[Any]:
    context = browser.new_context(base_url=dashboard.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def check_accessibility(page: Any, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations]
    bad = [v for v in bad if v[1] in ("serious", "critical")]
    assert not bad, f"{name}: {json.dumps(bad)}"


def check_keyboard(page: Any, name: str) -> None:
    """Tab from the top reaches every control of the page, the skip link first."""
    wanted = page.eval_on_selector_all(
        FOCUSABLE,
        "els => els.filter(e => !e.disabled && e.offsetParent !== null && e.closest('[hidden]') === null)"
        ".map((e, i) => e.dataset.kb = String(i)).length",
    )
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("body").focus()
    reached: set[str] = set()
    for step in range(wanted + 3):
        page.keyboard.press("Tab")
        marker = page.evaluate("document.activeElement ? document.activeElement.dataset.kb || '' : ''")
        if step == 0:
            assert page.evaluate("document.activeElement.className") == "skip", name
        if marker:
            reached.add(marker)
    assert len(reached) == wanted, f"{name}: {wanted - len(reached)} of {wanted} controls not reachable by Tab"


def visit(page: Any, name: str, secret: str | None = None) -> None:
    """What every page gets: axe, the keyboard walk, and its screenshot when asked for; ``secret`` (a key shown
    once) must not be anywhere in its HTML."""
    if secret is not None:
        assert secret not in page.content(), name
    check_accessibility(page, name)
    check_keyboard(page, name)
    if SCREENSHOTS:
        page.evaluate("document.activeElement && document.activeElement.blur()")
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        # the whole page, cut at 2,400 px (the events list is long)
        height = min(2400, int(page.evaluate("document.documentElement.scrollHeight")))
        page.screenshot(
            path=str(Path(SCREENSHOTS) / f"{name}.png"),
            full_page=True,
            clip={"x": 0, "y": 0, "width": 1280, "height": height},
            mask=[page.locator(".secret")],
        )


def sign_in_by_keyboard(page: Any) -> None:
    page.goto("/dashboard/")
    assert "/dashboard/login" in page.url
    visit(page, "sign-in")
    page.locator("body").focus()
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "password":
            break
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/prompts")


def test_a_new_user_signs_in_builds_an_experiment_and_watches_the_sdks_traffic_arrive(
    page: Any, dashboard: ServerThread, tmp_path: Path
) -> None:
    sign_in_by_keyboard(page)
    session = next(c for c in page.context.cookies() if c["name"] == "ps_session")
    assert session["httpOnly"] and session["sameSite"] in ("Lax", "Strict")
    assert page.evaluate("document.cookie").find("ps_session") == -1  # not readable by scripts

    # a project and a key
    page.goto("/dashboard/settings")
    page.fill("#project-name", "Checkout")
    page.click("text=Create project")
    page.wait_for_url("**/dashboard/keys")
    page.fill("#key-name", "checkout web app")
    page.click("text=Create key")
    key = page.input_value("#new-key-secret")
    assert key.startswith("ps_")
    visit(page, "key-created")
    shown_once = key  # the secret of the key made here: on no page after its creation
    page.goto("/dashboard/keys")
    assert page.locator("#keys tbody tr").count() == 1
    assert "Checkout" in page.inner_text("header")

    # a prompt and a second version; the diff shows what changed
    page.goto("/dashboard/prompts")
    visit(page, "prompts-empty", shown_once)
    page.fill("#prompt-name", "welcome")
    page.fill("#prompt-template", "Write a welcome for {{name}}.\nKeep it short.")
    page.click("text=Create prompt")
    page.wait_for_url("**/dashboard/prompts/*")
    prompt_id = page.url.rsplit("/", 1)[1]
    page.fill("#version-template", "Write a warm welcome for {{name}}.\nKeep it short.")
    page.click("text=Add version 2")
    page.wait_for_url("**b=2")
    assert page.text_content("#diff td.removed") == "removed: Write a welcome for {{name}}."
    assert page.text_content("#diff td.added") == "added: Write a warm welcome for {{name}}."
    assert page.locator("#diff td.removed").count() == page.locator("#diff td.added").count() == 1
    page.fill("#preview-2-name", "Ada")
    page.click("text=Preview version 2")
    assert page.inner_text("#preview-output") == "Write a warm welcome for Ada.\nKeep it short."
    visit(page, "prompt", shown_once)

    # an experiment over both versions, 1:1
    page.fill("#experiment-name", "warmer welcome")
    page.fill("#weight-1", "1")
    page.fill("#weight-2", "1")
    page.click("text=Start experiment")
    page.wait_for_url("**/dashboard/experiments/*")
    experiment_id = page.url.rsplit("/", 1)[1]
    assert page.inner_text("#state") == "live"

    # the SDK, with that key, for a few hundred users; v2 converts more often
    with PromptStreamClient(key, base_url=dashboard.url, spool_dir=tmp_path / "spool", flush_interval=0.05) as client:
        for number in range(USERS):
            run = client.run_prompt(prompt_id, {"name": f"user {number}"}, external_user_id=f"user-{number}")
            assert run.experiment_id == experiment_id
            if number % (3 if run.variant_assigned == "v2" else 6) == 0:
                client.track_conversion(run.run_id, run.experiment_id, external_user_id=f"user-{number}")
        assert client.flush(timeout=30)

    # the open page refreshes itself and then shows what the API answers
    api = httpx.get(
        f"{dashboard.url}/v1/experiments/{experiment_id}/results", headers={"Authorization": f"Bearer {key}"}
    ).json()
    total_runs = sum(v["runs"] for v in api["variants"])
    assert total_runs == USERS

    def page_shows_every_run() -> bool:
        shown = page.eval_on_selector_all("#variants td.runs", "cells => cells.map(c => Number(c.textContent))")
        return sum(shown) == USERS

    wait_until(page_shows_every_run, timeout=30, what="the results page to refresh")
    assert page.get_attribute("#results", "data-refreshed-at")  # by the script, without a reload
    for variant in api["variants"]:
        row = page.locator(f'#variants tr[data-variant="{variant["variant"]}"]')
        per_user = variant["conversion"]["per_user"]
        assert row.locator("td.runs").inner_text() == str(variant["runs"])
        assert row.locator("td.users").inner_text() == str(variant["users"])
        assert row.locator("td.conversions").inner_text() == str(per_user["successes"])
        assert row.locator(".rate").inner_text() == f"{per_user['rate'] * 100:.2f}%"
        if per_user["lift"] is not None:
            assert row.locator(".lift").inner_text() == f"{per_user['lift'] * 100:+.2f}%"
    assert page.inner_text("#decision-action") == api["decision"]["action"].replace("_", " ")
    assert page.inner_text("#decision-reason") == api["decision"]["reason"]
    # the charts are drawn: a dot per variant with data, a bar per variant in the sample-ratio check
    assert page.locator("#conversion-now svg circle").count() == len(api["variants"])
    assert page.locator("#sample-ratio svg rect").count() == len(api["variants"])
    assert page.locator("figure svg[role=img] title").count() >= 2
    visit(page, "experiment", shown_once)

    page.goto("/dashboard/experiments")
    visit(page, "experiments", shown_once)
    # an event the server refuses (a run it never made): the events page shows why
    refused = str(uuid.uuid4())
    batch = {
        "sent_at": "2026-12-02T00:00:00Z",
        "events": [
            {
                "event_id": refused,
                "type": "click",
                "prompt_run_id": "no-such-run",
                "experiment_id": experiment_id,
                "timestamp": "2026-12-02T00:00:00Z",
                "label": "cta",
            }
        ],
    }
    answer = httpx.post(f"{dashboard.url}/v1/events/batch", json=batch, headers={"Authorization": f"Bearer {key}"})
    assert answer.json()["rejected"][0]["event_id"] == refused
    page.goto(f"/dashboard/events?experiment_id={experiment_id}")
    rejection = page.locator("#rejections tbody tr").first
    assert refused in rejection.inner_text() and "unknown prompt_run_id" in rejection.inner_text()
    converted = sum(v["conversion"]["per_user"]["successes"] for v in api["variants"])
    assert page.locator("#recent-events tbody tr").count() == min(50, converted)
    visit(page, "events", shown_once)
    page.goto("/dashboard/settings")
    visit(page, "settings", shown_once)

    # ending the experiment: the page says so, and so does the API
    page.goto(f"/dashboard/experiments/{experiment_id}")
    page.click("text=End experiment")
    page.wait_for_selector("#state")
    assert page.inner_text("#state") == "ended"
    ended = httpx.get(f"{dashboard.url}/v1/experiments/{experiment_id}", headers={"Authorization": f"Bearer {key}"})
    assert ended.json()["active"] is False

    # revoking the key: the SDK is refused at once
    page.goto("/dashboard/keys")
    visit(page, "keys", shown_once)
    page.click("button:has-text('Revoke')")
    page.wait_for_url("**/dashboard/keys")
    assert "revoked" in page.inner_text("#keys tbody tr")
    with (
        PromptStreamClient(key, base_url=dashboard.url, spool_dir=tmp_path / "spool2") as client,
        pytest.raises(AuthenticationError),
    ):
        client.run_prompt(prompt_id, {"name": "late"})


def test_without_a_session_the_browser_lands_on_sign_in_for_every_page(page: Any, dashboard: ServerThread) -> None:
    from promptstream.server.dashboard import PAGES

    for path, _, methods in PAGES:
        if "GET" not in methods:
            continue
        target = "/dashboard" + path.format(prompt_id="p", experiment_id="e", key_id="k")
        page.goto(target)
        assert "/dashboard/login" in page.url, target
        assert page.locator("#password").count() == 1


def test_a_form_posted_from_another_site_is_refused(page: Any, dashboard: ServerThread) -> None:
    """A page elsewhere that posts a form to the dashboard in the signed-in browser: the session cookie may or may
    not travel (SameSite), the CSRF token cannot be known, so the server refuses (403) and nothing is created."""
    sign_in_by_keyboard(page)
    evil = page.context.new_page()
    evil.set_content(
        f'<form method="post" action="{dashboard.url}/dashboard/prompts">'
        '<input name="name" value="planted"><input name="template" value="x">'
        '<input name="csrf_token" value="guess"><button id="go">go</button></form>'
    )
    with evil.expect_navigation():
        evil.click("#go")
    assert "planted" not in evil.content()
    assert dashboard.store.count("prompts") == 0
