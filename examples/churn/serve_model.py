"""Serve step `serve`: the model `train` wrote, answering churn probabilities over HTTP (Ray
Serve). POST one customer (or a list of them) as JSON, in the raw table's terms:

    {"contract": "month-to-month", "internet_service": "fiber optic",
     "payment_method": "electronic check", "tenure_months": 2, "monthly_charges": 95.5,
     "support_calls": 4, "senior": 0, "tech_support": "No", "paperless_billing": "Yes"}

and get {"churn_probability": [0.87], "model": "<where the model was read>"}. The row is encoded
as prepare.py encodes the table (one-hot categoricals, Yes/No as 1/0), in the order of the
model's own feature names. The model is read once per replica from $MLJOB_INPUT_TRAIN: train's
output folder of the run whose serve step deployed it (an earlier run's, if train was cached).
"""

from __future__ import annotations

from typing import Any

import xgboost
from churn_common import MODEL_FILE, input_uri, read_bytes
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

CATEGORICAL = ("contract", "internet_service", "payment_method")  # one-hot, as prepare.py
YES_NO = ("tech_support", "paperless_billing")


class BadRow(ValueError):
    """A request row the model cannot score (answered with 400 and this message)."""


def slug(value: str) -> str:
    """A category as prepare.py names its one-hot column: lower case, '_' for ' ' and '-'."""
    return value.strip().lower().replace(" ", "_").replace("-", "_")


def encode(row: Any, feature_names: list[str]) -> list[float]:
    """One customer as the model's feature vector, in `feature_names` order."""
    if not isinstance(row, dict):
        raise BadRow(f"a customer must be a JSON object, got {type(row).__name__}")
    values: dict[str, float] = {}
    for column in CATEGORICAL:
        choices = sorted(
            n.removeprefix(f"{column}_") for n in feature_names if n.startswith(f"{column}_")
        )
        value = slug(str(row.get(column, "")))
        if value not in choices:
            raise BadRow(f"{column} must be one of {', '.join(choices)}, got {row.get(column)!r}")
        values[f"{column}_{value}"] = 1.0
    for column in YES_NO:
        values[column] = 1.0 if str(row.get(column, "No")).strip().lower() == "yes" else 0.0
    try:
        tenure, monthly = float(row["tenure_months"]), float(row["monthly_charges"])
        values.update(
            tenure_months=tenure,
            monthly_charges=monthly,
            total_charges=float(row.get("total_charges", monthly * tenure)),
            support_calls=float(row.get("support_calls", 0)),
            senior=float(row.get("senior", 0)),
        )
    except KeyError as missing:
        raise BadRow(f"{missing.args[0]} is required") from None
    except (TypeError, ValueError) as error:
        raise BadRow(f"a number field is not a number: {error}") from None
    return [values.get(name, 0.0) for name in feature_names]


@serve.deployment
class ChurnModel:
    def __init__(self) -> None:
        self.booster = xgboost.Booster()
        self.booster.load_model(bytearray(read_bytes("train", MODEL_FILE)))
        self.features = list(self.booster.feature_names or [])
        self.source = input_uri("train", MODEL_FILE)

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        rows = payload if isinstance(payload, list) else [payload]
        try:
            matrix = [encode(row, self.features) for row in rows]
        except BadRow as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        scores = self.booster.predict(xgboost.DMatrix(matrix, feature_names=self.features))
        return JSONResponse(
            {"churn_probability": [round(float(p), 4) for p in scores], "model": self.source}
        )


app = ChurnModel.bind()
