"""`mljob run --local` on a machine that cannot run the pipeline: PySpark or Ray missing, or the
local Ray failing to start. Through the installed console script, as a user runs it: one clear
error, exit code 2, no traceback, nothing started or left running.

A missing package is simulated honestly for the whole process tree: a sitecustomize on
PYTHONPATH sets `sys.modules[name] = None`, which makes both `importlib.util.find_spec(name)`
and `import name` fail exactly as for a package that is not installed, in the CLI and in every
Python process it would start. Nothing of the runner is replaced."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from mljob.testing.corpus import mljob

from .conftest import alive

MLJOB = str(Path(sys.executable).parent / "mljob")  # the console script pip installed
HINT = "pip install 'mljob-operator[local]'"
TIMEOUT = 120  # seconds; each case ends in a few seconds when handled


def manifest(tmp_path: Path, step: dict) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "job.py").write_text("print('ran')\n")
    job = mljob([step])
    job["metadata"] = {"name": "broken-machine"}
    path = app / "mljob.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def spark_only(tmp_path: Path) -> Path:
    spark = {"mainApplicationFile": "local:///app/job.py", "sparkVersion": version("pyspark")}
    return manifest(tmp_path, {"name": "prepare", "spark": spark})


def ray_only(tmp_path: Path) -> Path:
    ray = {"entrypoint": "python /app/job.py", "rayVersion": version("ray")}
    return manifest(tmp_path, {"name": "train", "ray": ray})


def without(tmp_path: Path, module: str) -> dict[str, str]:
    """An environment whose Python processes all find `module` missing."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def run(path: Path, runs: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [MLJOB, "run", str(path), "--local", "--runs-dir", str(runs)]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False
    )


@pytest.mark.parametrize(
    ("module", "make", "message"),
    [
        (
            "pyspark",
            spark_only,
            "pyspark is not installed (needed for spark steps; missing pyspark)",
        ),
        ("ray", ray_only, "ray is not installed (needed for ray steps; missing ray)"),
    ],
)
def test_a_missing_engine_is_one_line_before_anything_starts(
    tmp_path: Path, module: str, make, message: str
) -> None:
    runs = tmp_path / "runs"
    result = run(make(tmp_path), runs, without(tmp_path, module))
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == f"mljob: error: {message}: {HINT}\n"
    assert not runs.exists()  # checked before the run's folder is made


def test_ray_failing_to_start_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """Ray 2.60 crashes (SIGSEGV) at start on a RAY_* setting it cannot parse, before writing
    a log line: `ray start` dies at once. The runner's own temp folder for that Ray (TMPDIR)
    must be gone afterwards and no process may carry the run's token path."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "RAY_gcs_rpc_server_reconnect_timeout_s": "abc"}
    runs = tmp_path / "runs"
    result = run(ray_only(tmp_path), runs, env)
    log = runs / "broken-machine" / "run-1" / "_logs" / "ray-head.log"
    assert result.returncode == 2, result
    assert result.stderr == (
        f"mljob: error: the local Ray instance did not start (exit code -11; log {log})\n"
    )
    assert "Traceback" not in result.stdout
    assert list(temp.iterdir()) == []  # Ray's folder and the run's token removed
    assert not _processes_mentioning(str(temp))
    assert list(log.parent.iterdir()) == [log]  # the step never started: no train.log


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment holds `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen and alive(int(entry.name)):
            found.append(int(entry.name))
    return found
