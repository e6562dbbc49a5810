"""Ctrl-C during a local run: every step process and the local Ray instance are stopped, the
summary says what was stopped and skipped and where the outputs are."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import alive, ctrl_c_as_in_a_terminal, descendants, small_example

pytestmark = pytest.mark.needs_java


def test_ctrl_c_stops_every_process_and_says_what_was_left(tmp_path: Path) -> None:
    manifest = small_example(tmp_path)
    runner = subprocess.Popen(
        [sys.executable, "-m", "mljob.cli", "run", str(manifest), "--runs-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    assert runner.stdout is not None
    seen = []
    for line in runner.stdout:  # plain lines: stdout is not a terminal
        seen.append(line)
        if "step train (ray): running" in line:
            break
    else:
        pytest.fail("the run ended before train started:\n" + "".join(seen))
    started = descendants(runner.pid)
    assert started, "train runs in child processes"

    runner.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    rest, _ = runner.communicate(timeout=120)
    output = "".join(seen) + rest

    assert runner.returncode == 130  # 128 + SIGINT, as shells report a Ctrl-C
    assert "Interrupted: stopped every step process and the local Ray instance." in output
    lines = [line.split()[:3] for line in output.splitlines()]
    assert ["prepare", "spark", "succeeded"] in lines
    assert ["train", "ray", "stopped"] in lines
    assert ["evaluate", "ray", "skipped"] in lines
    assert f"Outputs: {tmp_path}" in output
    deadline = time.monotonic() + 30
    while (left := [p for p in started if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)  # reaping by init can lag a moment behind the group's SIGKILL
    assert not left, f"processes left behind: {left}"
    assert list((tmp_path / "churn" / "run-1" / "prepare" / "features" / "train").glob("*.parquet"))
