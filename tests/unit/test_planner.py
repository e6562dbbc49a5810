import copy

from planner_world import T0, World

from mljob import constants as c
from mljob.planner import Create, Delete, plan, record_create_rejected, spec_hash
from mljob.testing.corpus import mljob, ray_step, spark_step
from mljob.validation import validate


def condition(status, kind):
    return next(x for x in status["conditions"] if x["type"] == kind)


def test_happy_path_spark_then_ray():
    world = World(mljob())
    first = world.reconcile()
    assert [(a.kind, a.name) for a in first.actions] == [(c.SPARK_KIND, "churn-prepare-r1")]
    assert world.status["phase"] == c.RUNNING and world.status["progress"] == "0/2"
    assert condition(world.status, "Reconciling")["status"] == "True"
    assert condition(world.status, "Ready")["status"] == "False"
    assert world.step("train")["attempts"] == 0  # waits for prepare
    assert world.reconcile().actions == []

    world.finish("prepare")
    second = world.reconcile()
    assert [(a.kind, a.name) for a in second.actions] == [(c.RAY_JOB_KIND, "churn-train-r1")]
    assert world.step("prepare")["phase"] == c.SUCCEEDED
    assert world.status["currentStep"] == "train" and world.status["progress"] == "1/2"

    world.finish("train")
    world.reconcile()
    status = world.status
    assert status["phase"] == c.SUCCEEDED and status["progress"] == "2/2"
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Succeeded")["status"] == "True"
    assert status["completionTime"] and status["startTime"] and status["observedGeneration"] == 1
    reasons = [e.reason for e in world.events]
    assert reasons == [
        "StepStarted",
        "PipelineRunning",
        "StepSucceeded",
        "StepStarted",
        "StepSucceeded",
        "PipelineSucceeded",
    ]


def test_replanning_is_idempotent_and_reapply_changes_nothing():
    world = World(mljob())
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    before = copy.deepcopy(world.status)
    again = plan(world.mljob, list(world.children.values()), T0.replace(year=2030))
    assert again.actions == [] and again.events == [] and again.status == before


