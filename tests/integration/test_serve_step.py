"""A serve step's RayService on the real control plane: created, ready (the endpoint and the
live run in status), updated in place by a new run (the same name, the new spec; the step
succeeds only once the new version serves), a failed update (the old version stays live), and
the MLJob's deletion (the garbage collector deletes the RayService). The tests play KubeRay by
patching the RayService's /status with what KubeRay v1.6.1 writes (mljob.testing.rayservice)."""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client

from mljob.testing import rayservice as kuberay

from .k8s import MLJOB, RAYJOB, create, get, wait_for
from .test_lifecycle import patch_spec, step_status
from .test_pipeline import children, finish_rayjob, mljob, mljob_events, ray, wait_child, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator_process")]

RAYSERVICE = ("ray.io", "v1", "rayservices")
FAILED = kuberay.apps("DEPLOY_FAILED", "ImportError: No module named 'serve_app'")


def serve(name: str = "serve", **extra: object) -> dict:
    fields = {"importPath": "serve_app:app", "rayVersion": "2.49.0", "routePrefix": "/predict"}
    return {"name": name, "serve": fields, **extra}


def rayservice(api_client, namespace: str, name: str) -> dict:
    return get(api_client, RAYSERVICE, namespace, name)


def play_kuberay(api_client, namespace: str, name: str, status: dict) -> None:
    """Write a whole status as KubeRay's Status().Update does: it replaces the previous one."""
    objects = client.CustomObjectsApi(api_client)
    body = rayservice(api_client, namespace, name)
    body["status"] = status
    objects.replace_namespaced_custom_object_status(
        *RAYSERVICE[:2], namespace, RAYSERVICE[2], name, body
    )


def serving_record(api_client, namespace: str, name: str) -> dict:
    records = (get(api_client, MLJOB, namespace, name).get("status") or {}).get("serving") or []
    return records[0] if records else {}


def start_serving(api_client, namespace: str, name: str, *steps: dict) -> dict:
    """Create the MLJob, finish its train step, and bring its RayService to serving (run 1)."""
    create(api_client, MLJOB, namespace, mljob(name, ray("train"), *steps))
    train = wait_child(api_client, RAYJOB, namespace, "train")["metadata"]["name"]
    finish_rayjob(api_client, namespace, train)
    service = wait_child(api_client, RAYSERVICE, namespace, "serve")
    rs = service["metadata"]["name"]
    assert service["metadata"]["generation"] == 1
    play_kuberay(api_client, namespace, rs, kuberay.deploying(1, f"{rs}-aaaaa", None))
    play_kuberay(
        api_client, namespace, rs, kuberay.deploying(1, f"{rs}-aaaaa", kuberay.apps("DEPLOYING"))
    )
    wait_for(
        lambda: step_status(api_client, namespace, name, "serve").get("phase") == "Running",
        "the serve step to be Running",
    )
    play_kuberay(api_client, namespace, rs, kuberay.serving(1, f"{rs}-aaaaa"))
    return wait_phase(api_client, namespace, name, "Succeeded")


def finish_run_2s_train(api_client, namespace: str) -> None:
    """Play KubeRay: run 2's train RayJob succeeds, so run 2 reaches its serve step."""
    train = wait_for(
        lambda: [
            j["metadata"]["name"]
            for j in children(api_client, RAYJOB, namespace)
            if j["metadata"]["labels"]["mljob.io/run"] == "2"
        ],
        "run 2's train RayJob",
    )[0]
    finish_rayjob(api_client, namespace, train)


def test_create_then_ready_records_the_endpoint_and_the_live_run(api_client, namespace):
    job = start_serving(api_client, namespace, "m", serve())
    entry = next(s for s in job["status"]["steps"] if s["name"] == "serve")
    url = f"http://m-serve-serve-svc.{namespace}.svc:8000/predict"
    assert (entry["kind"], entry["child"], entry["phase"]) == ("RayService", "m-serve", "Succeeded")
    assert entry["message"] == f"run 1's model serves at {url}"
    record = job["status"]["serving"][0]
    assert {k: v for k, v in record.items() if k != "since"} == {
        "step": "serve",
        "rayService": "m-serve",
        "service": "m-serve-serve-svc",
        "port": 8000,
        "route": "/predict",
        "url": url,
        "liveRun": 1,
    }
    service = rayservice(api_client, namespace, "m-serve")
    owner = service["metadata"]["ownerReferences"][0]
    assert owner["uid"] == job["metadata"]["uid"] and owner["controller"] is True
    assert service["spec"]["upgradeStrategy"] == {"type": "NewCluster"}


