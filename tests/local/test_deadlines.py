"""Local runs honour activeDeadlineSeconds (the step's and the pipeline's) like the cluster does,
and say which fields they do not apply."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from .conftest import alive, descendants

pytestmark = pytest.mark.needs_java


def test_a_step_past_its_active_deadline_is_stopped_and_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "forever.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    spark = {"mainApplicationFile": "local:///app/forever.py", "sparkVersion": "4.0.1"}
    manifest = {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "MLJob",
        "metadata": {"name": "slow"},
        "spec": {
            "image": "example.com/slow:1",
            "steps": [
                {
                    "name": "wait",
                    "spark": spark,
                    "activeDeadlineSeconds": 5,  # per attempt; a stopped attempt is retried
                    "retries": 1,
                    "backoffSeconds": 1,
                    "startDeadlineSeconds": 60,  # not applied locally
                },
                {"name": "after", "spark": spark},
            ],
        },
    }
    path = tmp_path / "mljob.yaml"
    path.write_text(yaml.safe_dump(manifest))
    runner = subprocess.Popen(
        [sys.executable, "-m", "mljob.cli", "run", str(path), "--runs-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert runner.stdout is not None

    def stop_everything() -> None:  # without the deadline the step would never end
        for pid in descendants(runner.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        runner.kill()

    watchdog = threading.Timer(120, stop_everything)
    watchdog.start()
    seen, started = [], set()
    for line in runner.stdout:  # the run ends by itself: the deadline stops the step
        seen.append(line)
        started |= descendants(runner.pid)  # the spark-submit JVM and its Python worker
    runner.wait(timeout=60)
    watchdog.cancel()
    output = "".join(seen)
    assert started, "the step ran in child processes"

    assert runner.returncode == 1, output
    assert "Not applied in a local run: startDeadlineSeconds of step(s) wait" in output
    expired = "activeDeadlineSeconds (5s) expired, stopped"
    assert f"Step wait failed (attempt 1/2), retrying in 1s: {expired}" in output
    assert f"Step wait failed (attempt 2/2): {expired}" in output
    lines = [line.split()[:3] for line in output.splitlines()]
    assert ["wait", "spark", "failed"] in lines
    assert ["after", "spark", "skipped"] in lines
    deadline = time.monotonic() + 30
    while (left := [p for p in started if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)  # reaping by init can lag a moment behind the group's SIGKILL
    assert not left, f"processes left behind: {left}"
