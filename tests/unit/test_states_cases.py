"""states' RayService mapping on small exact cases: the raw state and message shown for an
unhealthy or failed Serve application, the promotion check, and the serve endpoint's URL."""

from __future__ import annotations

from typing import Any

from mljob.states import ChildState, ray_service_state, serve_endpoint, serve_url

Obj = dict[str, Any]


def service(status: Obj, **metadata: Any) -> Obj:
    return {"metadata": {"name": "churn-serve", "generation": 1, **metadata}, "status": status}


def apps(**statuses: Obj) -> Obj:
    return {"rayClusterName": "churn-serve-abc", "applicationStatuses": statuses}


def test_an_unhealthy_application_without_a_service_status_is_shown_as_unhealthy() -> None:
    status = {"observedGeneration": 1, "activeServiceStatus": apps(app={"status": "UNHEALTHY"})}
    assert ray_service_state(service(status)) == ChildState(
        "Running", "UNHEALTHY", "Serve application app UNHEALTHY: no message"
    )


def test_a_failed_deployment_names_the_first_failing_deployment() -> None:
    deployments = {
        "Model": {"status": "UNHEALTHY", "message": "replica crashed"},
        "Ingress": {"status": "HEALTHY"},
    }
    app = {"status": "DEPLOY_FAILED", "serveDeploymentStatuses": deployments}
    status = {"observedGeneration": 1, "activeServiceStatus": apps(app=app)}
    assert ray_service_state(service(status)) == ChildState(
        "Failed",
        "DEPLOY_FAILED",
        "Serve application app DEPLOY_FAILED: deployment Model: replica crashed",
    )


def test_an_application_without_a_status_says_so_plainly() -> None:
    status = {"observedGeneration": 1, "activeServiceStatus": apps(app={"status": "UNHEALTHY"})}
    status["activeServiceStatus"]["applicationStatuses"]["other"] = {
        "status": "UNHEALTHY",
        "message": "m",
    }
    state = ray_service_state(service(status))
    assert state.message == "Serve application app UNHEALTHY: no message"


def test_an_upgrade_in_progress_is_not_serving_the_new_spec_yet() -> None:
    """KubeRay deploys the new spec on a pending cluster and says UpgradeInProgress until it
    promotes it: meanwhile the older model serves."""
    running = apps(app={"status": "RUNNING"})
    ready = {"type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints"}
    serving = {"observedGeneration": 1, "conditions": [ready], "activeServiceStatus": running}
    assert ray_service_state(service(serving)) == ChildState(
        "Succeeded", "NonZeroServeEndpoints", "serving on the RayCluster churn-serve-abc"
    )
    upgrading = {
        **serving,
        "conditions": [ready, {"type": "UpgradeInProgress", "status": "True"}],
        "pendingServiceStatus": {**running, "rayClusterName": "churn-serve-new"},
    }
    assert ray_service_state(service(upgrading)) == ChildState(
        "Running",
        "UpgradeInProgress",
        "rolling out on the new cluster churn-serve-new; churn-serve-abc still serves",
    )


def test_the_serve_url_defaults_to_the_root_route_and_the_default_namespace() -> None:
    bare = {"metadata": {"name": "churn-serve"}, "spec": {}}
    assert serve_endpoint(bare) == ("churn-serve-serve-svc", 8000, "/")
    assert serve_url(bare) == "http://churn-serve-serve-svc.default.svc:8000/"
    routed = {
        "metadata": {"name": "churn-serve", "namespace": "team-a"},
        "spec": {"serveConfigV2": "applications:\n- name: app\n  route_prefix: /churn\n"},
    }
    assert serve_url(routed) == "http://churn-serve-serve-svc.team-a.svc:8000/churn"