def test_a_new_run_updates_the_same_rayservice_and_succeeds_once_the_new_version_serves(
    api_client, namespace
):
    start_serving(api_client, namespace, "u", serve())
    uid = rayservice(api_client, namespace, "u-serve")["metadata"]["uid"]
    patch_spec(api_client, namespace, "u", {"env": [{"name": "MODEL", "value": "v2"}]})  # run 2
    finish_run_2s_train(api_client, namespace)
    updated = wait_for(
        lambda: (
            s
            if (s := rayservice(api_client, namespace, "u-serve"))["metadata"]["labels"][
                "mljob.io/run"
            ]
            == "2"
            else None
        ),
        "the RayService to carry run 2's spec",
    )
    assert updated["metadata"]["uid"] == uid  # the same object, updated in place
    assert updated["metadata"]["generation"] == 2
    config = yaml.safe_load(updated["spec"]["serveConfigV2"])
    env = config["applications"][0]["runtime_env"]["env_vars"]
    assert (env["MODEL"], env["MLJOB_RUN"]) == ("v2", "2")
    assert [s["metadata"]["name"] for s in children(api_client, RAYSERVICE, namespace)] == [
        "u-serve"
    ]
    # KubeRay rolls run 2 out on a new cluster while run 1's keeps serving: not done yet.
    rolling = kuberay.deploying(2, "u-serve-bbbbb", kuberay.apps(), "u-serve-aaaaa", 1)
    play_kuberay(api_client, namespace, "u-serve", rolling)
    wait_for(
        lambda: (
            step_status(api_client, namespace, "u", "serve").get("childState")
            == "UpgradeInProgress"
        ),
        "the serve step to show the upgrade",
    )
    job = get(api_client, MLJOB, namespace, "u")
    assert job["status"]["phase"] == "Running" and job["status"]["run"] == 2
    assert serving_record(api_client, namespace, "u")["liveRun"] == 1
    # KubeRay promotes the new cluster: run 2's model serves.
    play_kuberay(api_client, namespace, "u-serve", kuberay.serving(2, "u-serve-bbbbb"))
    wait_phase(api_client, namespace, "u", "Succeeded")
    assert serving_record(api_client, namespace, "u")["liveRun"] == 2
    assert rayservice(api_client, namespace, "u-serve")["metadata"]["uid"] == uid


def test_a_failed_update_fails_the_step_and_leaves_the_old_version_live(api_client, namespace):
    start_serving(api_client, namespace, "f", serve(retries=2, backoffSeconds=0))
    patch_spec(api_client, namespace, "f", {"env": [{"name": "MODEL", "value": "broken"}]})
    finish_run_2s_train(api_client, namespace)
    wait_for(
        lambda: rayservice(api_client, namespace, "f-serve")["metadata"]["generation"] == 2,
        "the RayService to be updated",
    )
    failing = kuberay.deploying(2, "f-serve-bbbbb", FAILED, "f-serve-aaaaa", 1)
    play_kuberay(api_client, namespace, "f-serve", failing)
    job = wait_phase(api_client, namespace, "f", "Failed")
    entry = next(s for s in job["status"]["steps"] if s["name"] == "serve")
    assert entry["message"] == (
        "Serve application serve DEPLOY_FAILED: ImportError: No module named 'serve_app'"
    )
    assert entry["attempts"] == 1  # no retry: the same spec would fail the same way
    assert job["status"]["serving"][0]["liveRun"] == 1  # run 1's model still answers
    # the Event is posted after the status write that failed the step
    wait_for(lambda: "StepFailed" in mljob_events(api_client, namespace, "f"), "a StepFailed Event")
    # the RayService stays (KubeRay keeps the active cluster serving run 1's model)
    assert rayservice(api_client, namespace, "f-serve")["metadata"]["labels"]["mljob.io/run"] == "2"


def test_a_failed_first_deployment_is_retried_under_the_same_name(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("r", serve(retries=1, backoffSeconds=0)))
    first = wait_child(api_client, RAYSERVICE, namespace, "serve")
    play_kuberay(api_client, namespace, "r-serve", kuberay.deploying(1, "r-serve-aaaaa", FAILED))

    def second():
        items = children(api_client, RAYSERVICE, namespace)
        retry = [s for s in items if s["metadata"]["uid"] != first["metadata"]["uid"]]
        return retry[0] if retry else None

    again = wait_for(second, "the retry's RayService")
    assert again["metadata"]["name"] == "r-serve"
    assert again["metadata"]["labels"]["mljob.io/attempt"] == "2"
    play_kuberay(api_client, namespace, "r-serve", kuberay.serving(1, "r-serve-bbbbb"))
    job = wait_phase(api_client, namespace, "r", "Succeeded")
    assert job["status"]["steps"][0]["attempts"] == 2
    assert job["status"]["serving"][0]["liveRun"] == 1


def test_deleting_the_mljob_deletes_the_rayservice(api_client, namespace):
    start_serving(api_client, namespace, "d", serve())
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        *MLJOB[:2], namespace, MLJOB[2], "d"
    )
    wait_for(
        lambda: not children(api_client, RAYSERVICE, namespace),
        "the garbage collector to delete the RayService",
    )


def test_removing_the_serve_step_deletes_its_rayservice(api_client, namespace):
    start_serving(api_client, namespace, "x", serve())
    job = get(api_client, MLJOB, namespace, "x")
    patch_spec(api_client, namespace, "x", {"steps": job["spec"]["steps"][:1]})
    wait_for(
        lambda: not children(api_client, RAYSERVICE, namespace),
        "the operator to delete the RayService of the removed step",
    )
    wait_for(
        lambda: "serving" not in (get(api_client, MLJOB, namespace, "x").get("status") or {}),
        "status.serving to drop it",
    )
