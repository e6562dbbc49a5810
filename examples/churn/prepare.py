"""Spark step `prepare`: generate a realistic telecom churn table, clean it, write features.

Usage: spark-submit prepare.py [--rows N] [--seed S]

Writes Parquet under its output folder, $MLJOB_OUTPUT_PATH (the steps after it read it as
$MLJOB_INPUT_PREPARE):
  raw/               the generated (dirty) customer table, as a data lake would hold it
  features/train/    cleaned, encoded features + `label`, ~85 % of customers
  features/holdout/  the same for the other ~15 %, never seen by training
"""

from __future__ import annotations

import argparse
import math
import os

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

CONTRACTS = ["month-to-month", "one year", "two year"]
INTERNET = ["dsl", "fiber optic", "none"]
PAYMENTS = ["electronic check", "mailed check", "bank transfer", "credit card"]
HOLDOUT_PERCENT = 15


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000, help="customers to generate")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def uniform(salt: int) -> Column:
    """A uniform [0,1) value per customer, from a hash: the same data whatever the number
    of partitions (F.rand's sequence depends on partitioning)."""
    return (F.abs(F.xxhash64("customer_id", F.lit(salt))) % 1_000_003) / 1_000_003.0


def normal(salt: int) -> Column:
    """A standard normal value per customer (Box-Muller)."""
    return F.sqrt(-2.0 * F.log(uniform(salt + 1000) + 1e-9)) * F.cos(
        2 * math.pi * uniform(salt + 2000)
    )


def pick(options: list[str], uniform: Column) -> Column:
    """Map a uniform [0,1) column onto one of `options`."""
    index = F.floor(uniform * len(options)).cast("int")
    return F.element_at(F.array(*[F.lit(o) for o in options]), index + 1)


def generate(spark: SparkSession, rows: int, seed: int) -> DataFrame:
    """A synthetic but realistic customer table: churn depends on contract, tenure, price,
    support calls and service, plus noise; the table carries the usual dirt (mixed case,
    blanks, missing and impossible values)."""
    df = spark.range(rows).withColumnRenamed("id", "customer_id")
    df = (
        df.withColumn("contract", pick(CONTRACTS, uniform(seed)))
        .withColumn("internet_service", pick(INTERNET, uniform(seed + 1)))
        .withColumn("payment_method", pick(PAYMENTS, uniform(seed + 2)))
        .withColumn("tenure_months", F.floor(F.pow(uniform(seed + 3), 1.5) * 72).cast("int"))
        .withColumn("senior", (uniform(seed + 4) < 0.16).cast("int"))
        .withColumn("tech_support", F.when(uniform(seed + 5) < 0.35, "Yes").otherwise("No"))
        .withColumn("paperless_billing", F.when(uniform(seed + 6) < 0.6, "Yes").otherwise("No"))
        .withColumn(
            "monthly_charges",
            F.round(
                F.lit(20.0)
                + F.when(F.col("internet_service") == "fiber optic", 50.0)
                .when(F.col("internet_service") == "dsl", 25.0)
                .otherwise(0.0)
                + uniform(seed + 7) * 30.0,
                2,
            ),
        )
        .withColumn("support_calls", F.floor(-F.log(uniform(seed + 8) + 1e-9) * 1.5).cast("int"))
    )
    logit = (
        F.lit(-1.2)
        + F.when(F.col("contract") == "month-to-month", 1.6)
        .when(F.col("contract") == "two year", -1.4)
        .otherwise(0.0)
        - F.col("tenure_months") * 0.035
        + (F.col("monthly_charges") - 60.0) * 0.025
        + F.col("support_calls") * 0.35
        + F.when(F.col("internet_service") == "fiber optic", 0.5).otherwise(0.0)
        + F.when(F.col("tech_support") == "Yes", -0.6).otherwise(0.0)
        + F.when(F.col("payment_method") == "electronic check", 0.45).otherwise(0.0)
        + F.col("senior") * 0.3
        + normal(seed + 9) * 0.5
    )
    df = df.withColumn("churned", F.when(uniform(seed + 10) < 1 / (1 + F.exp(-logit)), "Yes"))
    df = df.withColumn("churned", F.coalesce(F.col("churned"), F.lit("No")))
    return add_dirt(df, seed)


def add_dirt(df: DataFrame, seed: int) -> DataFrame:
    """What real exports look like: total_charges as text with blanks, inconsistent case,
    a few impossible values."""
    total = F.round(F.col("monthly_charges") * F.col("tenure_months"), 2).cast("string")
    noise = uniform(seed + 11)
    return (
        df.withColumn("total_charges", F.when(noise < 0.02, F.lit(" ")).otherwise(total))
        .withColumn(
            "internet_service",
            F.when(noise > 0.97, F.upper("internet_service")).otherwise(F.col("internet_service")),
        )
        .withColumn(
            "monthly_charges",
            F.when(noise.between(0.5, 0.503), F.lit(-1.0)).otherwise(F.col("monthly_charges")),
        )
    )


def clean(raw: DataFrame) -> DataFrame:
    """Normalise text, repair blanks, drop impossible rows."""
    df = raw
    for column in ("contract", "internet_service", "payment_method"):
        df = df.withColumn(column, F.lower(F.trim(column)))
    # Blank totals (new customers in the export) become null, then derived.
    df = df.withColumn("total_charges", F.trim("total_charges").try_cast("double"))
    df = df.withColumn(
        "total_charges",
        F.coalesce("total_charges", F.col("monthly_charges") * F.col("tenure_months")),
    )
    return df.where((F.col("monthly_charges") > 0) & F.col("tenure_months").isNotNull())


def features(df: DataFrame) -> DataFrame:
    """Numeric feature columns (one-hot categoricals) plus `label` and the split key."""
    one_hot = [
        F.when(F.col(column) == value, 1.0)
        .otherwise(0.0)
        .alias(f"{column}_{value}".replace(" ", "_").replace("-", "_"))
        for column, values in (
            ("contract", CONTRACTS),
            ("internet_service", INTERNET),
            ("payment_method", PAYMENTS),
        )
        for value in values
    ]
    return df.select(
        "customer_id",
        F.col("tenure_months").cast("double").alias("tenure_months"),
        "monthly_charges",
        "total_charges",
        F.col("support_calls").cast("double").alias("support_calls"),
        F.col("senior").cast("double").alias("senior"),
        (F.col("tech_support") == "Yes").cast("double").alias("tech_support"),
        (F.col("paperless_billing") == "Yes").cast("double").alias("paperless_billing"),
        *one_hot,
        (F.col("churned") == "Yes").cast("double").alias("label"),
    )


def main() -> None:
    args = parse_args()
    data_path = os.environ["MLJOB_OUTPUT_PATH"].rstrip("/")
    spark = SparkSession.builder.appName("churn-prepare").getOrCreate()
    raw = generate(spark, args.rows, args.seed)
    raw.write.mode("overwrite").parquet(f"{data_path}/raw")
    table = features(clean(spark.read.parquet(f"{data_path}/raw")))
    in_holdout = F.abs(F.hash("customer_id")) % 100 < HOLDOUT_PERCENT
    table.where(in_holdout).drop("customer_id").write.mode("overwrite").parquet(
        f"{data_path}/features/holdout"
    )
    table.where(~in_holdout).drop("customer_id").write.mode("overwrite").parquet(
        f"{data_path}/features/train"
    )
    counts = table.groupBy(in_holdout.alias("holdout")).count().collect()
    print("prepared rows:", {("holdout" if r.holdout else "train"): r["count"] for r in counts})
    spark.stop()


if __name__ == "__main__":
    main()
