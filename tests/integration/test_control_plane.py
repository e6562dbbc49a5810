"""Prove the test harness is real: real schemas, real validation, real watches, real GC."""

from __future__ import annotations

import copy
import threading

import pytest
from kubernetes import client, watch

from .k8s import RAYJOB, SPARK, create, get, patch_status, wait_for

pytestmark = pytest.mark.integration

SPARK_APP = {
    "apiVersion": "sparkoperator.k8s.io/v1beta2",
    "kind": "SparkApplication",
    "metadata": {"name": "etl"},
    "spec": {
        "type": "Python",
        "mode": "cluster",
        "image": "spark:4.0.1",
        "mainApplicationFile": "local:///app/etl.py",
        "sparkVersion": "4.0.1",
        "driver": {"cores": 1, "memory": "1g"},
        "executor": {"instances": 1, "cores": 1, "memory": "1g"},
    },
}

RAY_JOB = {
    "apiVersion": "ray.io/v1",
    "kind": "RayJob",
    "metadata": {"name": "train"},
    "spec": {
        "entrypoint": "python /app/train.py",
        "shutdownAfterJobFinishes": True,
        "rayClusterSpec": {
            "rayVersion": "2.49.0",
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {
                    "spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.49.0"}]}
                },
            },
        },
    },
}


def _rejection(api_client, resource, namespace: str, body: dict) -> str:
    with pytest.raises(client.ApiException) as raised:
        create(api_client, resource, namespace, body)
    assert raised.value.status in (400, 422), raised.value.body
    return raised.value.body


def test_minimal_spark_application_and_ray_job_are_accepted(api_client, namespace):
    app = create(api_client, SPARK, namespace, copy.deepcopy(SPARK_APP))
    job = create(api_client, RAYJOB, namespace, copy.deepcopy(RAY_JOB))
    assert app["metadata"]["uid"] and job["metadata"]["uid"]
    assert get(api_client, SPARK, namespace, "etl")["spec"]["sparkVersion"] == "4.0.1"


def test_spark_version_as_number_is_rejected_by_the_upstream_schema(api_client, namespace):
    body = copy.deepcopy(SPARK_APP)
    body["spec"]["sparkVersion"] = 4.0
    message = _rejection(api_client, SPARK, namespace, body)
    assert "spec.sparkVersion" in message and "string" in message


def test_ray_cluster_spec_without_head_group_is_rejected(api_client, namespace):
    body = copy.deepcopy(RAY_JOB)
    del body["spec"]["rayClusterSpec"]["headGroupSpec"]
    message = _rejection(api_client, RAYJOB, namespace, body)
    assert "spec.rayClusterSpec.headGroupSpec" in message and "Required value" in message


def test_unknown_field_is_rejected_under_strict_field_validation(api_client, namespace):
    body = copy.deepcopy(SPARK_APP)
    body["spec"]["driverCoresPlease"] = 3
    message = _rejection(api_client, SPARK, namespace, body)
    assert 'unknown field \\"spec.driverCoresPlease\\"' in message


def test_status_patch_is_visible_to_a_watch(api_client, namespace):
    created = create(api_client, SPARK, namespace, copy.deepcopy(SPARK_APP))
    seen: list[str] = []

    def watch_states() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            client.CustomObjectsApi(api_client).list_namespaced_custom_object,
            *SPARK[:2],
            namespace,
            SPARK[2],
            resource_version=created["metadata"]["resourceVersion"],
            timeout_seconds=30,
        ):
            state = (event["object"].get("status") or {}).get("applicationState", {}).get("state")
            if state:
                seen.append(state)
            if state == "RUNNING":
                stream.stop()

    watcher = threading.Thread(target=watch_states, daemon=True)
    watcher.start()
    patch_status(
        api_client,
        SPARK,
        namespace,
        "etl",
        {"applicationState": {"state": "RUNNING"}, "driverInfo": {}},
    )
    watcher.join(timeout=30)
    assert seen == ["RUNNING"]


def test_deleting_an_owner_garbage_collects_what_it_owns(api_client, namespace):
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    app = copy.deepcopy(SPARK_APP)
    app["metadata"]["ownerReferences"] = [reference]
    create(api_client, SPARK, namespace, app)
    core.delete_namespaced_config_map("owner", namespace)

    def spark_app_gone() -> bool:
        try:
            get(api_client, SPARK, namespace, "etl")
        except client.ApiException as error:
            return error.status == 404
        return False

    wait_for(spark_app_gone, "the garbage collector to delete the owned SparkApplication")


def test_kubectl_explain_documents_the_mljob_api(control_plane):
    """The MLJob CRD's descriptions reach `kubectl explain` (served from the real OpenAPI)."""
    ray = control_plane.kubectl("explain", "mljob.spec.steps.ray").stdout
    assert "Run this step as a RayJob" in ray
    assert "entrypoint\t<string> -required-" in ray
    status = control_plane.kubectl("explain", "mljob.status.conditions").stdout
    assert "lastTransitionTime" in status and "observedGeneration" in status
    listed = control_plane.kubectl("get", "mlj", "-A")  # the short name works
    assert listed.returncode == 0
