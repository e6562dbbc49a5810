"""The shared RayCluster on the real control plane: a refused create, suspend, and a cluster
deleted by someone else mid-run. The tests play KubeRay by patching status."""

from __future__ import annotations

import pytest
from kubernetes import client

from .k8s import MLJOB, RAYCLUSTER, RAYJOB, SPARK, create, get, wait_for, zero_quota
from .test_lifecycle import patch_spec, step_status
from .test_pipeline import (
    children,
    finish_rayjob,
    finish_spark,
    mljob,
    mljob_events,
    ray,
    spark,
    wait_child,
    wait_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator_process")]

SHARED = {"rayVersion": "2.49.0"}


def shared_ray(name: str, **extra: object) -> dict:
    step = ray(name, **extra)
    del step["ray"]["rayVersion"]  # the shared cluster's version applies
    return step


def cluster_suspend(api_client, namespace: str, name: str) -> bool | None:
    return get(api_client, RAYCLUSTER, namespace, name)["spec"].get("suspend")


def test_a_refused_shared_cluster_sends_no_ray_job(api_client, namespace):
    # The API server refuses the cluster (a quota here, any admission policy in general). The
    # parallel Ray steps planned with it must not be created after it.
    zero_quota(api_client, namespace, "rayclusters.ray.io")
    steps = [shared_ray("a"), shared_ray("b", dependsOn=[])]
    create(api_client, MLJOB, namespace, mljob("q", *steps, rayCluster=SHARED))
    failed = wait_phase(api_client, namespace, "q", "Failed")
    status = failed["status"]
    assert status["rayCluster"]["state"] == "Rejected"
    for entry in status["steps"]:
        assert entry["childState"] == "CreateRejected", entry
        assert entry["message"].startswith("the API server rejected RayCluster q-r1-ray:"), entry
        assert entry["attempts"] == 0
    assert "exceeded quota: no-rayclusters" in status["steps"][0]["message"]
    # The status write came after every create of that plan: none of them reached the server.
    assert children(api_client, RAYJOB, namespace) == []
    assert children(api_client, RAYCLUSTER, namespace) == []
    assert "StepStarted" not in mljob_events(api_client, namespace, "q")


def test_suspend_releases_the_shared_cluster_between_ray_steps(api_client, namespace):
    steps = [shared_ray("train"), shared_ray("score")]
    create(api_client, MLJOB, namespace, mljob("sc", *steps, rayCluster=SHARED))
    cluster = wait_child(api_client, RAYCLUSTER, namespace, None)["metadata"]["name"]
    train = wait_child(api_client, RAYJOB, namespace, "train")["metadata"]["name"]

    # A Ray job runs on the cluster: KubeRay cannot suspend it, so the cluster stays up.
    finish_rayjob(api_client, namespace, train, deployment="Running", job="RUNNING")
    wait_for(
        lambda: step_status(api_client, namespace, "sc", "train").get("phase") == "Running",
        "train to be Running",
    )
    patch_spec(api_client, namespace, "sc", {"suspend": True})
    kept = wait_for(
        lambda: (
            (get(api_client, MLJOB, namespace, "sc").get("status") or {})
            .get("rayCluster", {})
            .get("message")
        ),
        "status.rayCluster.message saying why the cluster is kept",
    )
    assert "step(s) train run a Ray job on it" in kept
    assert cluster_suspend(api_client, namespace, cluster) in (None, False)

    # The job ends while suspended: nothing runs on the cluster any more, so it is suspended.
    finish_rayjob(api_client, namespace, train)
    wait_for(
        lambda: cluster_suspend(api_client, namespace, cluster) is True,
        "the shared RayCluster to be suspended",
    )
    # The status write follows the cluster's patch in the same reconcile: wait for it.
    shared = wait_for(
        lambda: (
            get(api_client, MLJOB, namespace, "sc")["status"]["rayCluster"].get("suspended")
            and get(api_client, MLJOB, namespace, "sc")["status"]["rayCluster"]
        ),
        "status.rayCluster to record the suspended cluster",
    )
    assert shared["suspended"] is True and "message" not in shared
    assert not [
        j for j in children(api_client, RAYJOB, namespace) if j["metadata"]["name"] != train
    ], "no step starts while suspended"

    patch_spec(api_client, namespace, "sc", {"suspend": False})
    score = wait_child(api_client, RAYJOB, namespace, "score")["metadata"]["name"]
    assert cluster_suspend(api_client, namespace, cluster) is False  # resumed before score
    finish_rayjob(api_client, namespace, score)
    wait_phase(api_client, namespace, "sc", "Succeeded")


def test_a_shared_cluster_deleted_mid_run_fails_the_attempt_and_is_recreated(api_client, namespace):
    steps = [shared_ray("train", retries=1, backoffSeconds=1)]
    create(api_client, MLJOB, namespace, mljob("lost", *steps, rayCluster=SHARED))
    cluster = wait_child(api_client, RAYCLUSTER, namespace, None)
    first = wait_child(api_client, RAYJOB, namespace, "train")["metadata"]["name"]
    wait_phase(api_client, namespace, "lost", "Running")

    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        *RAYCLUSTER[:2], namespace, RAYCLUSTER[2], cluster["metadata"]["name"]
    )
    wait_for(
        lambda: "RayClusterLost" in mljob_events(api_client, namespace, "lost"),
        "a RayClusterLost Event",
    )
    second = wait_for(
        lambda: [
            j["metadata"]["name"]
            for j in children(api_client, RAYJOB, namespace)
            if j["metadata"]["name"] != first
        ],
        "the retry's RayJob",
    )
    assert second == [f"{first}-a2"]
    recreated = wait_child(api_client, RAYCLUSTER, namespace, None)
    assert recreated["metadata"]["name"] == cluster["metadata"]["name"]
    assert recreated["metadata"]["uid"] != cluster["metadata"]["uid"]
    wait_for(
        lambda: (
            first not in [j["metadata"]["name"] for j in children(api_client, RAYJOB, namespace)]
        ),
        "the first RayJob to be deleted",
    )
    failures = step_status(api_client, namespace, "lost", "train")["failures"]
    assert "the shared RayCluster lost-r1-ray was deleted" in failures[0]["message"]
    finish_rayjob(api_client, namespace, second[0])
    wait_phase(api_client, namespace, "lost", "Succeeded")


