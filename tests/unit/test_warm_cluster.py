"""spec.rayCluster.startPolicy Eager: the shared RayCluster is created with the run's first step
(so it warms up while Spark prepares the data) and otherwise lives and dies like an OnDemand one:
suspended with the MLJob, deleted when the run ends, replaced by the next run's on a spec change."""

from __future__ import annotations

import copy

from planner_world import T0, World

from mljob import constants as c
from mljob.planner import Create, Delete, Patch, plan, spec_hash
from mljob.testing.corpus import mljob, spark_step
from mljob.validation import validate

CLUSTER = (c.RAY_CLUSTER_KIND, "churn-r1-ray")


def shared_ray(name: str, **extra: object) -> dict:
    return {"name": name, "ray": {"entrypoint": "python /app/train.py"}, **extra}


def pipeline(policy: str | None = c.START_EAGER, steps: list[dict] | None = None, **spec) -> dict:
    shared: dict = {"rayVersion": "2.49.0"}
    if policy is not None:
        shared["startPolicy"] = policy
    steps = steps if steps is not None else [spark_step("prepare"), shared_ray("train")]
    return mljob(steps, rayCluster=shared, **spec)


def creates(result) -> list[tuple[str, str | None]]:
    return [(a.kind, a.step) for a in result.actions if isinstance(a, Create)]


def test_eager_creates_the_cluster_ahead_of_the_first_spark_step():
    world = World(pipeline())
    first = world.reconcile()
    assert creates(first) == [(c.RAY_CLUSTER_KIND, None), (c.SPARK_KIND, "prepare")]
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Creating"}
    assert [e.message for e in world.events if e.reason == c.EVENT_RAY_CLUSTER_CREATED] == [
        "RayCluster churn-r1-ray"
    ]
    assert world.reconcile().actions == []  # never twice
    world.finish("prepare")
    second = world.reconcile()
    assert creates(second) == [(c.RAY_JOB_KIND, "train")]  # the cluster is already there
    selector = second.actions[0].body["spec"]["clusterSelector"]
    assert selector == {c.RAY_CLUSTER_SELECTOR_KEY: "churn-r1-ray"}
    world.finish("train")
    world.reconcile()
    assert world.status["phase"] == c.SUCCEEDED and world.deleted == [CLUSTER]


def test_on_demand_is_the_default_and_waits_for_the_first_ray_step():
    for policy in (None, c.START_ON_DEMAND):
        world = World(pipeline(policy))
        assert creates(world.reconcile()) == [(c.SPARK_KIND, "prepare")]
        assert "rayCluster" not in world.status
        world.finish("prepare")
        assert creates(world.reconcile()) == [(c.RAY_CLUSTER_KIND, None), (c.RAY_JOB_KIND, "train")]


def test_a_run_that_fails_before_any_ray_step_deletes_the_warm_cluster():
    world = World(pipeline())
    world.reconcile()
    world.finish("prepare", ok=False)
    result = world.reconcile()
    assert world.status["phase"] == c.FAILED
    assert [a for a in result.actions if isinstance(a, Delete)] == [
        Delete("ray.io/v1", *CLUSTER, "team-a")
    ]
    assert world.status["rayCluster"]["state"] == "Deleting"
    assert world.reconcile().actions == []  # gone: deleted once
    assert world.status["rayCluster"]["state"] == "Deleted"


def test_suspend_suspends_the_warm_cluster_and_resume_resumes_it():
    world = World(pipeline())
    world.reconcile()
    world.edit(suspend=True)
    suspended = world.reconcile()
    patches = [(a.kind, a.name, a.patch) for a in suspended.actions if isinstance(a, Patch)]
    assert (*CLUSTER, {"spec": {"suspend": True}}) in patches
    assert world.status["rayCluster"]["suspended"] is True
    world.edit(suspend=False)
    resumed = world.reconcile()
    patches = [(a.kind, a.name, a.patch) for a in resumed.actions if isinstance(a, Patch)]
    assert (*CLUSTER, {"spec": {"suspend": False}}) in patches
    assert "suspended" not in world.status["rayCluster"]


