"""``promptstream demo``: the peeking-safe rule as users arrive, and ``--plot`` checked before the demo starts."""

from __future__ import annotations

import re
import sys
from pathlib import Path

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
