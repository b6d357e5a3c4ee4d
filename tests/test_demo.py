"""``promptstream demo``: the peeking-safe rule as users arrive, and ``--plot`` checked before the demo starts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from promptstream.cli import main


def test_demo_shows_each_look_and_when_the_peeking_safe_rule_would_have_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--users", "800", "--seed", "42"]) == 0
    out = capsys.readouterr().out
    looks = re.findall(r"^  after +([\d,]+) users: (\w+(?: \w+)?) ", out, re.MULTILINE)
    assert len(looks) == 20 and int(looks[-1][0].replace(",", "")) == 800
    stopped = [(users, action) for users, action in looks if action != "keep running"]
    summary = next(line for line in out.splitlines() if line.startswith("Peeking-safe rule:"))
    if stopped:
        users, action = stopped[0]
        assert f"would have stopped after {users} users: {action}" in summary
    else:
        assert "no stop within 800 users" in summary
    assert re.search(r"^Decision: ", out, re.MULTILINE)


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_demo_plot_without_matplotlib_fails_before_the_demo_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, suffix: str
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an environment without the extra gives: ImportError
    plot = tmp_path / f"lift{suffix}"
    assert main(["demo", "--users", "50", "--plot", str(plot)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing ran: no server, no users
    assert captured.err.count("\n") == 1 and "matplotlib" in captured.err and "promptstream[plot]" in captured.err
    assert not plot.exists()


def test_demo_dashboard_leaves_the_server_running_with_its_experiment_until_interrupted(tmp_path: Path) -> None:
    password = "demo-dashboard-password-1"
    env = {**os.environ, "PROMPTSTREAM_ADMIN_PASSWORD": password, "PYTHONUNBUFFERED": "1"}
    env.pop("PROMPTSTREAM_BASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "promptstream", "demo", "--users", "120", "--seed", "7", "--dashboard"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "the demo exited early:\n" + "".join(lines)
            lines.append(line)
            if "runs until Ctrl-C" in line:
                break
        out = "".join(lines)
        assert process.poll() is None, out
        found = re.search(r"the demo's experiment: (http://[\d.:]+)(/dashboard/experiments/(demo-seed-7))", out)
        assert found, out
        base, page, experiment_id = found.groups()
        with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as http:
            form = http.get("/dashboard/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token, form.text
            signed_in = http.post(
                "/dashboard/login",
                data={"csrf_token": token.group(1), "username": "admin", "password": password, "next": page},
            )
            assert signed_in.status_code == 303, signed_in.text
            shown = http.get(page)
            assert shown.status_code == 200 and experiment_id in shown.text
            results = httpx.get(
                f"{base}/v1/experiments/{experiment_id}/results", headers={"Authorization": "Bearer ps_demo_key"}
            ).json()
            assert sum(variant["users"] for variant in results["variants"]) == 120
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert "demo server stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
