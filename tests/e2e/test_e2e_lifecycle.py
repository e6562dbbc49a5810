"""End-to-end lifecycle: deleting an MLJob mid-run, suspend and resume, a failed spark-submit."""

from __future__ import annotations

import pytest
from kubernetes import client

from mljob.testing.kwok_stages import DRIVER_DURATION_ANNOTATION

from .helpers import (
    MLJOB,
    RAYCLUSTER,
    RAYJOB,
    SPARK,
    SUBMIT_QUEUE,
    condition,
    create,
    get,
    items,
    mljob,
    patch_spec,
    pods,
    ray,
    ray_job_info,
    spark,
    status,
    step,
    wait_for,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.e2e_concurrent]

LONG_DRIVER = {"driver": {"annotations": {DRIVER_DURATION_ANNOTATION: "600s"}}}
SLEEP = "import time; print('working', flush=True); time.sleep(600)"


def spark_state(api, ns: str, name: str) -> str:
    app = get(api, SPARK, ns, name)
    return ((app.get("status") or {}).get("applicationState") or {}).get("state", "")


def rayjob_status(api, ns: str, name: str) -> dict:
    return get(api, RAYJOB, ns, name).get("status") or {}


def test_deleting_the_mljob_mid_run_removes_every_child_and_pod(api, ns, e2e_world):
    steps = [spark("prepare", LONG_DRIVER), ray("train", SLEEP, dependsOn=[])]
    create(api, MLJOB, ns, mljob("gone", *steps))
    wait_for(
        lambda: items(api, SPARK, ns) and spark_state(api, ns, "gone-prepare-r1") == "RUNNING",
        "the SparkApplication to be RUNNING",
        timeout=120 + SUBMIT_QUEUE,
    )
    job = wait_for(
        lambda: (
            items(api, RAYJOB, ns)
            and rayjob_status(api, ns, "gone-train-r1").get("jobStatus") == "RUNNING"
            and rayjob_status(api, ns, "gone-train-r1")
        ),
        "the Ray job to be RUNNING on the real Ray head",
        timeout=120,
    )
    assert pods(api, ns), "driver, Ray head pods exist"

    group, version, plural = MLJOB
    client.CustomObjectsApi(api).delete_namespaced_custom_object(group, version, ns, plural, "gone")

    for resource in (SPARK, RAYJOB, RAYCLUSTER):
        wait_for(lambda r=resource: not items(api, r, ns), f"every {resource[2]} to go", 60)
    wait_for(lambda: not pods(api, ns), "every pod to go", 60)
    wait_for(
        lambda: not client.CoreV1Api(api).list_namespaced_service(ns).items,
        "the driver and head Services to go",
        60,
    )
    # KubeRay's finalizer stopped the job on the real Ray head before the RayJob went.
    wait_for(
        lambda: ray_job_info(e2e_world, job["jobId"])["status"] == "STOPPED",
        "the Ray job to be STOPPED on the Ray head",
        60,
    )


