"""The admission webhook, registered with the real API server and called by it."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from mljob.admission import WEBHOOK_ID
from mljob.testing.certs import issue_serving_files
from mljob.testing.corpus import shared_cluster_mljob
from mljob.testing.operator_process import OperatorProcess
from mljob.testing.processes import free_port

from .k8s import MLJOB, RAYCLUSTER, RAYJOB, SPARK, create, wait_for
from .test_pipeline import children, condition, mljob, ray, spark, wait_phase

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook_namespace(control_plane, api_client, tmp_path) -> Iterator[str]:
    """A namespace whose MLJobs go through a webhook served by an operator of its own."""
    namespace = f"w-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    cert, key = issue_serving_files(control_plane.pki, tmp_path, ["127.0.0.1"])
    port = free_port()
    operator = OperatorProcess(
        control_plane,
        tmp_path / "operator.log",
        namespaces=[namespace],
        extra_args=[f"--webhook-port={port}", f"--webhook-cert={cert}", f"--webhook-key={key}"],
    ).start()
    registrations = client.AdmissionregistrationV1Api(api_client)
    config_name = f"mljob-{namespace}"
    registrations.create_validating_webhook_configuration(
        webhook_configuration(config_name, namespace, port, control_plane.pki.ca_cert.read_bytes())
    )
    try:
        yield namespace
    finally:
        registrations.delete_validating_webhook_configuration(config_name)
        operator.stop()
        core.delete_namespace(namespace)


def webhook_configuration(name: str, namespace: str, port: int, ca: bytes) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "validate.mljob.io",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/{WEBHOOK_ID}",
                    "caBundle": base64.b64encode(ca).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["mljob.io"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["mljobs"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
            }
        ],
    }


def cyclic() -> dict:
    return mljob("cyclic", spark("a", dependsOn=["b"]), spark("b", dependsOn=["a"]))


def create_error(api_client, namespace: str, body: dict) -> client.ApiException:
    with pytest.raises(client.ApiException) as raised:
        create(api_client, MLJOB, namespace, copy.deepcopy(body))
    return raised.value


def message(error: client.ApiException) -> str:
    return json.loads(error.body)["message"]


def as_user(control_plane, user: str):
    """An API client that impersonates `user` (the admin may impersonate anyone)."""
    impersonating = control_plane.api_client()
    impersonating.set_default_header("Impersonate-User", user)
    return impersonating


def grant(api_client, namespace: str, user: str, rules: list[dict]) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": user}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


MLJOB_WRITER = {"apiGroups": ["mljob.io"], "resources": ["mljobs"], "verbs": ["create", "get"]}
RAYJOB_WRITER = {"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create"]}


def webhook_answer(api_client, namespace: str) -> str:
    """Wait until the API server calls the webhook (its configuration is picked up with a lag),
    probing with a dry-run create of a cyclic MLJob; return the webhook's message."""

    def answer() -> str | None:
        try:
            client.CustomObjectsApi(api_client).create_namespaced_custom_object(
                *MLJOB[:2], namespace, MLJOB[2], cyclic(), dry_run="All"
            )
        except client.ApiException as error:
            text = message(error)
            return text if "admission webhook" in text else None
        return None  # accepted: the webhook is not called yet

    return wait_for(answer, "the API server to call the webhook", timeout=30)


def test_a_dependency_cycle_is_rejected_at_apply_time(api_client, webhook_namespace):
    webhook_answer(api_client, webhook_namespace)
    rejected = create_error(api_client, webhook_namespace, cyclic())
    assert rejected.status == 422
    assert "dependency cycle a -> b -> a" in message(rejected)


def test_a_user_who_may_not_create_rayjobs_cannot_create_an_mljob_with_a_ray_step(
    control_plane, api_client, webhook_namespace
):
    webhook_answer(api_client, webhook_namespace)
    grant(api_client, webhook_namespace, "alice", [MLJOB_WRITER])
    grant(api_client, webhook_namespace, "bob", [MLJOB_WRITER, RAYJOB_WRITER])
    train = mljob("train", ray("fit"))

    with as_user(control_plane, "alice") as alice:
        denied = create_error(alice, webhook_namespace, train)
    assert denied.status == 403
    assert "user 'alice' may not create rayjobs.ray.io" in message(denied)

    with as_user(control_plane, "bob") as bob:
        accepted = create(bob, MLJOB, webhook_namespace, copy.deepcopy(train))
    assert accepted["metadata"]["name"] == "train"


def bad_cluster_template(name: str) -> dict:
    """Two Ray steps on a shared RayCluster whose template adds a field RayCluster lacks: the
    API server would refuse the RayCluster only once the pipeline started (issue 15)."""
    job = shared_cluster_mljob(template={"headGroupSpec": {"bogusField": 1}})
    job["metadata"] = {"name": name}
    return job


BOGUS_FIELD = "spec.rayCluster.template: RayCluster spec.headGroupSpec.bogusField: unknown field"


def test_a_template_the_upstream_schema_refuses_is_rejected_at_kubectl_apply(
    control_plane, api_client, webhook_namespace
):
    webhook_answer(api_client, webhook_namespace)
    applied = control_plane.kubectl(
        "apply", "-n", webhook_namespace, "-f", "-",
        input=yaml.safe_dump(bad_cluster_template("bogus")), check=False,
    )  # fmt: skip
    assert applied.returncode != 0
    assert "admission webhook" in applied.stderr and BOGUS_FIELD in applied.stderr
    assert not children(api_client, MLJOB, webhook_namespace)


@pytest.fixture
def plain_namespace(control_plane, api_client, tmp_path) -> Iterator[str]:
    """A namespace served by an operator of its own without a webhook, started once the
    namespace exists (the shared t-* operator may miss a namespace created right after its
    start: its readiness does not wait for kopf's namespace discovery)."""
    namespace = f"p-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    operator = OperatorProcess(control_plane, tmp_path / "operator.log", namespaces=[namespace])
    operator.start()
    try:
        yield namespace
    finally:
        operator.stop()
        core.delete_namespace(namespace)


def test_without_the_webhook_the_bad_template_fails_the_mljob_before_any_child(
    api_client, plain_namespace
):
    create(api_client, MLJOB, plain_namespace, bad_cluster_template("bogus"))
    failed = wait_phase(api_client, plain_namespace, "bogus", "Failed")  # status written first
    stalled = condition(failed, "Stalled")
    assert stalled["reason"] == "InvalidSpec" and BOGUS_FIELD in stalled["message"]
    for kind in (RAYCLUSTER, RAYJOB, SPARK):
        assert not children(api_client, kind, plain_namespace), kind
