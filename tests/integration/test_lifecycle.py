"""Lifecycle behaviour caused for real on the control plane: retries, deadlines, suspend, TTL,
spec changes (runs), children deleted by someone else, deletion of the MLJob, bad input."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client

from .k8s import MLJOB, RAYCLUSTER, RAYJOB, SPARK, create, get, wait_for
from .test_pipeline import (
    children,
    condition,
    finish_rayjob,
    finish_spark,
    mljob,
    ray,
    spark,
    wait_child,
    wait_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator_process")]


def patch_spec(api_client, namespace: str, name: str, spec: dict) -> dict:
    return client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        *MLJOB[:2], namespace, MLJOB[2], name, {"spec": spec}
    )


def step_status(api_client, namespace: str, name: str, step: str) -> dict:
    steps = (get(api_client, MLJOB, namespace, name).get("status") or {}).get("steps") or []
    return next((s for s in steps if s["name"] == step), {})


def names(api_client, resource, namespace: str) -> list[str]:
    return sorted(c["metadata"]["name"] for c in children(api_client, resource, namespace))


def gone(api_client, resource, namespace: str, name: str) -> bool:
    return name not in names(api_client, resource, namespace)


def test_a_failed_step_is_retried_with_a_new_attempt(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("r", spark("prepare", retries=1, backoffSeconds=1)))
    first = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    finish_spark(api_client, namespace, first, "FAILED", "executor lost")

    wait_for(lambda: "r-prepare-r1-a2" in names(api_client, SPARK, namespace), "attempt 2")
    entry = wait_for(  # the status write that records attempt 2 follows its create
        lambda: (e := step_status(api_client, namespace, "r", "prepare"))["attempts"] == 2 and e,
        "status to record attempt 2",
    )
    assert (
        entry["failures"][0]["attempt"] == 1 and "executor lost" in entry["failures"][0]["message"]
    )
    finish_spark(api_client, namespace, "r-prepare-r1-a2")
    done = wait_phase(api_client, namespace, "r", "Succeeded")
    assert done["status"]["steps"][0]["attempts"] == 2
    assert names(api_client, SPARK, namespace) == ["r-prepare-r1", "r-prepare-r1-a2"]


def test_retries_run_out_and_the_pipeline_fails(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("r", ray("fit", retries=1, backoffSeconds=1)))
    for child in ("r-fit-r1", "r-fit-r1-a2"):
        wait_for(lambda c=child: c in names(api_client, RAYJOB, namespace), child)
        finish_rayjob(api_client, namespace, child, "Failed", "FAILED", message=f"{child} broke")
    failed = wait_phase(api_client, namespace, "r", "Failed")
    assert "r-fit-r1-a2 broke" in condition(failed, "Stalled")["message"]
    assert names(api_client, RAYJOB, namespace) == ["r-fit-r1", "r-fit-r1-a2"]


def test_start_deadline_fails_a_step_stuck_in_submitted(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("d", spark("prepare", startDeadlineSeconds=2)))
    app = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    from .k8s import patch_status

    patch_status(
        api_client,
        SPARK,
        namespace,
        app,
        {"applicationState": {"state": "SUBMITTED"}, "driverInfo": {}},
    )
    failed = wait_phase(api_client, namespace, "d", "Failed")
    stalled = condition(failed, "Stalled")
    assert stalled["reason"] == "StepPrepareSparkApplicationStartDeadlineExceeded"
    assert "startDeadlineSeconds (2s) expired" in stalled["message"]
    wait_for(lambda: gone(api_client, SPARK, namespace, app), "the stuck child to be deleted")


def test_pipeline_active_deadline(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("d", ray("fit"), activeDeadlineSeconds=2))
    wait_child(api_client, RAYJOB, namespace, "fit")
    failed = wait_phase(api_client, namespace, "d", "Failed")
    assert condition(failed, "Stalled")["reason"] == "ActiveDeadlineExceeded"


def test_suspend_and_resume(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("s", spark("prepare"), ray("train")))
    app = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    wait_phase(api_client, namespace, "s", "Running")

    patch_spec(api_client, namespace, "s", {"suspend": True})
    suspended = wait_phase(api_client, namespace, "s", "Suspended")
    assert suspended["status"]["run"] == 1, "changing suspend never starts a new run"
    wait_for(
        lambda: get(api_client, SPARK, namespace, app)["spec"].get("suspend") is True,
        "the SparkApplication to be suspended",
    )
    finish_spark(api_client, namespace, app)  # it finishes while suspended: nothing starts
    wait_for(
        lambda: step_status(api_client, namespace, "s", "prepare").get("phase") == "Succeeded",
        "prepare to be recorded as succeeded",
    )
    assert not children(api_client, RAYJOB, namespace), "no step starts while suspended"

    patch_spec(api_client, namespace, "s", {"suspend": False})
    job = wait_child(api_client, RAYJOB, namespace, "train")["metadata"]["name"]
    finish_rayjob(api_client, namespace, job)
    assert wait_phase(api_client, namespace, "s", "Succeeded")["status"]["run"] == 1


def test_ttl_deletes_the_children_and_keeps_the_mljob(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("t", spark("prepare"), ttlSecondsAfterFinished=1))
    app = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    finish_spark(api_client, namespace, app)
    wait_phase(api_client, namespace, "t", "Succeeded")
    wait_for(lambda: gone(api_client, SPARK, namespace, app), "the TTL to delete the children")
    # The deletes come first, then the status write that records them.
    kept = wait_for(
        lambda: get(api_client, MLJOB, namespace, "t")["status"].get("childrenDeletedTime"),
        "status.childrenDeletedTime",
    )
    assert kept and get(api_client, MLJOB, namespace, "t")["status"]["phase"] == "Succeeded"


def test_a_spec_change_waits_for_the_running_step_then_starts_a_new_run(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("c", spark("prepare"), ray("train")))
    app = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    wait_phase(api_client, namespace, "c", "Running")

    steps = get(api_client, MLJOB, namespace, "c")["spec"]["steps"]
    steps[0]["spark"]["arguments"] = ["--rows", "10"]
    patch_spec(api_client, namespace, "c", {"steps": steps})
    wait_for(
        lambda: (
            condition(get(api_client, MLJOB, namespace, "c"), "Reconciling")["reason"]
            == "WaitingForRunningSteps"
        ),
        "the MLJob to wait for the running step of run 1",
    )
    assert names(api_client, SPARK, namespace) == [app], "run 2 waits for run 1's child"
    finish_spark(api_client, namespace, app)

    wait_for(lambda: "c-prepare-r2" in names(api_client, SPARK, namespace), "run 2's first child")
    new = get(api_client, SPARK, namespace, "c-prepare-r2")
    assert new["metadata"]["labels"]["mljob.io/run"] == "2"
    assert new["spec"]["arguments"] == ["--rows", "10"]
    status = wait_for(
        lambda: (s := get(api_client, MLJOB, namespace, "c")["status"])["run"] == 2 and s,
        "status to record run 2",
    )
    assert status["runs"][0]["run"] == 1
    assert not children(api_client, RAYJOB, namespace), "run 1's train never started"


def test_cancel_running_deletes_the_old_run_at_once(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("c", spark("prepare"), onSpecChange="CancelRunning"))
    app = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    wait_phase(api_client, namespace, "c", "Running")
    patch_spec(api_client, namespace, "c", {"image": "example.com/churn:2"})
    wait_for(lambda: "c-prepare-r2" in names(api_client, SPARK, namespace), "run 2's child")
    wait_for(lambda: gone(api_client, SPARK, namespace, app), "run 1's child to be deleted")
    runs = wait_for(
        lambda: get(api_client, MLJOB, namespace, "c")["status"].get("runs"), "status.runs"
    )
    assert runs[0]["phase"] == "Cancelled"


def test_a_child_deleted_by_someone_else_fails_the_step(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("x", spark("prepare"), ray("train")))
    app = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    wait_phase(api_client, namespace, "x", "Running")
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        *SPARK[:2], namespace, SPARK[2], app
    )
    failed = wait_phase(api_client, namespace, "x", "Failed")
    assert f"SparkApplication {app} was deleted" in condition(failed, "Stalled")["message"]
    assert not children(api_client, RAYJOB, namespace)


def test_deleting_the_mljob_deletes_every_child_including_the_shared_cluster(api_client, namespace):
    steps = [ray("train")]
    del steps[0]["ray"]["rayVersion"]
    create(api_client, MLJOB, namespace, mljob("g", *steps, rayCluster={"rayVersion": "2.49.0"}))
    wait_child(api_client, RAYJOB, namespace, "train")
    wait_child(api_client, RAYCLUSTER, namespace, None)
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        *MLJOB[:2], namespace, MLJOB[2], "g"
    )
    wait_for(
        lambda: (
            not children(api_client, RAYJOB, namespace)
            and not children(api_client, RAYCLUSTER, namespace)
        ),
        "the garbage collector to delete the RayJob and the shared RayCluster",
    )


def test_bad_input_is_rejected_or_failed_and_valid_mljobs_keep_running(api_client, namespace):
    from mljob.testing.corpus import BAD_MANIFESTS

    create(api_client, MLJOB, namespace, mljob("good", spark("prepare")))
    outcomes: dict[str, str] = {}
    for case, manifest, fragment in BAD_MANIFESTS:
        if not isinstance(manifest, dict) or not isinstance(manifest.get("metadata"), dict):
            continue  # not an object at all: kubectl would not send it
        body = copy.deepcopy(manifest)
        # Keep a deliberately bad name; give the others a unique one in this namespace.
        name = manifest["metadata"].get("name", "")
        body["metadata"] = {"name": f"bad-{len(outcomes)}" if name == "churn" else name}
        body["metadata"] = {k: v for k, v in body["metadata"].items() if v}
        try:
            create(api_client, MLJOB, namespace, body)
        except client.ApiException as error:
            assert error.status in (400, 422), (case, error.status, error.body)
            outcomes[case] = "rejected at apply time"
            continue
        failed = wait_phase(api_client, namespace, body["metadata"]["name"], "Failed", timeout=10)
        stalled = condition(failed, "Stalled")
        assert stalled["reason"] == "InvalidSpec", case
        assert fragment.split(":")[-1].strip() in stalled["message"], (case, stalled["message"])
        outcomes[case] = "Failed: InvalidSpec"
    assert len(outcomes) >= 30
    app = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    assert app == "good-prepare-r1" and len(children(api_client, SPARK, namespace)) == 1
    finish_spark(api_client, namespace, app)
    wait_phase(api_client, namespace, "good", "Succeeded")