def test_suspend_and_resume_under_the_real_controllers(api, ns):
    # Long enough for the operator to suspend each child while it runs, even on a busy machine.
    steps = [spark("prepare", {"driver": {"annotations": {DRIVER_DURATION_ANNOTATION: "25s"}}})]
    steps.append(ray("train", "import time; time.sleep(15); print('trained')"))
    create(api, MLJOB, ns, mljob("pause", *steps))

    # Spark: the Spark operator deletes the driver (SUSPENDING -> SUSPENDED) ...
    wait_for(
        lambda: spark_state(api, ns, "pause-prepare-r1") == "RUNNING", "RUNNING", 120 + SUBMIT_QUEUE
    )
    patch_spec(api, ns, "pause", {"suspend": True})
    wait_for(lambda: spark_state(api, ns, "pause-prepare-r1") == "SUSPENDED", "SUSPENDED", 60)
    wait_for(lambda: not pods(api, ns), "the driver pod to be deleted", 60)
    suspended = wait_phase(api, ns, "pause", "Suspended", timeout=30)
    assert step(suspended, "prepare")["childSuspended"] is True
    # ... and resubmits on resume (RESUMING -> SUBMITTED -> RUNNING -> COMPLETED).
    patch_spec(api, ns, "pause", {"suspend": False})
    wait_for(
        lambda: spark_state(api, ns, "pause-prepare-r1") == "COMPLETED",
        "COMPLETED",
        120 + SUBMIT_QUEUE,
    )
    app = get(api, SPARK, ns, "pause-prepare-r1")
    assert app["status"]["submissionAttempts"] >= 2, app["status"]

    # Ray: KubeRay deletes the RayJob's cluster (Suspending -> Suspended) ...
    wait_for(
        lambda: (
            items(api, RAYJOB, ns)
            and rayjob_status(api, ns, "pause-train-r1").get("jobDeploymentStatus") == "Running"
        ),
        "the RayJob to be Running",
        120,
    )
    first_cluster = rayjob_status(api, ns, "pause-train-r1")["rayClusterName"]
    patch_spec(api, ns, "pause", {"suspend": True})
    wait_for(
        lambda: rayjob_status(api, ns, "pause-train-r1").get("jobDeploymentStatus") == "Suspended",
        "the RayJob to be Suspended",
        60,
    )
    wait_for(lambda: not items(api, RAYCLUSTER, ns), "KubeRay to delete its cluster", 60)
    wait_phase(api, ns, "pause", "Suspended", timeout=30)
    # ... and resume makes a new cluster and a new Ray job, which succeeds.
    patch_spec(api, ns, "pause", {"suspend": False})
    done = wait_phase(api, ns, "pause", "Succeeded", timeout=180)
    final = rayjob_status(api, ns, "pause-train-r1")
    assert final["rayClusterName"] != first_cluster
    assert step(done, "train")["childState"] == "Complete/SUCCEEDED"
    assert condition(done, "Succeeded")["status"] == "True"


def test_a_failed_spark_submit_fails_the_step_with_its_error(api, ns, e2e_world):
    # A valid MLJob that spark-submit still cannot submit: the namespace's ResourceQuota (the
    # real quota controller computes its usage) allows no pod, so the API server refuses the
    # driver pod spark-submit creates. validate() cannot know the cluster's quotas.
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    client.CoreV1Api(api).create_namespaced_resource_quota(ns, quota)
    wait_for(
        lambda: (
            client.CoreV1Api(api).read_namespaced_resource_quota("no-pods", ns).status.hard or {}
        ).get("pods"),
        "the quota controller to compute the ResourceQuota",
    )
    create(api, MLJOB, ns, mljob("bad", spark("prepare")))

    failed = wait_phase(api, ns, "bad", "Failed", timeout=120 + SUBMIT_QUEUE)
    prepare = step(failed, "prepare")
    state = get(api, SPARK, ns, "bad-prepare-r1")["status"]["applicationState"]
    # The Spark operator v2.5.2 goes straight to FAILED (restartPolicy Never), with its own
    # prefix before spark-submit's whole output.
    assert state["state"] == "FAILED"
    assert state["errorMessage"].startswith(
        "failed to submit spark application: failed to run spark-submit: "
    )
    assert "exceeded quota: no-pods" in state["errorMessage"], state
    # The step keeps spark-submit's reason (the refused POST of the driver pod), without the
    # Spark operator's repeated prefix; the summary is cut before the quota's own words.
    refused = (
        "failed to run spark-submit: io.fabric8.kubernetes.client.KubernetesClientException: "
        f"Failure executing: POST at: https://127.0.0.1:{e2e_world.plane.apiserver_port}"
        f"/api/v1/namespaces/{ns}/pods. Message: pods "
    )
    assert prepare["message"].startswith(refused), prepare
    assert prepare["childState"] == "FAILED"
    assert refused in status(api, ns, "bad")["message"]
    assert condition(failed, "Stalled")["reason"] == "StepPrepareSparkApplicationFailed"
    assert not pods(api, ns), "no driver pod was created"
