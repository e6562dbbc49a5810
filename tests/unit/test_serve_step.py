"""Serve steps (issue 12): one KubeRay RayService per MLJob and serve step, under the same name
for every run; its readiness mapped from KubeRay's own signals (the status as KubeRay v1.6.1
writes it: mljob.testing.rayservice); a later run updates it in place and succeeds once the
new version serves; the model that serves outlives runs, TTL and cancellation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from mljob import builders, kinds, planner, states
from mljob import constants as c
from mljob.testing import rayservice as kuberay
from mljob.testing.corpus import mljob, ray_step, spark_step
from mljob.validation import validate

NOW = datetime(2025, 1, 1, tzinfo=UTC)
Obj = dict[str, Any]


def serve_step(name: str = "serve", **serve: Any) -> Obj:
    fields = {"importPath": "serve_app:app", "rayVersion": "2.49.0", **serve}
    return {"name": name, "serve": fields}


def pipeline(**serve: Any) -> Obj:
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
    assert service["metadata"]["name"] == "churn-serve"  # the same for every run and attempt
    assert builders.build_step_child(job, step, 7, 3)["metadata"]["name"] == "churn-serve"
    labels = service["metadata"]["labels"]
    assert (labels[c.LABEL_STEP], labels[c.LABEL_RUN], labels[c.LABEL_ATTEMPT]) == (
        "serve",
        "2",
        "1",
    )
    assert service["spec"]["upgradeStrategy"] == {"type": "NewCluster"}
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


def test_each_run_changes_the_cluster_spec_so_kuberay_rolls_it_out_on_a_new_cluster() -> None:
    """KubeRay prepares a new cluster only when the hash of rayClusterConfig changes (without
    replicas); MLJOB_RUN in the containers' env makes every run's differ."""
    job = pipeline()
    step = job["spec"]["steps"][2]
    one, two = (builders.build_step_child(job, step, run, 1)["spec"] for run in (1, 2))
    assert one["rayClusterConfig"] != two["rayClusterConfig"]


def test_kinds_registry() -> None:
    assert kinds.of_step(serve_step()) is kinds.RAY_SERVICE
    assert kinds.RAY_SERVICE.updated_in_place and not kinds.RAY_JOB.updated_in_place
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
        (
            {"template": {"upgradeStrategy": {"type": "None"}}},
            "serve.template: upgradeStrategy.type must stay NewCluster",
        ),
    ],
)
def test_validation(serve: Obj, fragment: str) -> None:
    step = serve_step()
    step["serve"].update(serve)
    step["serve"] = {k: v for k, v in step["serve"].items() if v is not None}
    errors = validate(mljob([spark_step("prepare"), step]))
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize("name", ["serve-r1", "model-a2", "x-ray"])
def test_a_serve_step_name_must_not_look_like_a_run_child(name: str) -> None:
    errors = validate(mljob([spark_step("prepare"), serve_step(name)]))
    assert (
        f"spec.steps[1].name: a serve step's name must not end in -r<N>, -a<N> or -ray: {name!r}"
        in errors
    )


def test_exactly_one_engine() -> None:
    both = serve_step()
    both["ray"] = {"entrypoint": "x", "rayVersion": "2.49.0"}
    assert any("exactly one of `spark`, `ray` or `serve`" in e for e in validate(mljob([both])))


# --- readiness: the RayService's status as KubeRay writes it -> step phase ------------------------
def _service(status: Obj, generation: int = 1) -> Obj:
    job = pipeline(routePrefix="/churn")
    service = builders.build_step_child(job, job["spec"]["steps"][2], 1, 1)
    service["metadata"]["generation"] = generation
    service["status"] = status
    return service


FAILED_APP = kuberay.apps("DEPLOY_FAILED", "ImportError: no module named serve_app")
STATES: list[tuple[str, Obj, int, str, str, str]] = [
    ("no status yet", {}, 1, c.PENDING, "", ""),
    (
        "first deployment: head not ready",
        kuberay.deploying(1, "churn-serve-x1", None),
        1,
        c.RUNNING,
        "Initializing",
        "RayService is initializing",
    ),
    (
        "first deployment: app deploying",
        kuberay.deploying(1, "churn-serve-x1", kuberay.apps("DEPLOYING")),
        1,
        c.RUNNING,
        "Initializing",
        "RayService is initializing",
    ),
    (
        "first deployment failed (on the pending cluster)",
        kuberay.deploying(1, "churn-serve-x1", FAILED_APP),
        1,
        c.FAILED,
        "Initializing/DEPLOY_FAILED",
        "Serve application serve DEPLOY_FAILED: ImportError: no module named serve_app",
    ),
    (
        "serving",
        kuberay.serving(1, "churn-serve-x1"),
        1,
        c.SUCCEEDED,
        "NonZeroServeEndpoints",
        "serving on the RayCluster churn-serve-x1",
    ),
    (
        "a new spec not seen by KubeRay yet: the old status says nothing about it",
        kuberay.serving(1, "churn-serve-x1"),
        2,
        c.RUNNING,
        "Updating",
        "KubeRay has not taken generation 2 of the RayService yet",
    ),
    (
        "an old failure is not this spec's",
        kuberay.deploying(1, "churn-serve-x1", FAILED_APP),
        2,
        c.RUNNING,
        "Updating",
        "KubeRay has not taken generation 2 of the RayService yet",
    ),
    (
        "upgrade: the new cluster deploys, the old one serves",
        kuberay.deploying(2, "churn-serve-x2", kuberay.apps("DEPLOYING"), "churn-serve-x1", 1),
        2,
        c.RUNNING,
        "UpgradeInProgress",
        "rolling out on the new cluster churn-serve-x2; churn-serve-x1 still serves",
    ),
    (
        "upgrade: the new version RUNNING but not promoted yet",
        kuberay.deploying(2, "churn-serve-x2", kuberay.apps(), "churn-serve-x1", 1),
        2,
        c.RUNNING,
        "UpgradeInProgress",
        "rolling out on the new cluster churn-serve-x2; churn-serve-x1 still serves",
    ),
    (
        "upgrade failed: the old version still serves",
        kuberay.deploying(2, "churn-serve-x2", FAILED_APP, "churn-serve-x1", 1),
        2,
        c.FAILED,
        "UpgradeInProgress/DEPLOY_FAILED",
        "Serve application serve DEPLOY_FAILED: ImportError: no module named serve_app",
    ),
    (
        "upgrade done: the new cluster promoted",
        kuberay.serving(2, "churn-serve-x2"),
        2,
        c.SUCCEEDED,
        "NonZeroServeEndpoints",
        "serving on the RayCluster churn-serve-x2",
    ),
    (
        "unhealthy is not final",
        kuberay.serving(1, "churn-serve-x1", kuberay.apps("UNHEALTHY", "replica died")),
        1,
        c.RUNNING,
        "NonZeroServeEndpoints/UNHEALTHY",
        "Serve application serve UNHEALTHY: replica died",
    ),
    (
        "KubeRay's validation refused this generation",
        kuberay.validation_failed("spec.rayClusterConfig.headGroupSpec: bad"),
        1,
        c.FAILED,
        "ValidationFailed",
        "ValidationFailed: spec.rayClusterConfig.headGroupSpec: bad",
    ),
    (
        "KubeRay gave up initializing",
        {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "InitializingTimeout",
                    "message": "x",
                }
            ],
        },
        1,
        c.FAILED,
        "InitializingTimeout",
        "InitializingTimeout: x",
    ),
    (
        "KubeRay before v1.3 (no conditions)",
        {
            "observedGeneration": 1,
            "serviceStatus": "Running",
            "activeServiceStatus": kuberay.cluster_status("x", kuberay.apps()),
        },
        1,
        c.SUCCEEDED,
        "Running",
        "serving on the RayCluster x",
    ),
]


@pytest.mark.parametrize(
    ("status", "generation", "phase", "raw", "message"),
    [s[1:] for s in STATES],
    ids=[s[0] for s in STATES],
)
def test_ray_service_state(
    status: Obj, generation: int, phase: str, raw: str, message: str
) -> None:
    state = states.child_state(_service(status, generation))
    assert (state.phase, state.raw, state.message) == (phase, raw, message)


def test_a_failing_deployment_names_itself_when_the_app_says_nothing() -> None:
    app = {"status": "DEPLOY_FAILED", "serveDeploymentStatuses": {"Churn": {"message": "no xgb"}}}
    status = kuberay.deploying(1, "churn-serve-x1", {"serve": app})
    state = states.ray_service_state(_service(status))
    assert state.message == "Serve application serve DEPLOY_FAILED: deployment Churn: no xgb"


def test_the_endpoint_is_the_serve_service_port_and_route() -> None:
    service = _service({})
    assert states.serve_endpoint(service) == ("churn-serve-serve-svc", 8000, "/churn")
    assert states.serve_url(service) == "http://churn-serve-serve-svc.team-a.svc:8000/churn"


# --- the planner: one RayService per serve step, updated in place -------------------------------
class World:
    """The MLJob and its children as the API server holds them: the planner's actions applied
    (a create makes generation 1, an update bumps it), statuses set by the test as KubeRay."""

    def __init__(self, job: Obj) -> None:
        self.job = job
        self.children: dict[tuple[str, str], Obj] = {}
        self.actions: list[planner.Action] = []

    def plan(self, now: datetime = NOW) -> planner.Plan:
        result = planner.plan(self.job, list(self.children.values()), now)
        self.actions = result.actions
        for action in result.actions:
            key = (action.kind, action.name)
            if isinstance(action, planner.Create):
                self.children[key] = {**copy.deepcopy(action.body), "status": {}}
                self.children[key]["metadata"]["generation"] = 1
            elif isinstance(action, planner.Update):
                child = self.children[key]
                child["metadata"]["labels"].update(action.body["metadata"]["labels"])
                child["spec"] = copy.deepcopy(action.body["spec"])
                child["metadata"]["generation"] += 1
            elif isinstance(action, planner.Delete):
                self.children.pop(key, None)
        self.job["status"] = result.status
        return result

    def settle(self) -> planner.Plan:
        """Plan until nothing changes (the earlier steps' children finish as planned)."""
        for _ in range(10):
            for (kind, _name), child in self.children.items():
                if kind == c.SPARK_KIND:
                    child["status"] = {"applicationState": {"state": "COMPLETED"}}
                elif kind == c.RAY_JOB_KIND:
                    child["status"] = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
            result = self.plan()
            if not result.actions:
                return result
        return result

    @property
    def service(self) -> Obj:
        return self.children[(c.RAY_SERVICE_KIND, "churn-serve")]

    def kuberay(self, status: Obj) -> None:
        self.service["status"] = status

    def step(self) -> Obj:
        return self.job["status"]["steps"][2]

    def new_run(self, route: str) -> None:
        self.job["spec"]["steps"][2]["serve"]["routePrefix"] = route
        self.job["metadata"]["generation"] += 1


def _kinds(actions: list[planner.Action], kind: type) -> list[tuple[str, str]]:
    return [(a.kind, a.name) for a in actions if isinstance(a, kind)]


def serving_world(**spec: Any) -> World:
    world = World(pipeline())
    world.job["spec"].update(spec)
    world.settle()
    assert _kinds(world.actions, planner.Create) == []
    world.kuberay(kuberay.serving(1, "churn-serve-x1"))
    world.settle()
    return world


def test_create_then_ready_records_the_endpoint_and_the_live_run() -> None:
    world = World(pipeline())
    world.settle()
    assert world.step()["phase"] == c.PENDING and world.step()["child"] == "churn-serve"
    world.kuberay(kuberay.deploying(1, "churn-serve-x1", kuberay.apps("DEPLOYING")))
    assert world.plan().status["steps"][2]["phase"] == c.RUNNING
    world.kuberay(kuberay.serving(1, "churn-serve-x1"))
    status = world.plan().status
    assert status["phase"] == c.SUCCEEDED
    assert status["steps"][2]["message"] == (
        "run 1's model serves at http://churn-serve-serve-svc.team-a.svc:8000/"
    )
    assert status["serving"] == [
        {
            "step": "serve",
            "rayService": "churn-serve",
            "service": "churn-serve-serve-svc",
            "port": 8000,
            "route": "/",
            "url": "http://churn-serve-serve-svc.team-a.svc:8000/",
            "liveRun": 1,
            "since": "2025-01-01T00:00:00Z",
        }
    ]


def test_the_ttl_never_deletes_the_model_that_serves() -> None:
    world = serving_world(ttlSecondsAfterFinished=60)
    later = world.plan(NOW + timedelta(seconds=61))
    assert _kinds(later.actions, planner.Delete) == [
        ("RayJob", "churn-train-r1"),
        ("SparkApplication", "churn-prepare-r1"),
    ]
    assert later.status["serving"][0]["liveRun"] == 1


def test_a_new_run_updates_the_rayservice_in_place_and_succeeds_once_the_new_version_serves():
    world = serving_world()
    world.new_run("/v2")
    world.settle()
    assert _kinds(world.actions, planner.Update) == []  # settled: the update was planned before
    assert world.job["status"]["run"] == 2
    service = world.service
    assert (
        service["metadata"]["generation"] == 2 and service["metadata"]["labels"][c.LABEL_RUN] == "2"
    )
    assert "route_prefix: /v2" in service["spec"]["serveConfigV2"]
    # KubeRay has not reconciled generation 2: its status is still run 1's
    assert world.plan().status["steps"][2]["phase"] == c.RUNNING
    world.kuberay(kuberay.deploying(2, "churn-serve-x2", kuberay.apps(), "churn-serve-x1", 1))
    status = world.plan().status
    assert status["steps"][2]["phase"] == c.RUNNING and status["serving"][0]["liveRun"] == 1
    world.kuberay(kuberay.serving(2, "churn-serve-x2"))
    status = world.plan().status
    assert status["phase"] == c.SUCCEEDED and status["serving"][0]["liveRun"] == 2
    assert status["serving"][0]["url"].endswith(":8000/v2")
    assert not [a for a in world.actions if isinstance(a, planner.Delete)]


def test_the_update_is_one_action_on_the_same_name() -> None:
    world = serving_world()
    world.new_run("/v2")
    actions: list[planner.Action] = []
    for _ in range(5):
        actions += world.plan().actions
        for (kind, _n), child in world.children.items():
            if kind != c.RAY_SERVICE_KIND and child["metadata"]["labels"][c.LABEL_RUN] == "2":
                child["status"] = (
                    {"applicationState": {"state": "COMPLETED"}}
                    if kind == c.SPARK_KIND
                    else {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
                )
    assert _kinds(actions, planner.Update) == [("RayService", "churn-serve")]
    assert not _kinds(actions, planner.Create) or all(
        kind != "RayService" for kind, _ in _kinds(actions, planner.Create)
    )


def test_a_failed_update_fails_the_step_with_the_apps_message_and_the_old_model_keeps_serving():
    world = serving_world()
    world.job["spec"]["steps"][2]["retries"] = 3  # not used: the same spec would fail the same way
    world.new_run("/v2")
    world.settle()
    world.kuberay(kuberay.deploying(2, "churn-serve-x2", FAILED_APP, "churn-serve-x1", 1))
    status = world.plan().status
    step = status["steps"][2]
    assert (step["phase"], step["attempts"]) == (c.FAILED, 1)
    assert (
        step["message"]
        == "Serve application serve DEPLOY_FAILED: ImportError: no module named serve_app"
    )
    assert status["serving"][0]["liveRun"] == 1
    assert not _kinds(world.actions, planner.Delete)  # the RayService (run 1's model) stays
    world.plan()
    assert (c.RAY_SERVICE_KIND, "churn-serve") in world.children


def test_a_failed_first_deployment_is_deleted_and_retried_under_the_same_name_once_it_is_gone():
    world = World(pipeline())
    world.job["spec"]["steps"][2].update(retries=1, backoffSeconds=0)
    world.settle()
    world.kuberay(kuberay.deploying(1, "churn-serve-x1", FAILED_APP))
    stale = copy.deepcopy(world.service)
    result = world.plan()
    assert result.status["steps"][2]["phase"] == c.RETRYING
    assert _kinds(result.actions, planner.Delete) == [("RayService", "churn-serve")]
    world.children[(c.RAY_SERVICE_KIND, "churn-serve")] = stale  # the watch lags: still seen
    result = world.plan()
    assert not _kinds(result.actions, planner.Create)  # waits for the old one to go
    assert result.status["steps"][2]["phase"] == c.RETRYING
    assert _kinds(result.actions, planner.Delete) == [("RayService", "churn-serve")]  # again
    assert (c.RAY_SERVICE_KIND, "churn-serve") not in world.children  # now the watch saw it go
    result = world.plan()
    assert _kinds(result.actions, planner.Create) == [("RayService", "churn-serve")]
    assert world.service["metadata"]["labels"][c.LABEL_ATTEMPT] == "2"
    assert result.status["steps"][2]["attempts"] == 2
    assert "serving" not in result.status


def test_removing_the_serve_step_deletes_its_rayservice() -> None:
    world = serving_world()
    world.job["spec"]["steps"] = world.job["spec"]["steps"][:2]
    world.job["metadata"]["generation"] += 1
    result = world.plan()
    assert ("RayService", "churn-serve") in _kinds(result.actions, planner.Delete)
    assert "serving" not in result.status


def test_cancel_running_never_deletes_the_rayservice_the_next_run_updates_it() -> None:
    world = serving_world(onSpecChange="CancelRunning")
    world.new_run("/v2")
    world.settle()
    world.new_run("/v3")  # run 3 while run 2's version rolls out
    result = world.plan()
    assert ("RayService", "churn-serve") not in _kinds(result.actions, planner.Delete)
    world.settle()
    assert world.service["metadata"]["labels"][c.LABEL_RUN] == "3"
    assert world.job["status"]["serving"][0]["liveRun"] == 1


def never_started_serve_entry() -> dict:
    """The serve step's status entry as if the writes recording its start were lost."""
    return {
        "name": "serve",
        "kind": "RayService",
        "child": "",
        "phase": c.PENDING,
        "childState": "",
        "attempts": 0,
        "message": "",
    }


def test_a_lost_status_write_after_the_update_adopts_it() -> None:
    world = serving_world()
    world.new_run("/v2")
    world.settle()
    assert world.service["metadata"]["labels"][c.LABEL_RUN] == "2"
    # the status write that recorded the update is lost: run 2's serve step never started
    world.job["status"]["steps"][2] = never_started_serve_entry()
    result = world.plan()
    assert not _kinds(result.actions, planner.Update)
    assert result.status["steps"][2]["attempts"] == 1


def test_admission_asks_for_create_and_patch_of_rayservices() -> None:
    from mljob import admission

    wanted = [str(p) for p in admission.child_permissions(mljob([serve_step()]))]
    assert wanted == ["create rayservices.ray.io", "patch rayservices.ray.io"]


def test_another_attempts_rayservice_of_this_run_is_updated_not_waited_for() -> None:
    """Status writes lost twice: the step's entry knows no attempt, yet attempt 2's RayService
    of this run exists. Only the failed attempt's own RayService is waited for; this one gets
    the new attempt's spec (waiting would wait for ever: nothing deletes it)."""
    world = World(pipeline())
    world.settle()
    world.service["metadata"]["labels"][c.LABEL_ATTEMPT] = "2"
    world.job["status"]["steps"][2] = never_started_serve_entry()
    result = world.plan()
    assert _kinds(result.actions, planner.Update) == [("RayService", "churn-serve")]
    assert result.status["steps"][2]["attempts"] == 1
    assert world.service["metadata"]["labels"][c.LABEL_ATTEMPT] == "1"
