"""The glue's answers to a create, forced deterministically on the real control plane (the
decisions themselves are unit-tested in tests/unit/test_expectations.py):

- a 409 on a child this MLJob owns is adopted (the planner records it; nothing is created again);
- a 409 on a same-named child this MLJob does not own fails the step with that reason;
- a 403 from a ResourceQuota is in test_pipeline.py and test_shared_cluster.py.

The child is made before the operator may start the step (the MLJob is created suspended, and
the test waits for the status that says so), without the `mljob.io/name` label, so the watch
never shows it to the planner: the only way the operator learns of it is the 409.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from mljob import builders

from .k8s import MLJOB, SPARK, create, get, patch_status, wait_for
from .test_pipeline import children, mljob, spark, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator_process")]


def _suspended(api_client, namespace: str, name: str) -> dict:
    create(api_client, MLJOB, namespace, mljob(name, spark("prepare"), suspend=True))
    return wait_phase(api_client, namespace, name, "Suspended")


def _hidden_child(job: dict, owned: bool) -> dict:
    """The child the operator would create for step `prepare`, without the watched label; owned
    by the MLJob, or by nobody (made by hand)."""
    body = builders.build_step_child(job, job["spec"]["steps"][0], 1, 1)
    del body["metadata"]["labels"]["mljob.io/name"]
    if not owned:
        del body["metadata"]["ownerReferences"]
    return body


def _resume(api_client, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        *MLJOB[:2], namespace, MLJOB[2], name, {"spec": {"suspend": False}}
    )


def test_a_409_on_an_owned_child_adopts_it(api_client, namespace):
    job = _suspended(api_client, namespace, "adopt")
    made = create(api_client, SPARK, namespace, _hidden_child(job, owned=True))
    _resume(api_client, namespace, "adopt")

    def adopted():
        status = get(api_client, MLJOB, namespace, "adopt").get("status") or {}
        entry = (status.get("steps") or [{}])[0]
        return status if entry.get("attempts") == 1 and status["phase"] != "Suspended" else None

    status = wait_for(adopted, "the step to record the existing child")
    entry = status["steps"][0]
    assert entry["child"] == "adopt-prepare-r1" and entry["phase"] == "Pending", entry
    assert [c["metadata"]["uid"] for c in children(api_client, SPARK, namespace)] == [
        made["metadata"]["uid"]
    ], "adopted, not created again"
    # Once labelled, the watch carries it like any child: the pipeline finishes on it.
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        *SPARK[:2],
        namespace,
        SPARK[2],
        "adopt-prepare-r1",
        {"metadata": {"labels": {"mljob.io/name": "adopt"}}},
    )
    patch_status(
        api_client,
        SPARK,
        namespace,
        "adopt-prepare-r1",
        {"applicationState": {"state": "COMPLETED"}, "driverInfo": {}},
    )
    wait_phase(api_client, namespace, "adopt", "Succeeded")


def test_a_409_on_a_child_owned_by_someone_else_fails_the_step(api_client, namespace):
    job = _suspended(api_client, namespace, "foreign")
    made = create(api_client, SPARK, namespace, _hidden_child(job, owned=False))
    _resume(api_client, namespace, "foreign")
    failed = wait_phase(api_client, namespace, "foreign", "Failed")
    entry = failed["status"]["steps"][0]
    assert entry["childState"] == "CreateRejected", entry
    assert (
        "a SparkApplication named foreign-prepare-r1 exists and is not owned by this MLJob"
        in entry["message"]
    )
    # the stranger's object is left alone
    [left] = children(api_client, SPARK, namespace)
    assert left["metadata"]["uid"] == made["metadata"]["uid"]
    assert not left["metadata"].get("ownerReferences")
