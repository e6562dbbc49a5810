"""The churn example's training resumes from its checkpoint when a local retry runs it again
(issue 12): one run trains twice on the same features, once without a fault and once with the
example's fault switch, which kills a training worker once, right after the checkpoint of round
FAIL_AFTER is registered. The retry's own output must say it resumed there (not round 0), and
its final model must be as good as the uninterrupted one."""

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

# Two trainings and a retry: minutes on a busy 2-core machine (the suite default is 600 s).
pytestmark = [pytest.mark.needs_java, pytest.mark.timeout(1800)]

ROUNDS, EVERY, FAIL_AFTER = 40, 10, 20
# Both models see the same rows and validation split and end with ROUNDS trees, but they are
# not bit-identical: Ray Data hands the two workers other shards on each training, and the
# resumed booster restarts XGBoost's row subsampling (subsample 0.9) from its seed at round
# FAIL_AFTER. Two trainings of this size on ~2,500 validation rows differ by about 0.01 either
# way (measured in three runs, resumed minus uninterrupted: AUC +0.013, +0.010, +0.001; accuracy
# +0.008, +0.010, -0.008; log loss -0.013, -0.010, +0.010), so "as good as" is one-sided with
# a margin above that noise. What resuming itself must get right, the rounds, is checked
# exactly (resumed at FAIL_AFTER, a model of ROUNDS rounds).
TOLERANCE = 0.025


@dataclass
class Training:
    log: str
    metrics: dict


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Training], Path]:
    tmp = tmp_path_factory.mktemp("resume")
    manifest = small_example(tmp)
    mljob = yaml.safe_load(manifest.read_text())
    steps = {s["name"]: s for s in mljob["spec"]["steps"]}
    train = steps["train"]
    train["ray"]["entrypoint"] = (
        f"python /app/train.py --workers 2 --rounds {ROUNDS} --checkpoint-every {EVERY}"
    )
    faulted = yaml.safe_load(yaml.safe_dump(train))
    faulted.pop("cache", None)
    # After train (not beside it: the same 2 CPUs), on prepare's features (MLJOB_INPUT_PREPARE).
    faulted.update({"name": "train-faulted", "dependsOn": ["prepare", "train"], "retries": 1})
    faulted["backoffSeconds"] = 1
    faulted["ray"]["runtimeEnv"] = {"env_vars": {"MLJOB_EXAMPLE_FAIL_AFTER_ROUND": str(FAIL_AFTER)}}
    mljob["spec"]["steps"] = [steps["prepare"], train, faulted]
    manifest.write_text(yaml.safe_dump(mljob, sort_keys=False))
    out = io.StringIO()
    runs = tmp / "runs"
    code = run_local(mljob, manifest, RunOptions(runs_dir=runs), out=out)
    run_dir = runs / "churn" / "run-1"
    logs = run_dir / "_logs"
    trainings = {}
    for name in ("train", "train-faulted"):
        log = (logs / f"{name}.log").read_text()
        found = re.findall(r"^validation metrics: (\{.*\})$", log, re.MULTILINE)
        trainings[name] = Training(log, json.loads(found[-1]) if found else {})
    return code, out.getvalue(), trainings, run_dir


def test_the_faulted_training_failed_once_and_was_retried(
    run: tuple[int, str, dict[str, Training], Path],
) -> None:
    code, output, trainings, run_dir = run
    assert code == 0, output
    assert "Step train-faulted failed (attempt 1/2), retrying in 1s" in output
    first, retry = trainings["train-faulted"].log.split("\n--- attempt 2 ---\n")
    assert "starting from round 0" in first
    # Fired once: its marker is under the step's checkpoint path, and the retry ran through.
    assert (run_dir / "_checkpoints" / "train-faulted" / "fault-switch-fired").is_file()
    assert "fault switch" not in retry
    assert not (run_dir / "_checkpoints" / "train" / "fault-switch-fired").exists()


def test_the_retry_resumed_from_the_checkpoint_not_from_round_0(
    run: tuple[int, str, dict[str, Training], Path],
) -> None:
    _, _, trainings, _ = run
    retry = trainings["train-faulted"].log.split("\n--- attempt 2 ---\n")[1]
    assert f"resumed from checkpoint at round {FAIL_AFTER}" in retry, retry[-3000:]
    assert "starting from round 0" not in retry
    assert f"model of {ROUNDS} rounds written" in retry
    clean = trainings["train"].log
    assert "starting from round 0" in clean and "resumed from checkpoint" not in clean


def test_the_resumed_model_is_as_good_as_the_uninterrupted_one(
    run: tuple[int, str, dict[str, Training], Path],
) -> None:
    _, _, trainings, _ = run
    clean, resumed = trainings["train"].metrics, trainings["train-faulted"].metrics
    assert clean and resumed, "both trainings print their validation metrics"
    assert clean["rows"] == resumed["rows"]
    assert resumed["auc"] >= clean["auc"] - TOLERANCE, (clean, resumed)
    assert resumed["accuracy"] >= clean["accuracy"] - TOLERANCE, (clean, resumed)
    assert resumed["log_loss"] <= clean["log_loss"] + TOLERANCE, (clean, resumed)
    assert resumed["accuracy"] > resumed["baseline"]["accuracy"] + 0.03, resumed