def test_an_mljob_created_suspended_creates_no_cluster():
    result = plan(pipeline(suspend=True), [], T0)
    assert result.actions == [] and "rayCluster" not in result.status


def test_no_cluster_when_no_ray_step_is_left_to_run():
    world = World(pipeline(steps=[spark_step("prepare"), shared_ray("train")]))
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    world.finish("train")
    world.reconcile()  # succeeded: the cluster goes
    assert world.status["phase"] == c.SUCCEEDED
    world.children.pop(CLUSTER, None)
    # a plan of the ended run (a resync) never brings it back
    assert world.reconcile().actions == []


def test_changing_only_the_start_policy_keeps_the_run_and_eager_starts_it_now():
    on_demand = pipeline(c.START_ON_DEMAND)
    assert spec_hash(on_demand["spec"]) == spec_hash(pipeline(None)["spec"])
    assert spec_hash(on_demand["spec"]) == spec_hash(pipeline()["spec"])
    world = World(on_demand)
    world.reconcile()  # prepare runs, no cluster yet
    world.edit(rayCluster={"rayVersion": "2.49.0", "startPolicy": c.START_EAGER})
    result = world.reconcile()
    assert world.status["run"] == 1 and creates(result) == [(c.RAY_CLUSTER_KIND, None)]


def test_a_new_run_gets_its_own_warm_cluster_and_the_old_one_is_deleted():
    world = World(pipeline(onSpecChange=c.CANCEL_RUNNING))
    world.reconcile()
    world.edit(labels={"edit": "1"})
    result = world.reconcile()
    assert world.status["run"] == 2
    assert (c.RAY_CLUSTER_KIND, "churn-r1-ray") in [
        (a.kind, a.name) for a in result.actions if isinstance(a, Delete)
    ]
    assert creates(result) == [(c.RAY_CLUSTER_KIND, None), (c.SPARK_KIND, "prepare")]
    assert world.status["rayCluster"]["name"] == "churn-r2-ray"


def test_a_refused_warm_cluster_starts_nothing_and_fails_every_ray_step():
    steps = [spark_step("prepare"), shared_ray("train"), shared_ray("score")]
    world = World(pipeline(steps=steps))
    result = plan(world.mljob, [], T0)
    rejected, skipped = world.apply_rejecting(result, 0, "exceeded quota: no-rayclusters")
    assert skipped == ["prepare"] and world.created == []
    entries = {e["name"]: e for e in rejected.status["steps"]}
    assert entries["prepare"]["phase"] == c.PENDING and entries["prepare"]["attempts"] == 0
    for name in ("train", "score"):
        assert entries[name]["childState"] == c.CHILD_STATE_CREATE_REJECTED
        assert entries[name]["message"] == (
            "the API server rejected RayCluster churn-r1-ray: exceeded quota: no-rayclusters"
        )
    assert rejected.status["phase"] == c.FAILED
    assert rejected.status["rayCluster"]["state"] == "Rejected"
    assert world.reconcile().actions == []  # nothing starts after that


def test_a_warm_cluster_deleted_by_someone_else_during_spark_is_created_again_at_once():
    world = World(pipeline())
    world.reconcile()
    del world.children[CLUSTER]
    result = world.reconcile()
    assert creates(result) == [(c.RAY_CLUSTER_KIND, None)]
    assert c.EVENT_RAY_CLUSTER_LOST in [e.reason for e in result.events]
    assert world.step("prepare")["phase"] == c.PENDING  # Spark is not touched


def test_the_start_policy_is_validated():
    bad = pipeline("Sometimes")
    assert validate(bad) == [
        "spec.rayCluster.startPolicy: must be one of OnDemand, Eager, got 'Sometimes'"
    ]
    assert validate(pipeline()) == [] and validate(pipeline(c.START_ON_DEMAND)) == []
    render = copy.deepcopy(pipeline())
    assert "startPolicy" not in plan(render, [], T0).actions[0].body["spec"]
