"""The cache of succeeded steps on the real control plane (issue 13): re-runs of one MLJob skip
the `cache: true` steps whose fingerprint and inputs did not change, and the steps after them
read the earlier run's outputs. The tests play the Spark operator and KubeRay."""

from __future__ import annotations

import copy

import pytest
import yaml

from .k8s import MLJOB, RAYJOB, SPARK, get, wait_for
from .test_lifecycle import names, patch_spec
from .test_pipeline import (
    create,
    finish_rayjob,
    finish_spark,
    mljob,
    mljob_events,
    ray,
    spark,
    wait_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator_process")]


def steps(**prepare: object) -> list[dict]:
    return [
        spark("prepare", cache=True, outputs=["features/"], **prepare),
        ray("train", cache=True),
        ray("evaluate", cache=True),
    ]


def run_to_the_end(api_client, namespace: str, name: str, run: int, expected: list[str]) -> dict:
    """Finish the children of `run`, one step after the other, expecting exactly the steps
    `expected` to run (the others hit the cache); the MLJob's final object."""
    for step in expected:
        child = f"{name}-{step}-r{run}"
        kind = SPARK if step == "prepare" else RAYJOB
        wait_for(
            lambda child=child, kind=kind: child in names(api_client, kind, namespace),
            f"{child} to be created",
        )
        if kind == SPARK:
            finish_spark(api_client, namespace, child)
        else:
            finish_rayjob(api_client, namespace, child)

    def done():
        job = get(api_client, MLJOB, namespace, name)
        status = job.get("status") or {}
        return job if status.get("run") == run and status.get("phase") == "Succeeded" else None

    job = wait_for(done, f"run {run} to succeed")
    created = {
        n.rsplit("-", 2)[1]
        for kind in (SPARK, RAYJOB)
        for n in names(api_client, kind, namespace)
        if n.endswith(f"-r{run}")
    }
    assert created == set(expected), f"run {run} created {created}, expected {expected}"
    return job


def ray_env(api_client, namespace: str, child: str) -> dict[str, str]:
    job = get(api_client, RAYJOB, namespace, child)
    return yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]


def test_reruns_skip_unchanged_cached_steps_and_rerun_what_changed(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("c", *steps()))
    first = run_to_the_end(api_client, namespace, "c", 1, ["prepare", "train", "evaluate"])
    assert [(r["step"], r["run"]) for r in first["status"]["cache"]] == [
        ("prepare", 1),
        ("train", 1),
        ("evaluate", 1),
    ]

    # run 2: only train's spec changes: prepare is not run, train reads run 1's outputs
    changed = steps()
    changed[1]["ray"]["entrypoint"] = "python /app/train.py --rounds 5"
    patch_spec(api_client, namespace, "c", {"steps": changed})
    second = run_to_the_end(api_client, namespace, "c", 2, ["train", "evaluate"])
    prepare = second["status"]["steps"][0]
    assert prepare["childState"] == "Cached" and prepare["cachedFromRun"] == 1
    assert "StepCached" in mljob_events(api_client, namespace, "c")
    env = ray_env(api_client, namespace, "c-train-r2")
    assert env["MLJOB_INPUT_PREPARE"] == "s3a://lake/c/run-1/prepare"
    assert env["MLJOB_OUTPUT_PATH"] == "s3a://lake/c/run-2/train"

    # run 3: a new cacheKey for prepare: it runs, and so does everything below it
    patch_spec(api_client, namespace, "c", {"steps": steps(cacheKey="2026-01-02")})
    third = run_to_the_end(api_client, namespace, "c", 3, ["prepare", "train", "evaluate"])
    assert not any(s.get("cachedFromRun") for s in third["status"]["steps"])
    env = ray_env(api_client, namespace, "c-train-r3")
    assert env["MLJOB_INPUT_PREPARE"] == "s3a://lake/c/run-3/prepare"

    # run 4: back to run 2's spec: every step's fingerprint and inputs match run 2's records
    patch_spec(api_client, namespace, "c", {"steps": changed})
    fourth = run_to_the_end(api_client, namespace, "c", 4, [])
    assert [s["cachedFromRun"] for s in fourth["status"]["steps"]] == [1, 2, 2]


def test_without_cache_a_rerun_runs_every_step(api_client, namespace):
    plain = [spark("prepare"), ray("train")]
    create(api_client, MLJOB, namespace, mljob("n", *copy.deepcopy(plain)))
    run_to_the_end(api_client, namespace, "n", 1, ["prepare", "train"])
    plain[1]["ray"]["entrypoint"] = "python /app/train.py --rounds 5"
    patch_spec(api_client, namespace, "n", {"steps": plain})
    job = run_to_the_end(api_client, namespace, "n", 2, ["prepare", "train"])
    assert "cache" not in job["status"]
    wait_phase(api_client, namespace, "n", "Succeeded")