def test_spark_failure_fails_pipeline_with_child_error_and_starts_nothing():
    world = World(mljob())
    world.reconcile()
    world.finish("prepare", ok=False)
    result = world.reconcile()
    assert result.actions == []
    status = world.status
    assert status["phase"] == c.FAILED and status["currentStep"] == "prepare"
    stalled = condition(status, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "StepPrepareSparkApplicationFailed"
    assert "driver exited 1" in stalled["message"]
    assert condition(status, "Succeeded")["status"] == "False"
    assert ("Warning", "StepFailed") in [(e.type, e.reason) for e in result.events]
    assert world.reconcile().actions == []


def test_ray_failure_message_carries_reason_and_message():
    world = World(mljob())
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    world.finish("train", ok=False)
    world.reconcile()
    assert condition(world.status, "Stalled")["message"].endswith("AppFailed: OOM")
    assert condition(world.status, "Stalled")["reason"] == "StepTrainRayJobFailed"


def test_succeeded_step_stays_succeeded_when_its_child_is_deleted_by_ttl():
    world = World(mljob())
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    world.children.pop((c.SPARK_KIND, "churn-prepare-r1"))
    world.reconcile()
    assert world.step("prepare")["phase"] == c.SUCCEEDED
    assert world.created.count((c.SPARK_KIND, "churn-prepare-r1")) == 1


def test_lost_status_write_adopts_the_existing_child():
    world = World(mljob())
    world.reconcile()
    world.mljob["status"] = {}  # the glue crashed after the create
    assert world.reconcile().actions == []
    assert world.step("prepare")["child"] == "churn-prepare-r1"


def test_dag_parallel_branches_join():
    steps = [
        spark_step("prepare"),
        ray_step("train", dependsOn=["prepare"]),
        spark_step("stats", dependsOn=["prepare"]),
        spark_step("report", dependsOn=["train", "stats"]),
    ]
    world = World(mljob(steps))
    world.reconcile()
    world.finish("prepare")
    started = {a.step for a in world.reconcile().actions}
    assert started == {"train", "stats"}
    assert world.status["currentStep"] == "train,stats"
    world.finish("stats")
    assert world.reconcile().actions == []  # report waits for train too
    world.finish("train")
    assert [a.step for a in world.reconcile().actions] == ["report"]
    world.finish("report")
    world.reconcile()
    assert world.status["phase"] == c.SUCCEEDED


def test_shared_ray_cluster_created_once_before_first_ray_step_and_deleted_at_end():
    steps = [
        spark_step("prepare"),
        {"name": "train", "ray": {"entrypoint": "python t.py"}},
        {"name": "tune", "ray": {"entrypoint": "python u.py"}},
    ]
    world = World(mljob(steps, rayCluster={"rayVersion": "2.49.0"}))
    world.reconcile()
    assert (c.RAY_CLUSTER_KIND, "churn-r1-ray") not in world.created
    world.finish("prepare")
    actions = world.reconcile().actions
    assert [(a.kind, a.name) for a in actions] == [
        (c.RAY_CLUSTER_KIND, "churn-r1-ray"),
        (c.RAY_JOB_KIND, "churn-train-r1"),
    ]
    assert actions[1].body["spec"]["clusterSelector"] == {"ray.io/cluster": "churn-r1-ray"}
    world.set_status(
        c.RAY_CLUSTER_KIND,
        "churn-r1-ray",
        {"conditions": [{"type": "HeadPodReady", "status": "True"}]},
    )
    world.reconcile()
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Ready"}
    world.finish("train")
    assert [a.name for a in world.reconcile().actions] == ["churn-tune-r1"]  # cluster reused
    world.finish("tune")
    world.reconcile()
    assert world.deleted == [(c.RAY_CLUSTER_KIND, "churn-r1-ray")]
    world.reconcile()
    assert world.status["rayCluster"]["state"] == "Deleted"
    assert world.created.count((c.RAY_CLUSTER_KIND, "churn-r1-ray")) == 1


def test_invalid_spec_fails_with_reason_and_no_actions():
    bad = mljob([spark_step("a", dependsOn=["b"]), spark_step("b")])
    result = plan(bad, [], T0)
    assert result.actions == []
    assert result.status["phase"] == c.FAILED
    stalled = condition(result.status, "Stalled")
    assert stalled["reason"] == c.REASON_INVALID_SPEC and "dependency cycle" in stalled["message"]
    again = plan({**bad, "status": result.status}, [], T0.replace(year=2030))
    assert again.status == result.status and again.events == []


def test_rejected_create_fails_the_step_once():
    world = World(mljob())
    first = world.reconcile()
    rejected = record_create_rejected(
        {}, world.status, first.actions[0].step, "spec.type: Unsupported", T0, namespace="team-a"
    )
    world.mljob["status"] = rejected.status
    assert world.step("prepare")["childState"] == c.CHILD_STATE_CREATE_REJECTED
    assert rejected.status["phase"] == c.FAILED
    assert condition(rejected.status, "Stalled")["reason"] == "StepPrepareSparkApplicationRejected"
    assert "Unsupported" in condition(rejected.status, "Stalled")["message"]
    world.children.clear()
    assert world.reconcile().actions == []  # never retried in a loop
    assert world.status["phase"] == c.FAILED


def test_a_rejected_create_leaves_the_skipped_parallel_steps_unstarted():
    job = mljob([spark_step("a"), spark_step("b", dependsOn=[]), spark_step("c", dependsOn=[])])
    result = plan(job, [], T0)
    assert [a.step for a in result.actions] == ["a", "b", "c"]
    rejected = record_create_rejected(
        {}, result.status, "a", "quota exceeded", T0, ["b", "c"], namespace="team-a"
    )
    steps = {e["name"]: e for e in rejected.status["steps"]}
    assert steps["a"]["phase"] == c.FAILED and "quota exceeded" in steps["a"]["message"]
    for skipped in ("b", "c"):
        assert steps[skipped] == {
            "name": skipped,
            "kind": c.SPARK_KIND,
            "child": "",
            "phase": c.PENDING,
            "childState": "",
            "attempts": 0,
            "message": "",
        }
    assert rejected.status["phase"] == c.FAILED and rejected.status["progress"] == "0/3"
    started = [e.message for e in rejected.events if e.reason == c.EVENT_STEP_STARTED]
    assert started == ["step a: created SparkApplication churn-a-r1"]  # never b or c
    again = plan({**job, "status": rejected.status}, [], T0)
    assert again.actions == []  # a failed pipeline starts nothing, in later plans too


def test_a_rejected_shared_cluster_fails_the_ray_steps_that_needed_it_and_creates_none():
    steps = [{"name": "a", "ray": {"entrypoint": "x"}}, {"name": "b", "ray": {"entrypoint": "y"}}]
    steps[1]["dependsOn"] = []
    job = mljob(steps, rayCluster={"rayVersion": "2.49.0"})
    result = plan(job, [], T0)
    assert [(a.kind, a.step) for a in result.actions] == [
        (c.RAY_CLUSTER_KIND, None),
        (c.RAY_JOB_KIND, "a"),
        (c.RAY_JOB_KIND, "b"),
    ]
    rejected = record_create_rejected(
        {}, result.status, None, "quota", T0, ["a", "b"], namespace="team-a"
    )
    status = rejected.status
    for entry in status["steps"]:
        assert entry["phase"] == c.FAILED and entry["childState"] == c.CHILD_STATE_CREATE_REJECTED
        assert entry["attempts"] == 0 and entry["child"] == ""  # no RayJob was sent
        assert entry["message"] == "the API server rejected RayCluster churn-r1-ray: quota"
    assert status["rayCluster"] == {"name": "churn-r1-ray", "state": "Rejected"}
    assert status["phase"] == c.FAILED
    assert c.EVENT_STEP_STARTED not in [e.reason for e in rejected.events]
    again = plan({**job, "status": status}, [], T0)
    assert again.actions == [] and again.status["rayCluster"]["state"] == "Rejected"


def test_suspend_starts_nothing():
    result = plan(mljob(suspend=True), [], T0)
    assert result.actions == [] and result.status["phase"] == c.SUSPENDED


def test_condition_transition_time_kept_while_status_unchanged():
    world = World(mljob())
    world.reconcile()
    first = condition(world.status, "Reconciling")["lastTransitionTime"]
    world.finish("prepare")
    world.reconcile()
    assert condition(world.status, "Reconciling")["lastTransitionTime"] == first


def test_create_actions_carry_the_step():
    result = plan(mljob(), [], T0)
    assert isinstance(result.actions[0], Create) and result.actions[0].step == "prepare"


def test_a_refused_retry_that_ends_the_run_deletes_the_shared_cluster_at_once():
    """Found by test_planner_property: a Ray step's retry refused by the API server failed the
    run, but its shared RayCluster stayed until some later reconcile (the resync, a minute
    on): the refusal's plan now deletes it, as the plan that ends a run does."""
    steps = [{"name": "a", "ray": {"entrypoint": "x"}, "retries": 1, "backoffSeconds": 0}]
    world = World(mljob(steps, rayCluster={"rayVersion": "2.49.0"}))
    world.reconcile()
    world.finish("a", ok=False)
    before = copy.deepcopy(world.status)
    retry = world.reconcile()  # attempt 1 failed; attempt 2 is created at once (no backoff)
    assert [a.name for a in retry.actions if isinstance(a, Create)] == ["churn-a-r1-a2"]
    rejected = record_create_rejected(
        before, retry.status, "a", "exceeded quota", world.now, namespace="team-a"
    )
    assert rejected.status["phase"] == c.FAILED
    assert [(a.kind, a.name, a.namespace) for a in rejected.actions] == [
        (c.RAY_CLUSTER_KIND, "churn-r1-ray", "team-a")
    ]
    assert rejected.status["rayCluster"]["state"] == "Deleting"


def test_a_refusal_that_leaves_a_ray_job_on_the_shared_cluster_keeps_it():
    steps = [
        {"name": "a", "ray": {"entrypoint": "x"}},
        {"name": "b", "spark": spark_step("b")["spark"], "dependsOn": []},
    ]
    job = mljob(steps, rayCluster={"rayVersion": "2.49.0"})
    result = plan(job, [], T0)
    assert [a.step for a in result.actions] == [None, "a", "b"]
    rejected = record_create_rejected({}, result.status, "b", "quota", T0, namespace="team-a")
    assert rejected.status["phase"] == c.FAILED and rejected.actions == []  # a still runs on it


def test_a_refusal_releases_the_cluster_once_and_clears_its_run_time_fields():
    steps = [{"name": "a", "ray": {"entrypoint": "x"}}]
    job = mljob(steps, rayCluster={"rayVersion": "2.49.0"})
    status = plan(job, [], T0).status
    status["rayCluster"].update(suspended=True, message="kept running while suspended")
    rejected = record_create_rejected({}, status, "a", "quota", T0, [], namespace="team-a")
    assert rejected.actions == [Delete("ray.io/v1", c.RAY_CLUSTER_KIND, "churn-r1-ray", "team-a")]
    assert rejected.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Deleting"}
    for gone in ("Deleting", "Deleted"):  # already on its way: not deleted twice
        status["rayCluster"] = {"name": "churn-r1-ray", "state": gone}
        again = record_create_rejected({}, status, "a", "quota", T0, [], namespace="team-a")
        assert again.actions == [] and again.status["rayCluster"]["state"] == gone


def test_a_spec_made_invalid_mid_run_keeps_the_steps_and_says_why():
    world = World(mljob([spark_step("a"), spark_step("b")]))
    world.reconcile()
    world.finish("a")
    world.reconcile()
    before = copy.deepcopy(world.status["steps"])
    world.edit(steps=[spark_step("a"), spark_step("a")])  # two steps with one name
    result = world.reconcile()
    status = result.status
    assert status["phase"] == c.FAILED and status["progress"] == "1/2"
    assert status["steps"] == before  # the record of what ran stays
    assert status["message"].startswith("invalid spec: ")
    errors = status["message"][len("invalid spec: ") :]
    assert errors == "; ".join(validate(world.mljob))
    # the plan's status is a copy: changing it leaves the MLJob it was planned from alone
    job = copy.deepcopy(world.mljob)
    planned = plan(job, list(world.children.values()), world.now).status
    planned["steps"][0]["message"] = "changed"
    assert job["status"]["steps"][0]["message"] != "changed"


def test_a_retry_skipped_after_a_refusal_goes_back_to_its_entry_before_the_plan():
    steps = [
        spark_step("p"),
        spark_step("x", dependsOn=["p"]),
        spark_step("a", dependsOn=[], retries=1, backoffSeconds=0),
    ]
    world = World(mljob(steps))
    world.reconcile()  # p and a start
    world.finish("p")
    world.finish("a", ok=False)
    old = copy.deepcopy(world.status)
    result = plan(world.mljob, list(world.children.values()), world.now)
    assert [a.name for a in result.actions if isinstance(a, Create)] == [
        "churn-x-r1",
        "churn-a-r1-a2",
    ]
    rejected = record_create_rejected(
        old, result.status, "x", "quota", world.now, ["a"], namespace="team-a"
    )
    entries = {e["name"]: e for e in rejected.status["steps"]}
    assert entries["a"] == next(e for e in old["steps"] if e["name"] == "a")  # as before the plan
    assert entries["x"]["childState"] == c.CHILD_STATE_CREATE_REJECTED


PINNED_SPEC_HASH = "fd7dafb5b80de4f6"  # mljob() of the corpus; never change it lightly


def test_the_spec_hash_is_stable_across_operator_versions():
    """A different hash starts a new run: an operator upgrade must not restart every MLJob."""
    spec = mljob()["spec"]
    assert spec_hash(spec) == PINNED_SPEC_HASH
    assert spec_hash(dict(reversed(list(spec.items())))) == PINNED_SPEC_HASH  # key order
    assert spec_hash({**spec, "suspend": True, "ttlSecondsAfterFinished": 5}) == PINNED_SPEC_HASH
    assert spec_hash({**spec, "labels": {"when": T0}}) != PINNED_SPEC_HASH  # str() of the rest


def _draining_world(**spec) -> World:
    """a (Spark) and b (Ray) running in parallel in run 1, then the spec changed."""
    steps = [spark_step("a", retries=2), ray_step("b", dependsOn=[], retries=2)]
    world = World(mljob(steps, onSpecChange=c.WAIT_FOR_RUNNING, **spec))
    world.reconcile()
    world.edit(labels={"team": "x"})
    return world


def test_waiting_for_the_old_run_names_the_live_steps_and_retries_nothing():
    world = _draining_world()
    waiting = world.reconcile()
    assert waiting.status["currentStep"] == "a,b"
    assert waiting.status["message"] == "the spec changed: run 2 starts when step(s) a, b finish"
    assert waiting.status["observedGeneration"] == 2 and waiting.status["run"] == 1
    world.finish("a", ok=False)  # a failure while the old run drains is not retried
    failed = world.reconcile()
    assert not [a for a in failed.actions if isinstance(a, Create)]
    assert world.step("a")["phase"] == c.FAILED and world.step("a")["attempts"] == 1


def test_a_shared_cluster_lost_while_the_old_run_drains_fails_the_ray_job_on_it():
    steps = [
        spark_step("a"),
        {"name": "b", "ray": {"entrypoint": "x"}, "dependsOn": [], "retries": 2},
    ]
    world = World(mljob(steps, rayCluster={"rayVersion": "2.49.0"}))
    world.reconcile()
    world.edit(labels={"team": "x"})
    world.reconcile()  # waits for a and b
    del world.children[(c.RAY_CLUSTER_KIND, "churn-r1-ray")]
    result = world.reconcile()
    lost = [e for e in result.events if e.reason == c.EVENT_RAY_CLUSTER_LOST]
    assert [e.message for e in lost] == [
        "the shared RayCluster churn-r1-ray was deleted (by someone else)"
    ]
    assert world.step("b")["phase"] == c.FAILED  # no retry in a run that is ending
    assert (c.RAY_JOB_KIND, "churn-b-r1") in world.deleted


def test_the_ended_run_is_recorded_and_the_conditions_carried():
    world = World(mljob([spark_step("a")]))
    world.reconcile()
    world.finish("a")
    done = world.reconcile()
    world.edit(labels={"team": "x"})
    new_run = world.reconcile()
    assert new_run.status["runs"] == [
        {
            "run": 1,
            "phase": c.SUCCEEDED,
            "message": "all 1 steps succeeded",
            "completionTime": done.status["completionTime"],
            "startTime": done.status["startTime"],
        }
    ]
    before = {x["type"]: x for x in done.status["conditions"]}
    after = {x["type"]: x for x in new_run.status["conditions"]}
    # Stalled stays False from run 1 to run 2: its transition time is run 1's
    assert after["Stalled"]["lastTransitionTime"] == before["Stalled"]["lastTransitionTime"]
