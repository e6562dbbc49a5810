"""Helpers shared by the Ray steps of the churn example (driver side only)."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.fs

LABEL = "label"
MODEL_FILE = "model/model.json"
TRAIN_METRICS_FILE = "model/train_metrics.json"
EVALUATION_FILE = "evaluation/metrics.json"


def data_uri(relative: str) -> str:
    """A location under MLJOB_DATA_PATH, in the form pyarrow/Ray understand."""
    return f"{to_arrow_uri(os.environ['MLJOB_DATA_PATH'])}/{relative}"


def to_arrow_uri(path: str) -> str:
    """Spark's `s3a://` is `s3://` for pyarrow and Ray."""
    path = path.rstrip("/")
    return "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path


def output_uri(relative: str) -> str:
    """A location under this step's own output folder, MLJOB_OUTPUT_PATH (<run>/<step>)."""
    return f"{to_arrow_uri(os.environ['MLJOB_OUTPUT_PATH'])}/{relative}"


def input_uri(step: str, relative: str) -> str:
    """A location under the outputs of `step`, a step this one depends on: MLJOB_INPUT_<STEP>
    (an earlier run's folder when that step's outputs came from the cache)."""
    variable = "MLJOB_INPUT_" + step.upper().replace("-", "_")
    return f"{to_arrow_uri(os.environ[variable])}/{relative}"


def write_json(relative: str, payload: dict) -> str:
    """Write `payload` under this step's output folder; its URI."""
    uri = output_uri(relative)
    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(json.dumps(payload, indent=2, sort_keys=True).encode())
    return uri


def read_bytes(step: str, relative: str) -> bytes:
    """A file that `step` (a dependency of this step) wrote."""
    fs, path = pyarrow.fs.FileSystem.from_uri(input_uri(step, relative))
    with fs.open_input_stream(path) as stream:
        return stream.read()


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=float)
    # Average rank per group of equal scores.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """The model's AUC/accuracy/log loss next to the trivial baseline's (always predict the
    majority class, with the base rate as its probability)."""
    labels = labels.astype(int)
    base_rate = float(labels.mean())
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    baseline_p = np.clip(base_rate, 1e-7, 1 - 1e-7)
    return {
        "rows": len(labels),
        "positive_rate": base_rate,
        "auc": roc_auc(labels, probabilities),
        "accuracy": float(((probabilities >= 0.5).astype(int) == labels).mean()),
        "log_loss": float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))),
        "baseline": {
            "auc": 0.5,
            "accuracy": max(base_rate, 1 - base_rate),
            "log_loss": float(
                -(base_rate * np.log(baseline_p) + (1 - base_rate) * np.log(1 - baseline_p))
            ),
        },
    }
