"""Ray step `evaluate`: score the held-out customers (prepare's features/holdout) with the
model train wrote (Ray Data batch inference) and write, under its output folder,
evaluation/metrics.json (model vs. the trivial baseline) and
evaluation/scores/ (Parquet, one churn probability per customer)."""

from __future__ import annotations

import pandas as pd
import ray
import ray.data
import xgboost
from churn_common import (
    EVALUATION_FILE,
    LABEL,
    MODEL_FILE,
    classification_metrics,
    input_uri,
    output_uri,
    read_bytes,
    write_json,
)


def load_booster(raw_model: bytes) -> xgboost.Booster:
    booster = xgboost.Booster()
    booster.load_model(bytearray(raw_model))
    return booster


def main() -> None:
    ray.init()
    raw_model = read_bytes("train", MODEL_FILE)

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        booster = load_booster(raw_model)
        features = xgboost.DMatrix(batch.drop(columns=[LABEL]))
        return pd.DataFrame({LABEL: batch[LABEL], "churn_probability": booster.predict(features)})

    scores = ray.data.read_parquet(input_uri("prepare", "features/holdout")).map_batches(
        score, batch_format="pandas"
    )
    scores.write_parquet(output_uri("evaluation/scores"))
    frame = ray.data.read_parquet(output_uri("evaluation/scores")).to_pandas()
    metrics = classification_metrics(frame[LABEL].to_numpy(), frame["churn_probability"].to_numpy())
    print("holdout metrics:", metrics)
    print("metrics written to", write_json(EVALUATION_FILE, metrics))


if __name__ == "__main__":
    main()
