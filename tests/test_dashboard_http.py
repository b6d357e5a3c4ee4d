"""The dashboard over plain HTTP, against the real reference server on loopback, on both storage backends: nothing
without a session, CSRF on every form, the session cookie's attributes, the sign-in throttle, the admin account of
the first start, sessions that end, and the pure parts (password hashing, diffs, charts) with generated values."""

from __future__ import annotations

import re
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream.server import ServerThread
from promptstream.server._accounts import open_accounts
from promptstream.server._storage import Storage
from promptstream.server.dashboard import PAGES, AdminSetup, ensure_admin, sign_in_banner
from promptstream.server.dashboard._auth import LoginThrottle, hash_password, verify_password
from promptstream.server.dashboard._charts import Interval, Series, bar_chart, interval_chart, line_chart, ratio_chart
from promptstream.server.dashboard._prompts import side_by_side

from .helpers import API_KEY, REPO_ROOT, start_server_process

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browserless:
    """A signed-in dashboard user over plain HTTP (cookies kept by httpx, redirects not followed)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
        self.csrf = ""

    def sign_in(self, password: str = PASSWORD, username: str = "admin") -> httpx.Response:
        form = self.http.get("/dashboard/login")
        token = CSRF.search(form.text)
        assert token, form.text
        answer = self.http.post(
            "/dashboard/login",
            data={"csrf_token": token.group(1), "username": username, "password": password, "next": "/dashboard/"},
        )
        if answer.status_code == 303:
            page = self.http.get("/dashboard/prompts")
            found = CSRF.search(page.text)
            assert found, page.text
            self.csrf = found.group(1)
        return answer

    def post(self, path: str, **fields: str) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.csrf, **fields})


@pytest.fixture
def dashboard_server(
    storage_factory: Callable[..., Storage], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ServerThread, Storage]]:
    monkeypatch.setenv("PROMPTSTREAM_ADMIN_PASSWORD", PASSWORD)
    store = storage_factory()
    with ServerThread(store, [API_KEY]) as thread:
        yield thread, store


@pytest.fixture
def user(dashboard_server: tuple[ServerThread, Storage]) -> Browserless:
    person = Browserless(dashboard_server[0].url)
    assert person.sign_in().status_code == 303
    return person


def _seed(user: Browserless) -> dict[str, str]:
    """A prompt with two versions and an experiment, made through the dashboard: the ids every route needs."""
    created = user.post("/dashboard/prompts", name="welcome", template="Hi {{name}}\nBye")
    prompt_id = created.headers["location"].rsplit("/", 1)[1]
    user.post(f"/dashboard/prompts/{prompt_id}/versions", template="Hello {{name}}\nBye")
    started = user.post(f"/dashboard/prompts/{prompt_id}/experiments", name="e", weight_1="1", weight_2="1")
    experiment_id = started.headers["location"].rsplit("/", 1)[1]
    return {"prompt_id": prompt_id, "experiment_id": experiment_id, "key_id": "k-unknown"}


def _routes(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [(method, path.format(**ids)) for path, _, methods in PAGES for method in methods]


def test_every_dashboard_route_needs_a_session(user: Browserless, dashboard_server: tuple[ServerThread, Any]) -> None:
    ids = _seed(user)
    stranger = httpx.Client(base_url=dashboard_server[0].url, follow_redirects=False, timeout=30)
    routes = _routes(ids)
    assert len(routes) == len([m for _, _, methods in PAGES for m in methods]) >= 20
    for method, path in routes:
        answer = stranger.request(method, "/dashboard" + path, data={"csrf_token": user.csrf})
        if method == "GET":
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/dashboard/login?next=")
        else:
            assert answer.status_code == 401, (method, path, answer.status_code)
        assert "welcome" not in answer.text and ids["prompt_id"] not in answer.text
    # a forged or stale cookie is no session either
    stranger.cookies.set("ps_session", "not-a-real-session", path="/dashboard")
    assert stranger.get(f"/dashboard/prompts/{ids['prompt_id']}").status_code == 303
    # nothing was changed by the attempts: still two versions, the experiment still live
    assert user.http.get(f"/dashboard/experiments/{ids['experiment_id']}").text.count('id="state">live') == 1


def test_every_form_refuses_a_missing_or_wrong_csrf_token(user: Browserless) -> None:
    ids = _seed(user)
    posts = [path for method, path in _routes(ids) if method == "POST"]
    for path in posts:
        for fields in ({}, {"csrf_token": ""}, {"csrf_token": user.csrf[:-1] + ("A" if user.csrf[-1] != "A" else "B")}):
            answer = user.http.post("/dashboard" + path, data={"name": "x", "template": "t", **fields})
            assert answer.status_code == 403, (path, fields, answer.status_code)
    # the signed-in session is intact, and nothing was created or ended
    page = user.http.get(f"/dashboard/experiments/{ids['experiment_id']}")
    assert page.status_code == 200 and 'id="state">live' in page.text
    assert user.http.get("/dashboard/prompts").text.count("/dashboard/prompts/") == 1


def test_the_sign_in_form_refuses_a_post_without_its_double_submit_token(
    dashboard_server: tuple[ServerThread, Any],
) -> None:
    http = httpx.Client(base_url=dashboard_server[0].url, follow_redirects=False)
    answer = http.post("/dashboard/login", data={"username": "admin", "password": PASSWORD})
    assert answer.status_code == 403 and "ps_session" not in answer.headers.get("set-cookie", "")
    http.get("/dashboard/login")  # sets the cookie; a token from elsewhere still does not match it
    answer = http.post("/dashboard/login", data={"csrf_token": "forged", "username": "admin", "password": PASSWORD})
    assert answer.status_code == 403


def test_the_session_cookie_is_httponly_samesite_and_scoped_to_the_dashboard(
    dashboard_server: tuple[ServerThread, Any],
) -> None:
    person = Browserless(dashboard_server[0].url)
    answer = person.sign_in()
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("ps_session="))
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert "httponly" in attributes
    assert attributes["samesite"].split("=")[1].strip().lower() in ("lax", "strict")
    assert attributes["path"].split("=")[1].strip() == "/dashboard"
    assert "secure" not in attributes  # plain http on loopback; https gets Secure (is_https)
    assert PASSWORD not in answer.text


def test_a_wrong_password_is_refused_and_guessing_is_throttled(dashboard_server: tuple[ServerThread, Any]) -> None:
    person = Browserless(dashboard_server[0].url)
    answers = [person.sign_in(password=f"guess number {n}").status_code for n in range(7)]
    assert answers[:5] == [401] * 5
    assert 429 in answers[5:]
    # even the right password waits while the throttle holds
    assert person.sign_in().status_code == 429
    assert person.http.get("/dashboard/prompts").status_code == 303


def test_sign_in_sends_only_to_a_dashboard_page(dashboard_server: tuple[ServerThread, Any]) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/v1/prompts", "/dashboard\\@evil"):
        http = httpx.Client(base_url=dashboard_server[0].url, follow_redirects=False)
        token = CSRF.search(http.get("/dashboard/login").text)
        assert token
        answer = http.post(
            "/dashboard/login",
            data={"csrf_token": token.group(1), "username": "admin", "password": PASSWORD, "next": target},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/prompts", target


def test_signing_out_ends_the_session_on_the_server(user: Browserless) -> None:
    stolen = dict(user.http.cookies)
    assert user.post("/dashboard/logout").status_code == 303
    replayed = httpx.Client(base_url=str(user.http.base_url), cookies=stolen, follow_redirects=False)
    assert replayed.get("/dashboard/prompts").status_code == 303


def test_changing_the_password_ends_every_session_and_the_new_one_works(
    dashboard_server: tuple[ServerThread, Any],
) -> None:
    first, second = Browserless(dashboard_server[0].url), Browserless(dashboard_server[0].url)
    first.sign_in()
    second.sign_in()
    new = "a different long passphrase"
    refused = first.post(
        "/dashboard/settings/password", current_password="wrong", new_password=new, confirm_password=new
    )
    assert refused.status_code == 422
    changed = first.post(
        "/dashboard/settings/password", current_password=PASSWORD, new_password=new, confirm_password=new
    )
    assert changed.status_code == 303
    assert second.http.get("/dashboard/prompts").status_code == 303
    assert Browserless(dashboard_server[0].url).sign_in(PASSWORD).status_code == 401
    assert Browserless(dashboard_server[0].url).sign_in(new).status_code == 303


def test_an_expired_session_is_no_session(dashboard_server: tuple[ServerThread, Storage]) -> None:
    thread, store = dashboard_server
    person = Browserless(thread.url)
    person.sign_in()
    accounts = open_accounts(store)
    try:
        token = person.http.cookies["ps_session"]
        from promptstream.server.dashboard._auth import token_hash

        session = accounts.session(token_hash(token), time.time())
        assert session is not None
        assert accounts.session(token_hash(token), session["expires_at"] + 1) is None
    finally:
        accounts.close()


def test_pages_carry_a_strict_content_security_policy(user: Browserless) -> None:
    ids = _seed(user)
    for method, path in _routes(ids):
        if method != "GET":
            continue
        answer = user.http.get("/dashboard" + path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["cache-control"] == "no-store"
        assert "http://" not in answer.text.replace("http://www.w3.org/2000/svg", "")  # no external asset


def test_preview_renders_with_the_servers_provider_and_stores_nothing(
    user: Browserless, dashboard_server: tuple[ServerThread, Storage]
) -> None:
    ids = _seed(user)
    store = dashboard_server[1]
    before = store.count("runs")
    answer = user.post(f"/dashboard/prompts/{ids['prompt_id']}/preview", version="2", input_name="<Ada & co>")
    assert answer.status_code == 200
    assert "Hello &lt;Ada &amp; co&gt;" in answer.text  # rendered, then escaped in the page
    assert store.count("runs") == before


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ({}, "at least one"),
        ({"weight_1": "x"}, "not a number"),
        ({"weight_1": "-1"}, "above 0"),
        ({"weight_1": "inf"}, "above 0"),
        ({"weight_2": "1e7"}, "at most"),
    ],
)
def test_experiment_weights_are_checked_with_a_message(
    user: Browserless, weights: dict[str, str], problem: str
) -> None:
    ids = _seed(user)
    answer = user.post(f"/dashboard/prompts/{ids['prompt_id']}/experiments", name="bad", **weights)
    assert answer.status_code == 422 and problem in answer.text


def test_a_project_sees_only_its_own_data(user: Browserless, dashboard_server: tuple[ServerThread, Storage]) -> None:
    ids = _seed(user)  # in the default project
    assert user.post("/dashboard/projects", name="Another team").status_code == 303  # and switches to it
    assert "welcome" not in user.http.get("/dashboard/prompts").text
    for method, path in _routes(ids):
        if "{" in path or ids["key_id"] in path or not any(ids[k] in path for k in ("prompt_id", "experiment_id")):
            continue
        answer = user.http.request(method, "/dashboard" + path, data={"csrf_token": user.csrf, "template": "t"})
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert "welcome" not in answer.text
    assert user.http.get(f"/dashboard/events?experiment_id={ids['experiment_id']}").status_code == 404
    assert user.post("/dashboard/projects/switch", project_id="default").status_code == 303
    page = user.http.get(f"/dashboard/experiments/{ids['experiment_id']}")
    assert page.status_code == 200 and 'id="state">live' in page.text  # nothing changed from the other project


# -- the first start -----------------------------------------------------------------------------------------------


def test_the_first_start_creates_admin_once_with_the_password_from_the_environment(
    storage_factory: Callable[..., Storage],
) -> None:
    accounts = open_accounts(storage_factory())
    try:
        assert ensure_admin(accounts, {"PROMPTSTREAM_ADMIN_PASSWORD": PASSWORD}) == AdminSetup(True, None, True)
        assert ensure_admin(accounts, {}) == AdminSetup(created=False)
        user = accounts.user_by_name("admin")
        assert user is not None and PASSWORD not in user["password_hash"]
        assert verify_password(PASSWORD, user["password_hash"])
        with pytest.raises(ValueError, match="at least 12"):
            ensure_admin(open_accounts(storage_factory()), {"PROMPTSTREAM_ADMIN_PASSWORD": "short"})
    finally:
        accounts.close()


def test_serve_prints_the_dashboard_and_a_generated_password_only_once(tmp_path: Path) -> None:
    db = tmp_path / "server.sqlite3"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    command = [sys.executable, "-m", "promptstream", "serve", "--port", "{port}", "--db", str(db), "--api-key", API_KEY]
    outputs = []
    urls = []
    for _ in range(2):
        process, url = start_server_process(command, env, ready_path="/dashboard/login")
        urls.append(url)
        process.terminate()
        outputs.append(process.communicate(timeout=30)[0])
    found = re.search(r"Dashboard: (\S+)/dashboard/\n.*shown only this once.*\n\s+(\S+)", outputs[0])
    assert found, outputs[0]
    password = found.group(2)
    assert password not in outputs[1] and "Dashboard: " in outputs[1]
    process, url = start_server_process(command, env, ready_path="/dashboard/login")
    try:
        assert Browserless(url).sign_in(password).status_code == 303
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_the_banner_says_how_to_sign_in() -> None:
    assert "secret-pw" in sign_in_banner("http://h:1", AdminSetup(True, "secret-pw"))
    assert "PROMPTSTREAM_ADMIN_PASSWORD" in sign_in_banner("http://h:1", AdminSetup(True, None, True))
    assert sign_in_banner("http://h:1", AdminSetup(False)).startswith("Dashboard: http://h:1/dashboard/")


# -- pure parts, with generated values -----------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(password=st.text(min_size=1, max_size=64), other=st.text(min_size=1, max_size=64))
def test_a_password_verifies_against_its_own_hash_only(password: str, other: str) -> None:
    stored = hash_password(password)
    assert stored.startswith("scrypt$")
    if len(password) >= 12:  # a shorter one can turn up in base64 by chance
        assert password not in stored
    assert verify_password(password, stored)
    assert verify_password(other, stored) == (other == password)
    assert hash_password(password) != stored  # a fresh salt each time


@given(failures=st.integers(0, 10), free=st.integers(1, 5))
def test_the_throttle_holds_a_name_and_an_address_after_their_free_failures(failures: int, free: int) -> None:
    throttle = LoginThrottle(free=free, window=60, max_delay=60)
    for _ in range(failures):
        throttle.failed("admin", "10.0.0.1")
    held = failures >= free
    assert (throttle.wait_needed("admin", "10.0.0.1") > 0) == held
    assert (throttle.wait_needed("admin", "10.0.0.2") > 0) == held  # the name, from anywhere
    assert (throttle.wait_needed("someone", "10.0.0.1") > 0) == held  # the address, whatever the name
    assert throttle.wait_needed("someone", "10.0.0.2") == 0
    throttle.succeeded("admin")  # a right password clears its name, not the address that guessed
    assert throttle.wait_needed("admin", "10.0.0.2") == 0
    assert (throttle.wait_needed("admin", "10.0.0.1") > 0) == held


lines = st.lists(st.text(alphabet="ab{}x \t", max_size=6), max_size=12)


@given(old=lines, new=lines)
def test_the_side_by_side_diff_holds_both_versions_line_for_line(old: list[str], new: list[str]) -> None:
    rows = side_by_side("\n".join(old), "\n".join(new))
    left = [row["left"] for row in rows if row["left"] is not None]
    right = [row["right"] for row in rows if row["right"] is not None]
    assert left == "\n".join(old).splitlines() and right == "\n".join(new).splitlines()
    for row in rows:
        if row["tag"] == "equal":
            assert row["left"] == row["right"]
        assert (row["left"] is None) == (row["tag"] == "insert")
        assert (row["right"] is None) == (row["tag"] == "delete")


rates = st.floats(min_value=0, max_value=1, allow_nan=False)
labels = st.text(min_size=1, max_size=12)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    points=st.lists(st.tuples(labels, st.none() | rates, rates, rates), max_size=6),
    series=st.lists(
        st.tuples(labels, st.lists(st.tuples(st.integers(0, 10**6), rates, rates, rates), max_size=8)), max_size=4
    ),
    counts=st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=5),
)
def test_every_chart_is_well_formed_svg_with_its_labels_escaped(
    points: list[tuple[str, float | None, float, float]],
    series: list[tuple[str, list[tuple[int, float, float, float]]]],
    counts: list[float],
) -> None:
    drawn = [
        interval_chart("<t>", [Interval(label, rate, low, high) for label, rate, low, high in points]),
        line_chart("t&", [Series(label, sorted(p)) for label, p in series], x_label="users"),
        bar_chart("t", [f"2026-12-{n + 1:02d}" for n in range(len(counts))], [("v<1>", counts)]),
        ratio_chart("t", [(label, low, high) for label, _, low, high in points]),
    ]
    for svg in drawn:
        root = ElementTree.fromstring(str(svg))  # raises on markup a label could break
        assert root.tag.endswith("svg") and root.get("role") == "img"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None


day_rows = st.lists(
    st.tuples(st.integers(1, 28), st.sampled_from(["v1", "v2", "v3"]), st.integers(0, 500), st.integers(0, 500)),
    min_size=1,
    max_size=30,
    unique_by=lambda row: (row[0], row[1]),
)


@given(rows=day_rows)
def test_the_time_series_draws_conversion_as_users_arrive_and_runs_per_day(
    rows: list[tuple[int, str, int, int]],
) -> None:
    """From rows shaped as ``experiment_timeseries`` answers (docs/protocol.md): a line per variant whose last point
    is its cumulative figure, and a bar per (day, variant)."""
    from promptstream.server.dashboard._charts import timeseries_charts
    from promptstream.server.dashboard._experiments import results_view

    cumulative: dict[str, int] = {}
    days = []
    for day, variant, runs, users in sorted(rows):
        cumulative[variant] = cumulative.get(variant, 0) + users
        rate = None if not cumulative[variant] else min(1.0, runs / (runs + cumulative[variant]))
        days.append(
            {
                "date": f"2026-11-{day:02d}",
                "variant": variant,
                "runs": runs,
                "users": users,
                "cumulative_users": cumulative[variant],
                "conversion_rate": rate,
                "ci_low": None if rate is None else rate / 2,
                "ci_high": None if rate is None else min(1.0, rate * 2),
            }
        )
    series, dates, runs_per_day = timeseries_charts({"days": days})
    assert dates == sorted({row["date"] for row in days})
    for line in series:
        mine = [row for row in days if row["variant"] == line.label and row["conversion_rate"] is not None]
        assert [point[0] for point in line.points] == [row["cumulative_users"] for row in mine]
        assert [point[1] for point in line.points] == [row["conversion_rate"] for row in mine]
    assert sum(sum(values) for _, values in runs_per_day) == sum(row["runs"] for row in days)
    view = results_view({"variants": []}, {"days": days})
    assert [chart["id"] for chart in view["charts"]][:2] == ["conversion-over-time", "runs-per-day"]
    drawn = sum(1 for line in series if line.points)
    assert str(view["charts"][0]["svg"]).count("<polyline") == drawn
