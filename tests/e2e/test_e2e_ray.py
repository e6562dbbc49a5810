"""End-to-end Ray scenarios: a real entrypoint failure, a shared RayCluster, a child the real
KubeRay refuses, and pods the real scheduler cannot place."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client

from mljob import builders

from .helpers import (
    MLJOB,
    RAYCLUSTER,
    RAYJOB,
    condition,
    create,
    events,
    get,
    items,
    mljob,
    pods,
    ray,
    ray_job_info,
    reasons,
    status,
    step,
    wait_for,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.e2e_concurrent]


def test_ray_entrypoint_exit_1_fails_the_step_with_rays_message(api, ns, e2e_world):
    code = "import sys; print('no rows in the training set', flush=True); sys.exit(1)"
    create(api, MLJOB, ns, mljob("fit", ray("train", code)))

    failed = wait_phase(api, ns, "fit", "Failed", timeout=180)
    train = step(failed, "train")
    (job,) = items(api, RAYJOB, ns)
    job_status = job["status"]
    # What KubeRay v1.6.1 wrote, from Ray's own job status.
    assert job_status["jobDeploymentStatus"] == "Failed"
    assert job_status["jobStatus"] == "FAILED"
    assert job_status["reason"] == "AppFailed"
    assert "exit code 1" in job_status["message"]
    assert "no rows in the training set" in job_status["message"]
    assert ray_job_info(e2e_world, job_status["jobId"])["status"] == "FAILED"

    assert train["phase"] == "Failed"
    assert train["childState"] == "Failed/FAILED"
    assert "exit code 1" in train["message"], train
    stalled = condition(failed, "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "StepTrainRayJobFailed"
    assert "exit code 1" in stalled["message"]
    assert "no rows in the training set" in (train.get("details") or ""), train
    wait_for(lambda: "StepFailed" in reasons(api, ns, "MLJob", "fit"), "a StepFailed Event")
    # shutdownAfterJobFinishes holds for failures too: the cluster goes.
    wait_for(lambda: not items(api, RAYCLUSTER, ns), "KubeRay to delete the failed job's cluster")


def test_two_ray_steps_share_one_cluster_which_is_gone_after(api, ns, e2e_world):
    steps = [
        ray("train", "print('train on the shared cluster')", shared=True),
        ray("score", "print('score on the shared cluster')", shared=True),
    ]
    create(api, MLJOB, ns, mljob("sc", *steps, rayCluster={"rayVersion": "2.49.0"}))

    done = wait_phase(api, ns, "sc", "Succeeded", timeout=180)
    assert [s["childState"] for s in done["status"]["steps"]] == ["Complete/SUCCEEDED"] * 2
    for job in items(api, RAYJOB, ns):
        assert job["spec"]["clusterSelector"] == {"ray.io/cluster": "sc-r1-ray"}
        assert job["status"]["rayClusterName"] == "sc-r1-ray"
        assert job["status"]["jobDeploymentStatus"] == "Complete"
        assert ray_job_info(e2e_world, job["status"]["jobId"])["status"] == "SUCCEEDED"
    posts = [
        r
        for r in e2e_world.proxy.requests_for(f"sc-r1-ray-head-svc.{ns}.svc")
        if r.method == "POST"
    ]
    assert len(posts) == 2, "both jobs went to the shared cluster's head service"
    # The operator deletes the shared cluster when the pipeline ends; its pods follow.
    wait_for(lambda: not items(api, RAYCLUSTER, ns), "the shared RayCluster to be deleted")
    wait_for(
        lambda: not [p for p in pods(api, ns) if (p.metadata.labels or {}).get("ray.io/cluster")],
        "the shared cluster's pods to be gone",
    )


def test_pods_that_cannot_be_scheduled_end_by_the_start_deadline(api, ns):
    # No kwok node has 100 CPUs: the real scheduler leaves the head pod Pending, so KubeRay's
    # RayCluster never gets ready and the RayJob stays Initializing.
    big = ray("train", "print('never')", startDeadlineSeconds=15)
    big["ray"]["head"] = {"cpu": "100", "memory": "8Gi"}
    create(api, MLJOB, ns, mljob("big", big))

    def unschedulable():
        for pod in pods(api, ns):
            for cond in pod.status.conditions or []:
                if cond.type == "PodScheduled" and cond.reason == "Unschedulable":
                    return cond.message
        return None

    message = wait_for(unschedulable, "the scheduler to report the head pod Unschedulable")
    assert "Insufficient cpu" in message, message
    job = wait_for(lambda: (items(api, RAYJOB, ns) or [None])[0], "the RayJob")
    assert job.get("status", {}).get("jobDeploymentStatus") in (None, "", "Initializing")

    failed = wait_phase(api, ns, "big", "Failed", timeout=90)
    train = step(failed, "train")
    assert "startDeadlineSeconds (15s) expired" in train["message"], train
    assert condition(failed, "Stalled")["reason"] == "StepTrainRayJobStartDeadlineExceeded"
    # The operator deleted the RayJob; KubeRay's cluster and the Pending pod follow it.
    wait_for(lambda: not items(api, RAYJOB, ns), "the RayJob to be deleted")
    wait_for(lambda: not items(api, RAYCLUSTER, ns), "its RayCluster to be deleted")
    wait_for(lambda: not pods(api, ns), "the Pending pod to be deleted")


def token_auth_on_old_ray() -> dict:
    step = ray("train", "print('never')")
    step["ray"]["template"]["rayClusterSpec"] = {"authOptions": {"mode": "token"}}
    return step


def test_kuberay_rejects_what_validate_now_rejects_too(api, ns):
    """authOptions.mode token on Ray < 2.52: validate() used to let it through. The real KubeRay
    ends such a RayJob ValidationFailed; the MLJob is now refused before any child exists."""
    spec = mljob("auth", token_auth_on_old_ray())
    spec["metadata"]["namespace"] = ns
    spec["metadata"]["uid"] = "0"
    rayjob = builders.build_step_child(spec, spec["spec"]["steps"][0], run=1, attempt=1)
    rayjob["metadata"]["name"] = "direct"
    del rayjob["metadata"]["ownerReferences"]
    rayjob["metadata"]["labels"] = {}
    create(api, RAYJOB, ns, rayjob)

    def validation_failed():
        job_status = get(api, RAYJOB, ns, "direct").get("status") or {}
        return job_status if job_status.get("jobDeploymentStatus") == "ValidationFailed" else None

    job_status = wait_for(validation_failed, "KubeRay to mark the RayJob ValidationFailed", 60)
    assert "authOptions.mode is 'token' but minimum Ray version is 2.52.0" in job_status["message"]
    assert "InvalidRayJobSpec" in reasons(api, ns, "RayJob", "direct")

    body = copy.deepcopy(spec)
    del body["metadata"]["uid"], body["metadata"]["namespace"]
    try:
        create(api, MLJOB, ns, body)
    except client.ApiException as error:  # the admission webhook, when installed
        assert "2.52.0" in error.body
        return
    failed = wait_phase(api, ns, "auth", "Failed", timeout=30)
    assert "authOptions.mode: token needs Ray >= 2.52.0" in status(api, ns, "auth")["message"]
    assert condition(failed, "Stalled")["reason"] == "InvalidSpec"
    assert [j["metadata"]["name"] for j in items(api, RAYJOB, ns)] == ["direct"]
    assert events(api, ns, "MLJob", "auth")


def test_k8s_job_mode_fails_here_without_a_real_submitter(api, ns, e2e_world):
    """KubeRay's default submission mode runs `ray job submit` in a submitter Job's pod. kwok
    completes that pod without running anything, so KubeRay finds no Ray job and fails the
    RayJob: the tier's Ray steps use HTTPMode (docs/e2e.md)."""
    step_spec = ray("train", "print('never submitted')")
    del step_spec["ray"]["template"]
    create(api, MLJOB, ns, mljob("kj", step_spec))

    failed = wait_phase(api, ns, "kj", "Failed", timeout=120)
    (job,) = items(api, RAYJOB, ns)
    assert job["status"]["jobDeploymentStatus"] == "Failed"
    assert job["status"]["reason"] == "AppFailed"
    assert job["status"]["message"] == "Submitter completed but Ray job not found in RayCluster."
    submitter = client.BatchV1Api(api).read_namespaced_job("kj-train-r1", ns)
    assert submitter.status.succeeded == 1
    assert step(failed, "train")["childState"] == "Failed"
    assert not [r for r in e2e_world.proxy.requests_for("kj-train-r1-") if r.method == "POST"]
