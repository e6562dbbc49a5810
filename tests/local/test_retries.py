"""Local runs retry a failed step as the operator does: `retries` more attempts, after
`backoffSeconds` doubled per failed attempt, each attempt with the run's same env (its
MLJOB_CHECKPOINT_PATH included), and say so on the screen."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from mljob.local.runner import RunOptions, run_local

RAY = {"rayVersion": "2.60.0"}
# Fails on its first `FAILS` attempts (counted in a marker file), then succeeds; every attempt
# records the checkpoint path it was given.
FLAKY = """\
import os, pathlib, sys
marker = pathlib.Path(sys.argv[1])
seen = marker.read_text().splitlines() if marker.exists() else []
seen.append(os.environ["MLJOB_CHECKPOINT_PATH"])
marker.write_text("\\n".join(seen))
print(f"attempt {len(seen)} of the flaky step")
sys.exit(3 if len(seen) <= int(sys.argv[2]) else 0)
"""


@pytest.fixture(scope="module")
def retried_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path, Path]:
    app = tmp_path_factory.mktemp("retries")
    (app / "flaky.py").write_text(FLAKY)
    markers = app / "markers"
    markers.mkdir()
    manifest = {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "MLJob",
        "metadata": {"name": "flaky"},
        "spec": {
            "image": "example.com/flaky:1",
            "steps": [
                {  # fails twice, succeeds on its third and last attempt
                    "name": "train",
                    "ray": {"entrypoint": f"python /app/flaky.py {markers / 'train'} 2", **RAY},
                    "retries": 2,
                    "backoffSeconds": 1,
                },
                {  # fails every time: two attempts, then the run fails
                    "name": "evaluate",
                    "ray": {"entrypoint": f"python /app/flaky.py {markers / 'evaluate'} 9", **RAY},
                    "retries": 1,
                    "backoffSeconds": 1,
                },
            ],
        },
    }
    path = app / "mljob.yaml"
    path.write_text(yaml.safe_dump(manifest))
    out = io.StringIO()
    runs = app / "runs"
    code = run_local(manifest, path, RunOptions(runs_dir=runs), out=out)
    return code, out.getvalue(), markers, runs / "flaky" / "run-1"


def test_a_step_is_retried_until_it_succeeds_with_the_operators_backoff(
    retried_run: tuple[int, str, Path, Path],
) -> None:
    _, output, markers, _ = retried_run
    assert "Step train failed (attempt 1/3), retrying in 1s: exit code 3" in output, output
    assert "Step train failed (attempt 2/3), retrying in 2s: exit code 3" in output, output
    assert "Step train failed (attempt 3/3)" not in output
    assert ["train", "ray", "succeeded"] in [line.split()[:3] for line in output.splitlines()]
    assert len((markers / "train").read_text().splitlines()) == 3
    assert "retries" not in next(
        (line for line in output.splitlines() if line.startswith("Not applied")), ""
    )


def test_every_attempt_of_a_run_gets_the_same_checkpoint_path(
    retried_run: tuple[int, str, Path, Path],
) -> None:
    _, _, markers, run_dir = retried_run
    paths = set((markers / "train").read_text().splitlines())
    assert paths == {str(run_dir / "_checkpoints" / "train")}


def test_the_last_failed_attempt_fails_the_run_and_every_attempt_is_logged(
    retried_run: tuple[int, str, Path, Path],
) -> None:
    code, output, markers, run_dir = retried_run
    assert code == 1
    assert "Step evaluate failed (attempt 1/2), retrying in 1s: exit code 3" in output
    assert "Step evaluate failed (attempt 2/2): exit code 3" in output
    assert ["evaluate", "ray", "failed"] in [line.split()[:3] for line in output.splitlines()]
    assert len((markers / "evaluate").read_text().splitlines()) == 2
    log = (run_dir / "_logs" / "train.log").read_text()
    for attempt in (1, 2, 3):
        assert f"attempt {attempt} of the flaky step" in log
    assert "--- attempt 3 ---" in log
