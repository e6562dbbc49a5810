"""Ray step `train`: data-parallel gradient-boosted trees with Ray Train (XGBoost).

Reads $MLJOB_INPUT_PREPARE/features/train with Ray Data, holds out a validation split, trains on
`--workers` Ray Train workers (each gets a shard; XGBoost's collective syncs the histograms),
and writes model/model.json and model/train_metrics.json (validation metrics and baseline).
GPU: give the step's workers a GPU (workers.gpu) and training uses `device=cuda` on them.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import ray
import ray.data
import ray.train
import xgboost
from churn_common import (
    LABEL,
    MODEL_FILE,
    TRAIN_METRICS_FILE,
    classification_metrics,
    data_uri,
    input_uri,
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
    return parser.parse_args()


def train_loop(config: dict) -> None:
    """Runs on every Ray Train worker, on its own shard of the data."""
    train_frame = ray.train.get_dataset_shard("train").materialize().to_pandas()
    valid_frame = ray.train.get_dataset_shard("valid").materialize().to_pandas()
    dtrain = xgboost.DMatrix(train_frame.drop(columns=[LABEL]), label=train_frame[LABEL])
    dvalid = xgboost.DMatrix(valid_frame.drop(columns=[LABEL]), label=valid_frame[LABEL])
    booster = xgboost.train(
        config["params"],
        dtrain,
        num_boost_round=config["rounds"],
        evals=[(dvalid, "valid")],
        verbose_eval=20,
    )
    # One report at the end. RayTrainReportCallback reports every round, and each report is a
    # synchronous round trip through the Ray Train controller: seconds per round on 2 cores.
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if ray.train.get_context().get_world_rank() == 0:
            booster.save_model(f"{folder}/{RayTrainReportCallback.CHECKPOINT_NAME}")
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report({"rounds": config["rounds"]}, checkpoint=checkpoint)


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
    storage = tempfile.mkdtemp(prefix="churn-train-") if "://" not in data_uri("") else None
    trainer = XGBoostTrainer(
        train_loop,
        train_loop_config={"params": params, "rounds": args.rounds},
        scaling_config=ray.train.ScalingConfig(
            num_workers=args.workers,
            use_gpu=args.gpus_per_worker > 0,
            resources_per_worker=resources,
        ),
        run_config=ray.train.RunConfig(
            name="churn-xgboost", storage_path=storage or data_uri("_ray_train")
        ),
        datasets={"train": train_set, "valid": valid_set},
    )
    result = trainer.fit()
    booster = RayTrainReportCallback.get_model(result.checkpoint)
    print("model written to", save_model(booster))

    valid = valid_set.to_pandas()
    probabilities = booster.predict(xgboost.DMatrix(valid.drop(columns=[LABEL])))
    metrics = classification_metrics(valid[LABEL].to_numpy(), np.asarray(probabilities))
    metrics["workers"] = args.workers
    print("validation metrics:", metrics)
    print("metrics written to", write_json(TRAIN_METRICS_FILE, metrics))


def save_model(booster: xgboost.Booster) -> str:
    import json

    return write_json(MODEL_FILE, json.loads(booster.save_raw("json").decode()))


if __name__ == "__main__":
    main()
