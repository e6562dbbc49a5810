"""KubeRay v1.6.1 rules that validate() used to let through, found by the end-to-end tier
(tests/e2e): the real controller ends such a RayJob ValidationFailed, and leaves such a shared
RayCluster without any status, for ever (only an InvalidRayClusterSpec Event)."""

import pytest

from mljob.testing.corpus import mljob, ray_step, shared_cluster_mljob
from mljob.validation import validate


def own_cluster(version: str, template: dict) -> dict:
    step = ray_step("train")
    step["ray"]["rayVersion"] = version
    step["ray"]["template"] = template
    return mljob([step])


@pytest.mark.parametrize(
    ("version", "auth", "expected"),
    [
        ("2.49.0", {"mode": "token"}, "authOptions.mode: token needs Ray >= 2.52.0"),
        (
            "2.53.0",
            {"mode": "token", "enableK8sTokenAuth": True},
            "authOptions.enableK8sTokenAuth: needs Ray >= 2.55.0",
        ),
        ("2.56.0", {"enableK8sTokenAuth": True}, "needs authOptions.mode: token"),
        (
            "2.56.0",
            {"mode": "token", "enableK8sTokenAuth": True, "secretName": "s"},
            "enableK8sTokenAuth and secretName exclude each other",
        ),
    ],
)
def test_shared_cluster_auth_options_follow_kuberay(version, auth, expected):
    errors = validate(shared_cluster_mljob(rayVersion=version, template={"authOptions": auth}))
    assert any(e.startswith("spec.rayCluster.authOptions") and expected in e for e in errors), (
        errors
    )


def test_token_auth_on_a_new_enough_ray_is_valid():
    assert (
        validate(
            shared_cluster_mljob(rayVersion="2.52.0", template={"authOptions": {"mode": "token"}})
        )
        == []
    )
    assert (
        validate(own_cluster("2.53.1", {"rayClusterSpec": {"authOptions": {"mode": "token"}}}))
        == []
    )


def test_a_rayjob_with_old_ray_and_token_auth_is_refused():
    errors = validate(own_cluster("2.49.0", {"rayClusterSpec": {"authOptions": {"mode": "token"}}}))
    assert errors == [
        "spec.steps[0].ray.rayClusterSpec.authOptions.mode: token needs Ray >= 2.52.0 "
        "(rayVersion is 2.49.0)"
    ]


def test_a_rayjob_never_takes_kubernetes_token_auth():
    auth = {"mode": "token", "enableK8sTokenAuth": True}
    errors = validate(own_cluster("2.56.0", {"rayClusterSpec": {"authOptions": auth}}))
    assert errors == [
        "spec.steps[0].ray.rayClusterSpec.authOptions.enableK8sTokenAuth: not on a RayJob"
    ]


def test_sidecar_mode_needs_a_head_that_never_restarts():
    head = {"headGroupSpec": {"template": {"spec": {"restartPolicy": "Always"}}}}
    template = {"submissionMode": "SidecarMode", "rayClusterSpec": head}
    errors = validate(own_cluster("2.49.0", template))
    assert errors == [
        "spec.steps[0].ray.submissionMode: SidecarMode needs the head's restartPolicy Never"
    ]
    head["headGroupSpec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert validate(own_cluster("2.49.0", template)) == []
