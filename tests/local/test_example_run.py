"""The churn example end to end with real PySpark and Ray (small data), and a failing step.
One run per module-scoped fixture serves several assertions."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mljob.local.runner import RunOptions, run_local

from .conftest import small_example

# The whole example (Spark, Ray Train, Ray Data, Ray Serve) in one module fixture: more than the
# suite's 600 s per test on a loaded 2-core machine (measured: > 600 s at load 36).
pytestmark = [pytest.mark.needs_java, pytest.mark.timeout(1200)]


@dataclass
class Finished:
    exit_code: int
    output: str
    run_dir: Path


def run_example(tmp_path: Path, break_step: str | None = None) -> Finished:
    manifest = small_example(tmp_path, break_step=break_step, serve=True)
    out = io.StringIO()
    runs_dir = tmp_path / "runs"
    options = RunOptions(runs_dir=runs_dir, exit_after_smoke=True)  # as `make example`
    code = run_local(yaml.safe_load(manifest.read_text()), manifest, options, out=out)
    return Finished(code, out.getvalue(), runs_dir / "churn" / "run-1")


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    return run_example(tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    return run_example(tmp_path_factory.mktemp("failing"), break_step="train")


def test_example_succeeds_and_reports_every_step(example_run: Finished) -> None:
    assert example_run.exit_code == 0, example_run.output
    steps = (("prepare", "spark"), ("train", "ray"), ("evaluate", "ray"), ("serve", "serve"))
    for step, engine in steps:
        assert any(
            line.split()[:3] == [step, engine, "succeeded"]
            for line in example_run.output.splitlines()
        ), example_run.output


def test_example_writes_features_model_and_logs(example_run: Finished) -> None:
    run_dir = example_run.run_dir
    # each step writes under its own folder, MLJOB_OUTPUT_PATH = <run>/<step>
    assert list((run_dir / "prepare" / "features" / "train").glob("*.parquet"))
    assert list((run_dir / "prepare" / "features" / "holdout").glob("*.parquet"))
    assert (run_dir / "train" / "model" / "model.json").stat().st_size > 0
    assert list((run_dir / "evaluate" / "evaluation" / "scores").glob("*.parquet"))
    for step in ("prepare", "train", "evaluate"):
        assert (run_dir / "_logs" / f"{step}.log").stat().st_size > 0


def test_model_clearly_beats_the_baseline(example_run: Finished) -> None:
    for metrics_file in ("train/model/train_metrics.json", "evaluate/evaluation/metrics.json"):
        metrics = json.loads((example_run.run_dir / metrics_file).read_text())
        assert metrics["auc"] > 0.75, metrics
        assert metrics["accuracy"] > metrics["baseline"]["accuracy"] + 0.03, metrics
        assert metrics["log_loss"] < metrics["baseline"]["log_loss"] - 0.05, metrics


def test_the_result_is_shown_at_the_end(example_run: Finished) -> None:
    metrics_file = example_run.run_dir / "evaluate" / "evaluation" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    shown = next(
        line
        for line in example_run.output.splitlines()
        if line.startswith("evaluate/evaluation/metrics")
    )
    assert f"auc={metrics['auc']:.4g}" in shown and "baseline.auc=0.5" in shown


def test_the_served_model_answers_the_smoke_request_with_a_real_prediction(
    example_run: Finished,
) -> None:
    """The example ends like `make example`: the model `train` wrote, served by Ray Serve on
    127.0.0.1, scores the manifest's high-risk customer (month-to-month, fiber, 2 months)."""
    url = re.search(r"Step serve serves at (http://127\.0\.0\.1:\d+/churn)", example_run.output)
    assert url, example_run.output
    answer = re.search(
        rf"smoke request POST {re.escape(url.group(1))} -> 200: (\{{.*\}})", example_run.output
    )
    assert answer, example_run.output
    prediction = json.loads(answer.group(1))
    (probability,) = prediction["churn_probability"]
    assert 0.5 < probability < 1, prediction  # a churner by the data's own rule
    assert prediction["model"] == str(example_run.run_dir / "train" / "model" / "model.json")


def test_a_failing_step_stops_the_pipeline_and_keeps_earlier_outputs(failing_run: Finished) -> None:
    assert failing_run.exit_code != 0
    lines = failing_run.output.splitlines()
    assert any(line.split()[:3] == ["train", "ray", "failed"] for line in lines), failing_run.output
    assert any(line.split()[:3] == ["evaluate", "ray", "skipped"] for line in lines)
    assert any(line.split()[:3] == ["serve", "serve", "skipped"] for line in lines)
    assert "about to fail" in failing_run.output  # the tail of the failing step's log
    assert list((failing_run.run_dir / "prepare" / "features" / "train").glob("*.parquet"))
    assert not (failing_run.run_dir / "evaluation").exists()
