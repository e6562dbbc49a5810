"""Serve steps (issue 12): a KubeRay RayService per serve step; its readiness mapped from
KubeRay v1.7's own signals; the RayService that serves outlives its run (TTL, newer runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from mljob import builders, kinds, planner, states
from mljob import constants as c
from mljob.testing.corpus import mljob, ray_step, spark_step
from mljob.validation import validate

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def serve_step(name: str = "serve", **serve: Any) -> dict[str, Any]:
    fields = {"importPath": "serve_app:app", "rayVersion": "2.49.0", **serve}
    return {"name": name, "serve": fields}


def pipeline(**serve: Any) -> dict[str, Any]:
    return mljob([spark_step("prepare"), ray_step("train"), serve_step(**serve)])


def test_builder_makes_a_rayservice_with_one_serve_application() -> None:
    job = pipeline(
        routePrefix="/churn",
        runtimeEnv={"env_vars": {"MODEL": "xgb"}},
        deployments=[{"name": "Churn", "numReplicas": 2, "numCpus": 0.5, "numGpus": 1}],
        workers={"replicas": 1, "maxReplicas": 3},
    )
    step = job["spec"]["steps"][2]
    service = builders.build_step_child(job, step, 2, 1)
    assert service["kind"] == "RayService" and service["apiVersion"] == "ray.io/v1"
    assert service["metadata"]["name"] == "churn-serve-r2"
    assert service["metadata"]["labels"][c.LABEL_STEP] == "serve"
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    (app,) = config["applications"]
    assert app["name"] == "serve" and app["import_path"] == "serve_app:app"
    assert app["route_prefix"] == "/churn"
    assert app["runtime_env"]["env_vars"]["MODEL"] == "xgb"
    assert app["runtime_env"]["env_vars"][c.ENV_RUN] == "2"
    assert app["deployments"] == [
        {"name": "Churn", "num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 1}}
    ]
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.49.0" and cluster["enableInTreeAutoscaling"] is True
    assert validate(job) == []  # KubeRay's CRD schema accepts it


def test_kinds_registry() -> None:
    assert kinds.of_step(serve_step()) is kinds.RAY_SERVICE
    assert kinds.of_step({"name": "x"}) is kinds.RAY_JOB  # no engine field: a Ray step, as before
    assert [k.kind for k in kinds.produced(pipeline())] == [
        "SparkApplication",
        "RayJob",
        "RayService",
    ]


@pytest.mark.parametrize(
    ("serve", "fragment"),
    [
        ({"importPath": "no colon here"}, "serve.importPath: must be module:attribute"),
        ({"routePrefix": "churn"}, "serve.routePrefix: must start with '/'"),
        ({"deployments": [{"numReplicas": 1}]}, "deployments[0].name: required"),
        ({"deployments": [{"name": "A", "numReplicas": 0}]}, "numReplicas: must be >= 1, got 0"),
        ({"deployments": [{"name": "A", "numCpus": -1}]}, "numCpus: must be a number >= 0"),
        ({"rayVersion": None}, "serve.rayVersion: required"),
        ({"entrypoint": "python x.py"}, "serve.entrypoint: unknown field"),
        ({"template": {"rayClusterConfig": None}}, "removes rayClusterConfig"),
        ({"template": {"bogus": 1}}, "serve.template: RayService spec.bogus: unknown field"),
        ({"image": "rayproject/ray:2.50.0"}, "does not match rayproject/ray:2.50.0"),
    ],
)
def test_validation(serve: dict[str, Any], fragment: str) -> None:
    step = serve_step()
    step["serve"].update(serve)
    step["serve"] = {k: v for k, v in step["serve"].items() if v is not None}
    errors = validate(mljob([spark_step("prepare"), step]))
    assert any(fragment in e for e in errors), errors


def test_exactly_one_engine() -> None:
    both = serve_step()
    both["ray"] = {"entrypoint": "x", "rayVersion": "2.49.0"}
    assert any("exactly one of `spark`, `ray` or `serve`" in e for e in validate(mljob([both])))


# --- readiness: KubeRay v1.7 RayService status -> step phase -----------------------------------
def _service(status: dict[str, Any]) -> dict[str, Any]:
    job = pipeline(routePrefix="/churn")
    service = builders.build_step_child(job, job["spec"]["steps"][2], 1, 1)
    service["status"] = status
    return service


def _ready(status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message}


def _apps(**apps: str) -> dict[str, Any]:
    return {
        "rayClusterName": "churn-serve-r1-abcde",
        "applicationStatuses": {
            name: {"status": value, "message": f"{name} says {value}"}
            for name, value in apps.items()
        },
    }


STATES: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("no status", {}, c.PENDING, "", ""),
    (
        "initializing",
        {"conditions": [_ready("False", "Initializing")]},
        c.PENDING,
        "Initializing",
        "",
    ),
    (
        "cluster up, app deploying",
        {
            "conditions": [_ready("False", "ZeroServeEndpoints")],
            "activeServiceStatus": _apps(serve="DEPLOYING"),
        },
        c.RUNNING,
        "ZeroServeEndpoints",
        "",
    ),
    (
        "serving",
        {
            "conditions": [_ready("True", "NonZeroServeEndpoints")],
            "serviceStatus": "Running",
            "numServeEndpoints": 1,
            "activeServiceStatus": _apps(serve="RUNNING"),
        },
        c.SUCCEEDED,
        "NonZeroServeEndpoints",
        "serving at http://churn-serve-r1-serve-svc.team-a.svc:8000/churn",
    ),
    (
        "ready but an app still deploying",
        {
            "conditions": [_ready("True", "NonZeroServeEndpoints")],
            "activeServiceStatus": _apps(a="RUNNING", b="DEPLOYING"),
        },
        c.RUNNING,
        "NonZeroServeEndpoints",
        "",
    ),
    (
        "upgrade in progress",
        {
            "conditions": [
                _ready("True", "NonZeroServeEndpoints"),
                {
                    "type": "UpgradeInProgress",
                    "status": "True",
                    "reason": "BothActivePendingClustersExist",
                },
            ],
            "activeServiceStatus": _apps(serve="RUNNING"),
        },
        c.RUNNING,
        "NonZeroServeEndpoints",
        "",
    ),
    (
        "deploy failed",
        {
            "conditions": [_ready("False", "ZeroServeEndpoints")],
            "activeServiceStatus": _apps(serve="DEPLOY_FAILED"),
        },
        c.FAILED,
        "ZeroServeEndpoints/DEPLOY_FAILED",
        "Serve application serve DEPLOY_FAILED: serve says DEPLOY_FAILED",
    ),
    (
        "unhealthy is not final",
        {
            "conditions": [_ready("False", "ZeroServeEndpoints")],
            "activeServiceStatus": _apps(serve="UNHEALTHY"),
        },
        c.RUNNING,
        "ZeroServeEndpoints/UNHEALTHY",
        "Serve application serve UNHEALTHY: serve says UNHEALTHY",
    ),
    (
        "KubeRay gave up",
        {"conditions": [_ready("False", "InitializingTimeout", "not ready in 30m")]},
        c.FAILED,
        "InitializingTimeout",
        "InitializingTimeout: not ready in 30m",
    ),
    (
        "old KubeRay without conditions",
        {"serviceStatus": "Running", "activeServiceStatus": _apps(serve="RUNNING")},
        c.SUCCEEDED,
        "Running",
        "serving at http://churn-serve-r1-serve-svc.team-a.svc:8000/churn",
    ),
]


@pytest.mark.parametrize(
    ("status", "phase", "raw", "message"), [s[1:] for s in STATES], ids=[s[0] for s in STATES]
)
def test_ray_service_state(status: dict[str, Any], phase: str, raw: str, message: str) -> None:
    state = states.child_state(_service(status))
    assert (state.phase, state.raw, state.message) == (phase, raw, message)


def test_a_failing_deployment_names_itself_when_the_app_says_nothing() -> None:
    status = {
        "activeServiceStatus": {
            "applicationStatuses": {
                "serve": {
                    "status": "DEPLOY_FAILED",
                    "serveDeploymentStatuses": {
                        "Churn": {"status": "UNHEALTHY", "message": "ImportError: no xgboost"}
                    },
                }
            }
        }
    }
    state = states.ray_service_state(_service(status))
    assert (
        state.message
        == "Serve application serve DEPLOY_FAILED: deployment Churn: ImportError: no xgboost"
    )


# --- the planner: a serving RayService outlives its run -------------------------------------------
SERVING = STATES[3][1]


def _children(job: dict[str, Any], run: int, serve_status: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for step in job["spec"]["steps"]:
        child = builders.build_step_child(job, step, run, 1)
        if step.get("spark"):
            child["status"] = {"applicationState": {"state": "COMPLETED"}}
        elif step.get("ray"):
            child["status"] = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
        else:
            child["status"] = serve_status
        out.append(child)
    return out


def _settle(job: dict[str, Any], children: list[dict[str, Any]], now: datetime) -> planner.Plan:
    result = planner.plan(job, children, now)
    for _ in range(5):
        job["status"] = result.status
        result = planner.plan(job, children, now)
    return result


def test_serve_step_succeeds_when_serving_and_survives_the_ttl() -> None:
    job = pipeline()
    job["spec"]["ttlSecondsAfterFinished"] = 60
    children = _children(job, 1, SERVING)
    result = _settle(job, children, NOW)
    assert result.status["phase"] == c.SUCCEEDED
    serve = result.status["steps"][2]
    assert serve["phase"] == c.SUCCEEDED and serve["message"].startswith("serving at http://")
    job["status"] = result.status
    later = planner.plan(job, children, NOW + timedelta(seconds=61))
    deleted = sorted((a.kind, a.name) for a in later.actions if isinstance(a, planner.Delete))
    assert deleted == [("RayJob", "churn-train-r1"), ("SparkApplication", "churn-prepare-r1")]


def test_a_failed_attempts_rayservice_is_deleted() -> None:
    job = pipeline()
    failed = STATES[6][1]
    children = _children(job, 1, failed)
    result = _settle(job, children, NOW)
    assert result.status["steps"][2]["phase"] == c.FAILED
    assert "DEPLOY_FAILED" in result.status["message"]
    deletes = [(a.kind, a.name) for a in result.actions if isinstance(a, planner.Delete)]
    assert deletes == [("RayService", "churn-serve-r1")]


def test_the_previous_runs_model_serves_until_the_new_one_does() -> None:
    job = pipeline()
    old = _children(job, 1, SERVING)
    job["status"] = _settle(job, old, NOW).status
    job["spec"]["steps"][2]["serve"]["routePrefix"] = "/v2"  # a spec change: run 2
    job["metadata"]["generation"] = 2
    old_service = old[2]
    new = _children(job, 2, STATES[2][1])  # run 2's RayService deploying
    result = _settle(job, [old_service, *new], NOW)
    assert result.status["run"] == 2 and result.status["steps"][2]["phase"] == c.RUNNING
    assert not [a for a in result.actions if isinstance(a, planner.Delete)]
    new[2]["status"] = SERVING
    result = _settle(job, [old_service, *new], NOW)
    assert result.status["phase"] == c.SUCCEEDED
    deletes = [(a.kind, a.name) for a in result.actions if isinstance(a, planner.Delete)]
    assert deletes == [("RayService", "churn-serve-r1")]
