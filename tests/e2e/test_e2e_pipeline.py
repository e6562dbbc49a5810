"""End-to-end: the mljob operator with the real Spark operator and KubeRay on kwok nodes, Ray
jobs on a real Ray head. Assertions read what the real controllers wrote."""

from __future__ import annotations

import pytest

from mljob.testing.kwok_stages import FAIL_APP_LABEL

from .helpers import (
    RAYCLUSTER,
    RAYJOB,
    SPARK,
    SUBMIT_QUEUE,
    condition,
    create,
    get,
    items,
    mljob,
    pods,
    ray,
    ray_job_info,
    ray_job_logs,
    reasons,
    spark,
    step,
    wait_for,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.e2e_concurrent]

TRAIN = (
    "import os, ray; ray.init(); "
    "print('trained', sum(ray.get([ray.remote(lambda x: x * x).remote(i) for i in range(4)])), "
    "os.environ['MLJOB_STEP'], os.environ['MLJOB_DATA_PATH'])"
)
EVALUATE = "import os; print('evaluated', os.environ['MLJOB_STEP'])"


def test_churn_shaped_pipeline_succeeds(api, ns, e2e_world):
    steps = [spark("prepare"), ray("train", TRAIN), ray("evaluate", EVALUATE)]
    create(api, ("mljob.io", "v1alpha1", "mljobs"), ns, mljob("churn", *steps))

    done = wait_phase(api, ns, "churn", "Succeeded", timeout=240 + SUBMIT_QUEUE)
    status = done["status"]
    assert [(s["name"], s["phase"], s["childState"]) for s in status["steps"]] == [
        ("prepare", "Succeeded", "COMPLETED"),
        ("train", "Succeeded", "Complete/SUCCEEDED"),
        ("evaluate", "Succeeded", "Complete/SUCCEEDED"),
    ]
    assert status["progress"] == "3/3"
    assert condition(done, "Ready")["status"] == "True"
    assert condition(done, "Succeeded")["status"] == "True"
    wait_for(
        lambda: {"StepStarted", "StepSucceeded"} <= set(reasons(api, ns, "MLJob", "churn")),
        "StepStarted and StepSucceeded Events",
    )

    # The Spark operator ran spark-submit, which created the driver pod; kwok ran it.
    (app,) = items(api, SPARK, ns)
    app_status = app["status"]
    assert app_status["applicationState"]["state"] == "COMPLETED"
    assert app_status["submissionAttempts"] == 1
    driver = app_status["driverInfo"]["podName"]
    assert {p.metadata.name: p.status.phase for p in pods(api, ns)}.get(driver) == "Succeeded"

    # KubeRay submitted each job over HTTP to the real Ray head, where it really ran.
    jobs = {j["metadata"]["labels"]["mljob.io/step"]: j for j in items(api, RAYJOB, ns)}
    for name in ("train", "evaluate"):
        job_status = jobs[name]["status"]
        assert job_status["jobDeploymentStatus"] == "Complete"
        assert job_status["jobStatus"] == "SUCCEEDED"
        info = ray_job_info(e2e_world, job_status["jobId"])
        assert info["status"] == "SUCCEEDED", info
        cluster = job_status["rayClusterName"]
        assert any(
            r.method == "POST" and r.path.startswith("/api/jobs")
            for r in e2e_world.proxy.requests_for(f"{cluster}-head-svc.{ns}.svc")
        ), "KubeRay submitted through the cluster's head service name"
    assert "trained 14 train s3a://lake/churn/run-1" in ray_job_logs(
        e2e_world, jobs["train"]["status"]["jobId"]
    )

    # shutdownAfterJobFinishes: KubeRay deleted both clusters, and their pods went.
    wait_for(lambda: not items(api, RAYCLUSTER, ns), "KubeRay to delete the RayClusters")
    wait_for(
        lambda: all(
            (p.metadata.labels or {}).get("ray.io/node-type") is None for p in pods(api, ns)
        ),
        "the Ray pods to be gone",
    )
    assert get(api, RAYJOB, ns, jobs["train"]["metadata"]["name"])  # the RayJob stays


def test_spark_driver_failure_then_retry_succeeds(api, ns):
    # The driver of the first attempt's SparkApplication fails (kwok, exit code 3); the retry's
    # SparkApplication has another name, so its driver succeeds.
    failing = {
        "driver": {"labels": {FAIL_APP_LABEL: "etl-prepare-r1", "e2e.mljob.io/exit-code": "3"}}
    }
    steps = [spark("prepare", failing, retries=1, backoffSeconds=1)]
    create(api, ("mljob.io", "v1alpha1", "mljobs"), ns, mljob("etl", *steps))

    done = wait_phase(api, ns, "etl", "Succeeded", timeout=180 + SUBMIT_QUEUE)
    prepare = step(done, "prepare")
    assert prepare["attempts"] == 2
    assert prepare["child"] == "etl-prepare-r1-a2"
    (failure,) = prepare["failures"]
    assert failure["child"] == "etl-prepare-r1"
    # The Spark operator's own words for a driver pod that failed.
    assert failure["message"].endswith("driver container failed with ExitCode: 3, Reason: Error")
    assert "StepRetrying" in reasons(api, ns, "MLJob", "etl")
    first = get(api, SPARK, ns, "etl-prepare-r1")["status"]
    assert first["applicationState"] == {
        "state": "FAILED",
        "errorMessage": "driver container failed with ExitCode: 3, Reason: Error",
    }
    second = get(api, SPARK, ns, "etl-prepare-r1-a2")["status"]
    assert second["applicationState"]["state"] == "COMPLETED"
