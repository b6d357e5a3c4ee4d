"""Secrets never leave through a side door: an API key that cannot travel in a header is refused at construction
without being echoed; a valid key never appears in an exception, a log record (httpx and httpcore at DEBUG
included), ``stats()`` or the CLI's output; a password in ``base_url`` is never logged nor sent."""

from __future__ import annotations

import logging
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptstream import ConfigurationError, PromptStreamClient, PromptStreamError
from promptstream._config import redact_url
from promptstream._privacy import _warned_hosts
from promptstream.cli import main

from .helpers import API_KEY, make_run

VISIBLE = string.ascii_letters + string.digits + string.punctuation  # '!' .. '~'
FIXTURES = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# A key that cannot travel in an HTTP header: a long visible head (so it cannot match a message by chance), then at
# least one control, space, DEL or non-ASCII character anywhere.
bad_char = st.one_of(
    st.characters(max_codepoint=0x20),
    st.just("\x7f"),
    st.characters(min_codepoint=0x80, exclude_categories=["Cs"]),
    st.sampled_from(["\x00", "\x0b", "\r", "\n", "é", "\u2028"]),
)
bad_keys = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(VISIBLE, min_size=16, max_size=40),
    bad_char,
    st.text(max_size=10),
)
good_keys = st.text(VISIBLE, min_size=20, max_size=64).map(lambda k: "ps_" + k)


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "promptstream", "h11"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@FIXTURES
@given(key=bad_keys, via_env=st.booleans())
def test_keys_that_cannot_travel_are_refused_without_being_echoed(
    key: str, via_env: bool, debug_logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    debug_logs.clear()
    if via_env and "\x00" not in key:
        monkeypatch.setenv("PROMPTSTREAM_API_KEY", key)
        args: tuple[str, ...] = ()
    else:
        args = (key,)
    with pytest.raises(ConfigurationError) as info:
        PromptStreamClient(*args, base_url="http://127.0.0.1:9", spool_dir=tmp_path)
    assert key not in str(info.value) and key not in repr(info.value)
    assert "api_key" in str(info.value)
    assert key not in _everything_logged(debug_logs)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=bad_keys)
def test_cli_refuses_such_keys_without_echoing_them(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    if "\x00" in key:
        key = key.replace("\x00", "\x01")  # argv cannot carry NUL
    code = main(
        ["prompts", "list", f"--api-key={key}", "--base-url", "http://127.0.0.1:9"]
    )  # "=": a key may start with "-"
    out, err = capsys.readouterr()
    assert code == 1
    assert "api_key" in err
    assert key not in out and key not in err


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=good_keys)
def test_a_valid_key_never_shows_in_errors_logs_or_stats(
    key: str, server: Any, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    """The server does not know this key (401) and a second client cannot reach its server at all: every error,
    log record and stats field of both is searched for the key."""
    debug_logs.clear()
    run_id, experiment_id = make_run(server)
    seen: list[str] = []
    for url in (server.url, "http://127.0.0.1:9"):
        client = PromptStreamClient(
            key,
            base_url=url,
            spool_dir=tmp_path / str(len(seen)),
            max_retries=0,
            on_error=lambda e, seen=seen: seen.append(repr(e)),
        )
        try:
            with pytest.raises(PromptStreamError) as info:
                client.run_prompt("p", {"x": 1})
            seen += [str(info.value), repr(info.value), repr(info.value.__cause__), repr(client)]
            client.track_click(run_id, experiment_id, "cta")
            client.flush(timeout=0.5)
            seen.append(repr(client.stats()))
        finally:
            client.close(timeout=0.2)
    seen.append(_everything_logged(debug_logs))
    assert not [text for text in seen if key in text]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    user=st.text(string.ascii_letters, min_size=1, max_size=8),
    password=st.text(string.ascii_letters + string.digits, min_size=12, max_size=24),
    host=st.sampled_from(["promptstream.example.com", "10.1.2.3", "[2001:db8::1]"]),
)
def test_a_password_in_base_url_is_never_logged(
    user: str, password: str, host: str, debug_logs: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _warned_hosts.clear()
    debug_logs.clear()
    client = PromptStreamClient("ps_key_0123456789", base_url=f"http://{user}:{password}@{host}:8700", spool=False)
    try:
        logged = _everything_logged(debug_logs)
        assert "plain http" in logged  # the warning still names the host
        assert password not in logged and password not in repr(client) and password not in client.base_url
    finally:
        client.close(timeout=0)


def test_credentials_in_base_url_do_not_replace_the_api_key(
    server: Any, spool_dir: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    """httpx would turn ``user:password@`` into Basic auth instead of the Bearer key: every call would be a 401,
    and httpx's own INFO log would print the password with each request URL."""
    from .helpers import API_KEY

    url = server.url.replace("http://", "http://someone:hunter2hunter2@")
    prompt = server.create_prompt()
    with PromptStreamClient(API_KEY, base_url=url, spool_dir=spool_dir) as client:
        run = client.run_prompt(prompt["prompt_id"], {"name": "x"})
        assert run.output
    assert "hunter2hunter2" not in _everything_logged(debug_logs)


@given(
    secret=st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=6, max_size=20).filter(
        str.isalnum
    ),
    where=st.sampled_from(["userinfo", "password", "query", "fragment"]),
)
def test_redact_url_hides_every_place_a_secret_can_sit_in_a_url(secret: str, where: str) -> None:
    url = {
        "userinfo": f"https://{secret}@ps.example.com/api",
        "password": f"https://me:{secret}@ps.example.com/api",
        "query": f"https://ps.example.com/api?token={secret}",
        "fragment": f"https://ps.example.com/api#{secret}",
    }[where]
    shown = redact_url(url)
    assert secret not in shown
    assert shown.startswith("https://") and "ps.example.com/api" in shown


def test_a_base_url_with_a_query_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        PromptStreamClient(API_KEY, base_url="http://127.0.0.1:9/api?token=hunter2secret", disabled=True)
    assert "hunter2secret" not in str(info.value)