EAGER = {**SHARED, "startPolicy": "Eager"}


def names(api_client, resource, namespace: str) -> list[str]:
    return sorted(c["metadata"]["name"] for c in children(api_client, resource, namespace))


def wait_named(api_client, resource, namespace: str, name: str) -> dict:
    def found():
        return next(
            (c for c in children(api_client, resource, namespace) if c["metadata"]["name"] == name),
            None,
        )

    return wait_for(found, f"{resource[2]} {name}")


def test_an_eager_cluster_is_created_with_the_first_spark_step(api_client, namespace):
    on_demand = mljob("lazy", spark("prepare"), shared_ray("train"), rayCluster=SHARED)
    eager = mljob("warm", spark("prepare"), shared_ray("train"), rayCluster=EAGER)
    create(api_client, MLJOB, namespace, on_demand)
    create(api_client, MLJOB, namespace, eager)
    wait_named(api_client, SPARK, namespace, "lazy-prepare-r1")
    wait_named(api_client, SPARK, namespace, "warm-prepare-r1")
    # Eager creates its cluster in the plan that creates the SparkApplication, ahead of it; the
    # OnDemand MLJob's waits for its Ray step, which waits for Spark.
    assert names(api_client, RAYCLUSTER, namespace) == ["warm-r1-ray"]
    wait_for(  # kopf posts Events from a queue: after the status write, in its own time
        lambda: "RayClusterCreated" in mljob_events(api_client, namespace, "warm"),
        "the RayClusterCreated Event",
    )

    finish_spark(api_client, namespace, "warm-prepare-r1")
    train = wait_named(api_client, RAYJOB, namespace, "warm-train-r1")
    assert train["spec"]["clusterSelector"] == {"ray.io/cluster": "warm-r1-ray"}
    finish_rayjob(api_client, namespace, "warm-train-r1")
    wait_phase(api_client, namespace, "warm", "Succeeded")
    wait_for(
        lambda: "warm-r1-ray" not in names(api_client, RAYCLUSTER, namespace),
        "the warm cluster to be deleted when the pipeline ended",
    )
    assert names(api_client, RAYJOB, namespace) == ["warm-train-r1"]


def test_an_eager_cluster_goes_when_spark_fails_before_any_ray_step(api_client, namespace):
    job = mljob("sparkfail", spark("prepare"), shared_ray("train"), rayCluster=EAGER)
    create(api_client, MLJOB, namespace, job)
    app = wait_named(api_client, SPARK, namespace, "sparkfail-prepare-r1")["metadata"]["name"]
    assert names(api_client, RAYCLUSTER, namespace) == ["sparkfail-r1-ray"]
    finish_spark(api_client, namespace, app, state="FAILED", error="driver exited 1")
    wait_phase(api_client, namespace, "sparkfail", "Failed")
    wait_for(
        lambda: not children(api_client, RAYCLUSTER, namespace),
        "the warm cluster to be deleted when the run failed",
    )
    shared = get(api_client, MLJOB, namespace, "sparkfail")["status"]["rayCluster"]
    assert shared["state"] in ("Deleting", "Deleted")
    assert children(api_client, RAYJOB, namespace) == []
