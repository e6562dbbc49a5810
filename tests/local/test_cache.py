"""Local runs honour the cache across runs (issue 13): a `cache: true` step whose fingerprint
and inputs match an earlier local run's is not run, and the steps after it read that run's
outputs (MLJOB_INPUT_<STEP>); a step that exits 0 without a declared output fails, naming it,
before the next step starts. Real local Ray, tiny steps."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest
import yaml

from mljob.local.runner import RunOptions, run_local

RAY = {"rayVersion": "2.60.0"}
# Writes <its output>/data.txt: its input's data.txt (if it has an input) or the run it ran in,
# then its arguments.
STEP = """\
import os, pathlib, sys
out = pathlib.Path(os.environ["MLJOB_OUTPUT_PATH"])
out.mkdir(parents=True, exist_ok=True)
source = os.environ.get("MLJOB_INPUT_A")
own = "a@run-" + os.environ["MLJOB_RUN"]
text = (pathlib.Path(source) / "data.txt").read_text() if source else own
(out / "data.txt").write_text(" ".join([text, *sys.argv[1:]]))
"""


def manifest(b_arg: str = "v1", a_key: str = "k1", a_outputs: list[str] | None = None) -> dict:
    return {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "MLJob",
        "metadata": {"name": "cached"},
        "spec": {
            "image": "example.com/cached:1",
            "steps": [
                {
                    "name": "a",
                    "cache": True,
                    "cacheKey": a_key,
                    "outputs": a_outputs or ["data.txt"],
                    "ray": {"entrypoint": "python /app/step.py", **RAY},
                },
                {
                    "name": "b",
                    "cache": True,
                    "ray": {"entrypoint": f"python /app/step.py {b_arg}", **RAY},
                },
            ],
        },
    }


def run(app: Path, job: dict) -> tuple[int, str]:
    path = app / "mljob.yaml"
    path.write_text(yaml.safe_dump(job))
    out = io.StringIO()
    code = run_local(copy.deepcopy(job), path, RunOptions(runs_dir=app / "runs"), out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, str]]]:
    app = tmp_path_factory.mktemp("cache")
    (app / "step.py").write_text(STEP)
    results = [
        run(app, manifest()),  # run 1: both run
        run(app, manifest(b_arg="v2")),  # run 2: only b changed
        run(app, manifest(b_arg="v2", a_key="k2")),  # run 3: a's cacheKey bumped
    ]
    return app / "runs" / "cached", results


def test_a_rerun_skips_the_unchanged_step_and_reads_its_earlier_outputs(runs) -> None:
    folder, results = runs
    assert [code for code, _ in results] == [0, 0, 0], results
    second = results[1][1]
    assert "Step a not run: the outputs of run 1 are reused (cache)" in second, second
    assert not (folder / "run-2" / "_logs" / "a.log").exists()
    assert (folder / "run-2" / "b" / "data.txt").read_text() == "a@run-1 v2"
    records = json.loads((folder / "cache.json").read_text())
    assert [(r["step"], r["run"], r["inputs"]) for r in records] == [
        ("a", 1, {}),
        ("b", 1, {"a": 1}),
        ("b", 2, {"a": 1}),
        ("a", 3, {}),
        ("b", 3, {"a": 3}),
    ]


def test_a_cache_key_bump_runs_the_step_and_the_steps_after_it(runs) -> None:
    folder, results = runs
    assert "not run" not in results[2][1]
    assert (folder / "run-3" / "b" / "data.txt").read_text() == "a@run-3 v2"


def test_a_missing_declared_output_fails_the_step_before_the_next_starts(tmp_path: Path) -> None:
    (tmp_path / "step.py").write_text(STEP)
    code, output = run(tmp_path, manifest(a_outputs=["data.txt", "model/"]))
    missing = tmp_path / "runs" / "cached" / "run-1" / "a" / "model"
    assert code == 1
    assert f"Step a failed: exited 0 but did not write its declared output {missing}" in output
    assert not (tmp_path / "runs" / "cached" / "run-1" / "_logs" / "b.log").exists()
    assert not (tmp_path / "runs" / "cached" / "cache.json").exists()


# --- the pure parts ------------------------------------------------------------------------------
def test_the_local_env_points_inputs_at_the_run_they_come_from() -> None:
    from mljob.local import plan

    layout = plan.RunLayout(app_dir=Path("/app"), data_dir=Path("/runs/cached/run-4"), run=4)
    job = manifest()
    env = plan.step_env(job, job["spec"]["steps"][1], layout, {"a": 2})
    assert env["MLJOB_OUTPUT_PATH"] == "/runs/cached/run-4/b"
    assert env["MLJOB_INPUT_A"] == "/runs/cached/run-2/a"
    assert env["MLJOB_DATA_PATH"] == "/runs/cached/run-4"
    default = plan.step_env(job, job["spec"]["steps"][1], layout)
    assert default["MLJOB_INPUT_A"] == "/runs/cached/run-4/a"
    assert layout.cache_file == Path("/runs/cached/cache.json")


def test_missing_outputs_are_named_in_declared_order() -> None:
    from mljob.local import plan

    step = {"outputs": ["a.txt", "model/", "b.txt"]}
    assert plan.missing_outputs(step, lambda o: o == "a.txt") == ["model/", "b.txt"]
    assert plan.missing_outputs({}, lambda o: False) == []
