"""Ray step `train`: data-parallel gradient-boosted trees with Ray Train (XGBoost).

Reads $MLJOB_INPUT_PREPARE/features/train with Ray Data, holds out a validation split, trains on
`--workers` Ray Train workers (each gets a shard; XGBoost's collective syncs the histograms),
and writes model/model.json and model/train_metrics.json (validation metrics and baseline).
GPU: give the step's workers a GPU (workers.gpu) and training uses `device=cuda` on them.

Resumes instead of restarting: every `--checkpoint-every` rounds the model is reported to Ray
Train as a checkpoint, stored under $MLJOB_CHECKPOINT_PATH (the same for every attempt of the
run). A retry of the step (the MLJob's `retries`) runs the same Ray Train run again; Ray Train
finds the latest checkpoint there, and training goes on from its round.

Fault switch, for tests only: MLJOB_EXAMPLE_FAIL_AFTER_ROUND=N kills a training worker once,
right after the checkpoint of round N is registered (a marker under the checkpoint path keeps the
retry from failing again).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from pathlib import PurePosixPath

import numpy as np
import pyarrow.fs
import ray
import ray.data
import ray.train
import xgboost
from churn_common import (
    LABEL,
    MODEL_FILE,
    TRAIN_METRICS_FILE,
    classification_metrics,
    input_uri,
    to_arrow_uri,
    write_json,
)
from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus-per-worker", type=float, default=1)
    parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        help="default: 1 if the Ray cluster has a GPU per worker (the step's workers.gpu), else 0",
    )
    parser.add_argument("--rounds", type=int, default=120)
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=10,
        help="rounds between checkpoints (each is a synchronous round trip through Ray Train)",
    )
    return parser.parse_args()


def train_loop(config: dict) -> None:
    """Runs on every Ray Train worker, on its own shard of the data."""
    train_frame = ray.train.get_dataset_shard("train").materialize().to_pandas()
    valid_frame = ray.train.get_dataset_shard("valid").materialize().to_pandas()
    dtrain = xgboost.DMatrix(train_frame.drop(columns=[LABEL]), label=train_frame[LABEL])
    dvalid = xgboost.DMatrix(valid_frame.drop(columns=[LABEL]), label=valid_frame[LABEL])
    # The latest checkpoint of this Ray Train run: one an earlier attempt of the step saved.
    checkpoint = ray.train.get_checkpoint()
    booster = RayTrainReportCallback.get_model(checkpoint) if checkpoint else None
    start = booster.num_boosted_rounds() if booster else 0
    if ray.train.get_context().get_world_rank() == 0:
        print(
            f"resumed from checkpoint at round {start}" if booster else "starting from round 0",
            flush=True,
        )
    xgboost.train(
        config["params"],
        dtrain,
        num_boost_round=config["rounds"] - start,  # the rounds still to do
        xgb_model=booster,
        evals=[(dvalid, "valid")],
        verbose_eval=20,
        callbacks=[Checkpoints(config["checkpoint_every"], config["fault"])],
    )


class Checkpoints(xgboost.callback.TrainingCallback):
    """Report the model to Ray Train as a checkpoint every `every` rounds and at the end (rank
    0 writes it; every worker reports, Ray Train waits for all). Nothing in between: each report
    is a synchronous round trip through the Ray Train controller, seconds per round on 2 cores
    (RayTrainReportCallback reports metrics every round)."""

    def __init__(self, every: int, fault: dict) -> None:
        self.every, self.fault = every, fault
        self.reported = -1

    def after_iteration(self, model: xgboost.Booster, epoch: int, evals_log: dict) -> bool:
        done = model.num_boosted_rounds()  # rounds of the whole model, resumed ones included
        if done % self.every == 0:
            self._report(model, evals_log)
            if done == self.fault.get("after_round"):
                fail_once(self.fault["marker"])
        return False  # never stop early

    def after_training(self, model: xgboost.Booster) -> xgboost.Booster:
        if model.num_boosted_rounds() != self.reported:
            self._report(model, {})
        return model

    def _report(self, model: xgboost.Booster, evals_log: dict) -> None:
        self.reported = model.num_boosted_rounds()
        metrics = {f"valid-{k}": v[-1] for k, v in evals_log.get("valid", {}).items()}
        metrics["round"] = self.reported
        with tempfile.TemporaryDirectory() as folder:
            saved = None
            if ray.train.get_context().get_world_rank() == 0:
                model.save_model(f"{folder}/{RayTrainReportCallback.CHECKPOINT_NAME}")
                saved = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved)


def fail_once(marker: str) -> None:
    """The fault switch: kill this worker (rank 0) the first time only, once Ray Train has
    registered the checkpoint just reported, so that the retry resumes from exactly it."""
    if ray.train.get_context().get_world_rank() != 0:
        return
    fs, path = pyarrow.fs.FileSystem.from_uri(marker)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
        return  # the retry: the fault already happened
    wait_until_registered(ray.train.get_checkpoint())
    fs.create_dir(str(PurePosixPath(path).parent), recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(b"killed once\n")
    print("fault switch: killing a training worker", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def wait_until_registered(checkpoint: ray.train.Checkpoint | None, timeout: float = 120) -> None:
    """A report returns once the checkpoint is uploaded; the Ray Train controller records it in
    its snapshot (what a new attempt resumes from) a moment later."""
    storage = ray.train.get_context().get_storage()
    fs, snapshot = storage.storage_filesystem, storage.checkpoint_manager_snapshot_path
    name = PurePosixPath(checkpoint.path).name if checkpoint else ""
    deadline = time.monotonic() + timeout
    while name and time.monotonic() < deadline:
        if fs.get_file_info(snapshot).type == pyarrow.fs.FileType.File:
            with fs.open_input_stream(snapshot) as stream:
                if name in stream.read().decode():
                    return
        time.sleep(0.2)  # polling the controller's file: no event to wait on


def main() -> None:
    args = parse_args()
    ray.init()
    if args.gpus_per_worker is None:
        enough_gpus = ray.cluster_resources().get("GPU", 0) >= args.workers
        args.gpus_per_worker = 1.0 if enough_gpus else 0.0
    features = ray.data.read_parquet(input_uri("prepare", "features/train"))
    train_set, valid_set = features.train_test_split(test_size=0.15, shuffle=True, seed=1)
    params = {
        "objective": "binary:logistic",
        "eval_metric": ["logloss", "auc"],
        "tree_method": "hist",
        "device": "cuda" if args.gpus_per_worker > 0 else "cpu",
        "max_depth": 5,
        "eta": 0.1,
        "subsample": 0.9,
        "nthread": max(1, int(args.cpus_per_worker)),
    }
    resources = {"CPU": args.cpus_per_worker, "GPU": args.gpus_per_worker}
    storage = checkpoint_storage()
    fault = {}  # the fault switch: only tests set it
    if os.environ.get(FAIL_AFTER_ROUND_ENV):
        after_round = int(os.environ[FAIL_AFTER_ROUND_ENV])
        fault = {"after_round": after_round, "marker": f"{storage}/{FAULT_MARKER}"}
    trainer = XGBoostTrainer(
        train_loop,
        train_loop_config={
            "params": params,
            "rounds": args.rounds,
            "checkpoint_every": args.checkpoint_every,
            "fault": fault,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=args.workers,
            use_gpu=args.gpus_per_worker > 0,
            resources_per_worker=resources,
        ),
        # The same name and storage on every attempt: Ray Train finds the run's snapshot there
        # and hands its latest checkpoint to ray.train.get_checkpoint().
        run_config=ray.train.RunConfig(
            name=RAY_TRAIN_RUN,
            storage_path=storage,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": train_set, "valid": valid_set},
    )
    result = trainer.fit()
    booster = RayTrainReportCallback.get_model(result.checkpoint)
    print(f"model of {booster.num_boosted_rounds()} rounds written to", save_model(booster))

    valid = valid_set.to_pandas()
    probabilities = booster.predict(xgboost.DMatrix(valid.drop(columns=[LABEL])))
    metrics = classification_metrics(valid[LABEL].to_numpy(), np.asarray(probabilities))
    metrics["workers"] = args.workers
    print("validation metrics:", json.dumps(metrics, sort_keys=True))
    print("metrics written to", write_json(TRAIN_METRICS_FILE, metrics))


RAY_TRAIN_RUN = "churn-xgboost"
FAIL_AFTER_ROUND_ENV = "MLJOB_EXAMPLE_FAIL_AFTER_ROUND"
FAULT_MARKER = "fault-switch-fired"


def checkpoint_storage() -> str:
    """Ray Train's storage_path: $MLJOB_CHECKPOINT_PATH (shared storage such as s3:// on a
    cluster, so a retry on a new RayCluster finds it), or a temporary folder without one
    (no spec.dataPath: nothing to resume from)."""
    path = os.environ.get("MLJOB_CHECKPOINT_PATH", "")
    if not path:
        print("MLJOB_CHECKPOINT_PATH is empty (no dataPath): a retry starts from round 0")
        return tempfile.mkdtemp(prefix="churn-train-")
    return to_arrow_uri(path)


def save_model(booster: xgboost.Booster) -> str:
    return write_json(MODEL_FILE, json.loads(booster.save_raw("json").decode()))


if __name__ == "__main__":
    main()
