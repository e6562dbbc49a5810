"""Lifecycle: retries, deadlines, suspend/resume, TTL, runs on spec change, deleted children."""

import pytest
from planner_world import World

from mljob import constants as c
from mljob.planner import Create, Delete, Patch, backoff_seconds, plan, status_patch
from mljob.testing.corpus import mljob, ray_step, spark_step

SUBMITTED = {"applicationState": {"state": "SUBMITTED"}, "driverInfo": {}}
SPARK_RUNNING = {"applicationState": {"state": "RUNNING"}, "driverInfo": {}}
RAY_INITIALIZING = {"jobDeploymentStatus": "Initializing"}
RAY = {"entrypoint": "python /app/train.py", "rayVersion": "2.49.0"}
RAY_RUNNING = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}


def condition(status, kind):
    return next(x for x in status["conditions"] if x["type"] == kind)


def created(result):
    return [a.name for a in result.actions if isinstance(a, Create)]


def deleted(result):
    return [a.name for a in result.actions if isinstance(a, Delete)]


def patches(result, kind=None):
    return [
        (a.name, a.patch) for a in result.actions if isinstance(a, Patch) and kind in (None, a.kind)
    ]


def started_world(steps=None, **spec) -> World:
    world = World(mljob(steps, **spec))
    world.reconcile()
    return world


# --- retries -----------------------------------------------------------------------------------
def test_failed_attempt_is_retried_with_backoff_until_the_limit():
    world = started_world([spark_step("prepare", retries=2), ray_step("train")])
    world.finish("prepare", ok=False)
    result = world.reconcile()
    entry = world.step("prepare")
    assert created(result) == [] and entry["phase"] == c.RETRYING
    assert entry["failures"][0]["child"] == "churn-prepare-r1"
    assert "driver exited 1" in entry["failures"][0]["message"]
    assert result.requeue_after == 10.0
    assert world.status["phase"] == c.RUNNING
    assert "StepRetrying" in [e.reason for e in result.events]

    assert created(world.reconcile(seconds=9)) == []
    assert created(world.reconcile(seconds=1)) == ["churn-prepare-r1-a2"]
    assert world.step("prepare")["attempts"] == 2 and world.step("prepare")["phase"] == c.PENDING

    world.finish("prepare", ok=False)
    assert world.reconcile(seconds=0).requeue_after == 20.0  # doubled
    assert created(world.reconcile(seconds=20)) == ["churn-prepare-r1-a3"]
    world.finish("prepare", ok=False)
    result = world.reconcile()
    entry = world.step("prepare")
    assert entry["phase"] == c.FAILED and entry["attempts"] == 3
    assert entry["message"].startswith("attempt 3 of 3 failed: driver exited 1")
    assert [f["attempt"] for f in entry["failures"]] == [1, 2, 3]
    assert world.status["phase"] == c.FAILED and result.requeue_after is None
    assert created(world.reconcile(seconds=3600)) == []


def test_retry_then_success_continues_the_pipeline_and_never_reruns_succeeded_steps():
    world = started_world(
        [spark_step("prepare"), ray_step("train", retries=1, backoffSeconds=0)], suspend=False
    )
    world.finish("prepare")
    world.reconcile()
    world.finish("train", ok=False)
    assert created(world.reconcile()) == ["churn-train-r1-a2"]  # backoff 0: at once
    world.finish("train")
    world.reconcile()
    assert world.status["phase"] == c.SUCCEEDED
    assert world.created.count(("SparkApplication", "churn-prepare-r1")) == 1


@pytest.mark.parametrize(
    ("step", "failed_attempts", "wait"),
    [
        ({}, 1, 10),
        ({}, 2, 20),
        ({}, 4, 80),
        ({}, 8, 600),  # capped by the default maxBackoffSeconds
        ({"backoffSeconds": 0}, 3, 0),
        ({"backoffSeconds": 5, "maxBackoffSeconds": 12}, 3, 12),
        ({"backoffSeconds": 30, "maxBackoffSeconds": 0}, 1, 0),
    ],
)
def test_backoff_doubles_and_is_capped(step, failed_attempts, wait):
    assert backoff_seconds(step, failed_attempts) == wait


def test_lost_status_write_after_a_retry_create_adopts_the_new_attempt():
    world = started_world([spark_step("prepare", retries=1, backoffSeconds=0)])
    world.finish("prepare", ok=False)
    world.reconcile()
    before = dict(world.mljob["status"])
    world.mljob["status"] = {**before, "steps": [dict(before["steps"][0])]}
    world.mljob["status"]["steps"][0].update(phase=c.RETRYING, attempts=1, child="churn-prepare-r1")
    assert created(world.reconcile()) == []  # churn-prepare-r1-a2 exists: adopted
    assert world.step("prepare")["child"] == "churn-prepare-r1-a2"


# --- a child deleted by someone else -------------------------------------------------------------
def test_child_deleted_while_running_fails_the_step_with_a_clear_message():
    world = started_world()
    world.set_status(c.SPARK_KIND, "churn-prepare-r1", SPARK_RUNNING)
    world.reconcile()
    del world.children[(c.SPARK_KIND, "churn-prepare-r1")]
    world.reconcile()
    entry = world.step("prepare")
    assert entry["phase"] == c.FAILED and entry["childState"] == c.CHILD_STATE_DELETED
    assert "SparkApplication churn-prepare-r1 was deleted while Running" in entry["message"]
    stalled = condition(world.status, "Stalled")
    assert stalled["reason"] == "StepPrepareSparkApplicationDeleted"


def test_child_deleted_with_retries_left_is_recreated_as_a_new_attempt():
    world = started_world([spark_step("prepare", retries=1, backoffSeconds=0)])
    del world.children[(c.SPARK_KIND, "churn-prepare-r1")]
    assert created(world.reconcile()) == ["churn-prepare-r1-a2"]
    assert "was deleted while Pending" in world.step("prepare")["failures"][0]["message"]


# --- deadlines -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step", "kind", "child", "stuck", "still"),
    [
        (
            spark_step("s", startDeadlineSeconds=300),
            c.SPARK_KIND,
            "churn-s-r1",
            SUBMITTED,
            "SUBMITTED",
        ),
        (
            ray_step("s", startDeadlineSeconds=300),
            c.RAY_JOB_KIND,
            "churn-s-r1",
            RAY_INITIALIZING,
            "Initializing",
        ),
    ],
)
def test_start_deadline_fails_a_child_that_never_runs(step, kind, child, stuck, still):
    world = World(mljob([step]))
    assert world.reconcile(seconds=0).requeue_after == 300.0
    world.set_status(kind, child, stuck)
    result = world.reconcile(seconds=299)
    assert deleted(result) == [] and result.requeue_after == 1.0
    result = world.reconcile(seconds=1)
    assert deleted(result) == [child]
    entry = world.step("s")
    assert entry["phase"] == c.FAILED and entry["childState"] == c.CHILD_STATE_START_DEADLINE
    assert f"startDeadlineSeconds (300s) expired: {kind} {child} still {still}" in entry["message"]
    assert condition(world.status, "Stalled")["reason"] == f"StepS{kind}StartDeadlineExceeded"


def test_start_deadline_does_not_apply_once_running():
    world = World(mljob([spark_step("s", startDeadlineSeconds=60)]))
    world.reconcile(seconds=0)
    world.set_status(c.SPARK_KIND, "churn-s-r1", SPARK_RUNNING)
    result = world.reconcile(seconds=30)
    assert result.requeue_after is None
    assert deleted(world.reconcile(seconds=3600)) == []
    assert world.step("s")["phase"] == c.RUNNING


def test_step_active_deadline_is_a_failed_attempt_and_retries_apply():
    step = ray_step("train", activeDeadlineSeconds=600, retries=1, backoffSeconds=0)
    world = World(mljob([step]))
    first = world.reconcile(seconds=0)
    assert first.actions[0].body["spec"]["activeDeadlineSeconds"] == 600  # KubeRay's own, too
    world.set_status(c.RAY_JOB_KIND, "churn-train-r1", RAY_RUNNING)
    result = world.reconcile(seconds=600)
    assert deleted(result) == ["churn-train-r1"] and created(result) == ["churn-train-r1-a2"]
    failure = world.step("train")["failures"][0]
    assert failure["message"].startswith("activeDeadlineSeconds (600s) expired: RayJob")


def test_pipeline_deadline_fails_the_run_without_retries():
    steps = [spark_step("prepare", retries=3), ray_step("train")]
    world = World(mljob(steps, activeDeadlineSeconds=900))
    assert world.reconcile(seconds=0).requeue_after == 900.0
    world.set_status(c.SPARK_KIND, "churn-prepare-r1", SPARK_RUNNING)
    result = world.reconcile(seconds=900)
    assert deleted(result) == ["churn-prepare-r1"] and created(result) == []
    assert world.step("prepare")["childState"] == c.CHILD_STATE_PIPELINE_DEADLINE
    stalled = condition(world.status, "Stalled")
    assert stalled["reason"] == c.REASON_DEADLINE_EXCEEDED
    assert "spec.activeDeadlineSeconds (900s) of the pipeline expired" in stalled["message"]
    assert world.step("train")["phase"] == c.PENDING
    assert world.reconcile(seconds=3600).actions == []


def test_deadlines_pause_while_suspended_and_restart_on_resume():
    world = World(mljob([spark_step("s", startDeadlineSeconds=300)], activeDeadlineSeconds=400))
    world.reconcile(seconds=0)
    world.mljob["spec"]["suspend"] = True
    result = world.reconcile(seconds=100)
    assert result.requeue_after is None
    assert world.reconcile(seconds=1000).actions == []  # long past both deadlines
    world.mljob["spec"]["suspend"] = False
    result = world.reconcile(seconds=10)
    assert deleted(result) == [] and world.status["resumeTime"]
    assert result.requeue_after == 300.0  # counted again from the resume
    assert deleted(world.reconcile(seconds=300)) == ["churn-s-r1"]


# --- suspend and resume --------------------------------------------------------------------------
def test_suspend_patches_live_children_starts_nothing_and_resume_patches_back():
    steps = [spark_step("prepare"), ray_step("train")]
    world = started_world(steps)
    world.mljob["spec"]["suspend"] = True
    result = world.reconcile()
    assert patches(result) == [("churn-prepare-r1", {"spec": {"suspend": True}})]
    assert world.children[(c.SPARK_KIND, "churn-prepare-r1")]["spec"]["suspend"] is True
    assert world.status["phase"] == c.SUSPENDED and world.step("prepare")["childSuspended"]
    assert world.reconcile().actions == []  # patched once
    world.finish("prepare")
    assert world.reconcile().actions == []  # train does not start while suspended
    world.mljob["spec"]["suspend"] = False
    assert created(world.reconcile()) == ["churn-train-r1"]


def test_resume_patches_a_suspended_child_back():
    world = started_world()
    world.mljob["spec"]["suspend"] = True
    world.reconcile()
    world.mljob["spec"]["suspend"] = False
    result = world.reconcile()
    assert patches(result) == [("churn-prepare-r1", {"spec": {"suspend": False}})]
    assert "childSuspended" not in world.step("prepare")
    assert world.status["phase"] == c.RUNNING


@pytest.mark.parametrize(
    ("spec", "steps", "patched"),
    [
        ({}, [ray_step("train")], True),
        ({"labels": {c.KUEUE_QUEUE_LABEL: "q"}}, [ray_step("train")], False),
        ({"labels": {c.KUEUE_QUEUE_LABEL: "q"}}, [spark_step("prep")], False),
        (
            {"rayCluster": {"rayVersion": "2.49.0"}},
            [{"name": "t", "ray": {"entrypoint": "x"}}],
            False,
        ),
        ({}, [ray_step("t", ray={**RAY, "template": {"shutdownAfterJobFinishes": False}})], False),
    ],
    ids=["rayjob", "rayjob-kueue", "spark-kueue", "rayjob-shared-cluster", "rayjob-no-shutdown"],
)
def test_suspend_only_where_the_kind_allows_it_and_never_against_kueue(spec, steps, patched):
    world = started_world(steps, **spec)
    world.mljob["spec"]["suspend"] = True
    result = world.reconcile()
    assert bool([*patches(result, c.SPARK_KIND), *patches(result, c.RAY_JOB_KIND)]) is patched
    assert world.status["phase"] == c.SUSPENDED


# --- TTL -----------------------------------------------------------------------------------------
def test_ttl_deletes_all_children_once_and_keeps_the_status():
    steps = [spark_step("prepare"), {"name": "train", "ray": {"entrypoint": "x"}}]
    world = started_world(steps, ttlSecondsAfterFinished=3600, rayCluster={"rayVersion": "2.49"})
    world.finish("prepare")
    world.reconcile()
    world.finish("train")
    result = world.reconcile()
    assert world.status["phase"] == c.SUCCEEDED and result.requeue_after == 3600.0
    assert deleted(result) == ["churn-r1-ray"]  # the shared cluster goes at the end anyway
    result = world.reconcile(seconds=3600)
    assert sorted(deleted(result)) == ["churn-prepare-r1", "churn-train-r1"]
    assert world.status["childrenDeletedTime"] and world.children == {}
    assert "ChildrenDeleted" in [e.reason for e in result.events]
    again = world.reconcile(seconds=3600)
    assert again.actions == [] and again.requeue_after is None
    assert world.status["phase"] == c.SUCCEEDED and world.status["progress"] == "2/2"


def test_no_ttl_keeps_children():
    world = started_world([spark_step("prepare")])
    world.finish("prepare")
    assert world.reconcile().requeue_after is None
    assert world.reconcile(seconds=10**7).actions == []


# --- spec changes and runs -----------------------------------------------------------------------
def test_reapply_and_run_control_changes_never_start_a_run():
    world = started_world()
    hash_before = world.status["specHash"]
    changes = [
        {},
        {"suspend": False},
        {"ttlSecondsAfterFinished": 5},
        {"activeDeadlineSeconds": 10**6},
        {"onSpecChange": c.CANCEL_RUNNING},
    ]
    for change in changes:
        world.edit(**change)
        result = world.reconcile(seconds=1)
        assert created(result) == [] and deleted(result) == []
        assert world.status["run"] == 1 and world.status["specHash"] == hash_before
        assert world.status["observedGeneration"] == world.mljob["metadata"]["generation"]


def test_spec_change_waits_for_running_children_by_default_then_starts_a_new_run():
    world = started_world()
    world.set_status(c.SPARK_KIND, "churn-prepare-r1", SPARK_RUNNING)
    world.edit(image="registry.example.com/churn:1.5")
    result = world.reconcile()
    assert result.actions == [] and world.status["run"] == 1
    reconciling = condition(world.status, "Reconciling")
    assert reconciling["status"] == "True" and reconciling["reason"] == c.REASON_WAITING_FOR_RUN
    assert "run 2 starts when step(s) prepare finish" in world.status["message"]
    world.finish("prepare")
    result = world.reconcile()
    assert created(result) == ["churn-prepare-r2"]  # the new run starts from the first step
    body = result.actions[0].body
    assert body["metadata"]["labels"][c.LABEL_RUN] == "2"
    assert body["spec"]["image"] == "registry.example.com/churn:1.5"
    assert world.status["run"] == 2 and world.step("prepare")["attempts"] == 1
    assert world.status["runs"] == [
        {
            "run": 1,
            "phase": c.CANCELLED,
            "message": "ended by a spec change before it finished",
            "startTime": "2026-01-01T00:01:00Z",
            "completionTime": "2026-01-01T00:03:00Z",
        }
    ]
    assert "RunStarted" in [e.reason for e in result.events]


def test_cancel_running_deletes_the_old_children_and_starts_at_once():
    world = started_world(onSpecChange=c.CANCEL_RUNNING)
    world.edit(dataPath="s3a://lake/other")
    result = world.reconcile()
    assert deleted(result) == ["churn-prepare-r1"] and created(result) == ["churn-prepare-r2"]
    assert world.status["runs"][0]["phase"] == c.CANCELLED
    assert world.status["phase"] == c.RUNNING and world.status["run"] == 2


def test_spec_change_after_the_run_ended_starts_a_new_run_with_fresh_times_and_ttl():
    world = started_world([spark_step("prepare")], ttlSecondsAfterFinished=60)
    world.finish("prepare")
    world.reconcile()
    world.reconcile(seconds=60)
    assert world.status["childrenDeletedTime"]
    world.edit(image="registry.example.com/churn:2")
    result = world.reconcile()
    assert created(result) == ["churn-prepare-r2"]
    status = world.status
    assert status["runs"][0]["phase"] == c.SUCCEEDED
    assert "childrenDeletedTime" not in status and "completionTime" not in status
    assert status["phase"] == c.RUNNING and status["startTime"] == "2026-01-01T00:04:00Z"


def test_a_failed_run_is_fixed_by_a_new_spec():
    world = started_world([spark_step("prepare")])
    world.finish("prepare", ok=False)
    world.reconcile()
    world.edit(image="registry.example.com/churn:fixed")
    assert created(world.reconcile()) == ["churn-prepare-r2"]
    assert world.status["runs"][0]["phase"] == c.FAILED
    assert "driver exited 1" in world.status["runs"][0]["message"]


def test_run_history_is_bounded():
    world = started_world([spark_step("prepare")], onSpecChange=c.CANCEL_RUNNING)
    for i in range(c.MAX_RUN_HISTORY + 3):
        world.edit(image=f"registry.example.com/churn:{i}")
        world.reconcile()
    runs = world.status["runs"]
    assert len(runs) == c.MAX_RUN_HISTORY and runs[-1]["run"] == world.status["run"] - 1


def test_an_invalid_edit_keeps_the_run_and_reverting_continues_it():
    world = started_world()
    good = dict(world.mljob["spec"])
    world.edit(steps=[])
    world.reconcile()
    assert condition(world.status, "Stalled")["reason"] == c.REASON_INVALID_SPEC
    world.mljob["spec"] = good
    world.mljob["metadata"]["generation"] += 1
    result = world.reconcile()
    assert result.actions == [] and world.status["run"] == 1
    assert world.status["phase"] == c.RUNNING and world.step("prepare")["attempts"] == 1


def test_first_plan_records_the_spec_hash_and_an_older_status_is_adopted():
    result = plan(mljob(), [], World(mljob()).now)
    assert result.status["run"] == 1 and len(result.status["specHash"]) == 16
    world = started_world()
    del world.mljob["status"]["specHash"]  # written by an operator without runs
    assert world.reconcile().actions == [] and world.status["run"] == 1


# --- the status patch ---------------------------------------------------------------------------
def test_status_patch_nulls_dropped_keys_and_keeps_unchanged_ones_out():
    old = {"phase": "Succeeded", "completionTime": "t", "rayCluster": {"name": "x", "state": "A"}}
    new = {"phase": "Running", "rayCluster": {"name": "x", "state": "B"}, "run": 2}
    assert status_patch(old, new) == {
        "completionTime": None,
        "phase": "Running",
        "rayCluster": {"state": "B"},
        "run": 2,
    }
    assert status_patch(new, new) == {}


def test_a_stuck_child_of_the_old_run_is_ended_by_its_start_deadline_while_waiting():
    world = World(mljob([spark_step("prepare", startDeadlineSeconds=300)]))
    world.reconcile(seconds=0)
    world.set_status(c.SPARK_KIND, "churn-prepare-r1", SUBMITTED)
    world.edit(image="registry.example.com/churn:1.5")
    result = world.reconcile(seconds=100)
    assert result.actions == [] and result.requeue_after == 200.0
    result = world.reconcile(seconds=200)
    assert deleted(result) == ["churn-prepare-r1"] and created(result) == ["churn-prepare-r2"]
    assert world.status["runs"][0]["phase"] == c.FAILED


# --- the shared RayCluster: suspend releases it, a lost one is noticed ----------------------------
SHARED = {"rayVersion": "2.49.0"}


def shared_world() -> World:
    """prepare (Spark) -> train (Ray) -> score (Ray) on one shared RayCluster, prepare running."""
    steps = [
        spark_step("prepare"),
        {"name": "train", "ray": {"entrypoint": "x"}, "retries": 1},
        {"name": "score", "ray": {"entrypoint": "y"}},
    ]
    return started_world(steps, rayCluster=SHARED)


def test_suspend_between_ray_steps_suspends_the_shared_cluster_and_resume_resumes_it_first():
    world = shared_world()
    world.finish("prepare")
    world.reconcile()  # creates the cluster and the train RayJob
    world.finish("train")
    world.reconcile()  # score's RayJob created on the cluster, not submitted yet (Pending)
    world.edit(suspend=True)
    result = world.reconcile()
    assert patches(result) == [("churn-r1-ray", {"spec": {"suspend": True}})]
    assert world.status["rayCluster"] == {
        "name": "churn-r1-ray",
        "state": "Suspended",
        "suspended": True,
    }
    assert world.reconcile().actions == []  # patched once
    world.edit(suspend=False)
    result = world.reconcile()
    assert patches(result) == [("churn-r1-ray", {"spec": {"suspend": False}})]
    assert "suspended" not in world.status["rayCluster"]


def test_resume_patches_the_cluster_before_the_next_ray_step_is_created():
    world = shared_world()
    world.finish("prepare")
    world.reconcile()
    world.finish("train")
    world.edit(suspend=True)  # suspended between train and score: nothing runs on the cluster
    assert patches(world.reconcile()) == [("churn-r1-ray", {"spec": {"suspend": True}})]
    world.edit(suspend=False)
    result = world.reconcile()
    kinds = [(type(a).__name__, a.kind) for a in result.actions]
    assert kinds == [("Patch", c.RAY_CLUSTER_KIND), ("Create", c.RAY_JOB_KIND)]


def test_a_ray_job_running_on_the_shared_cluster_keeps_it_up_while_suspended_and_says_why():
    world = shared_world()
    world.finish("prepare")
    world.reconcile()
    train = world.step("train")["child"]
    world.set_status(c.RAY_JOB_KIND, train, {"jobDeploymentStatus": "Running"})
    world.edit(suspend=True)
    result = world.reconcile()
    assert patches(result) == []  # neither the RayJob (KubeRay refuses) nor its cluster
    assert "kept running while suspended: step(s) train" in world.status["rayCluster"]["message"]
    world.finish("train")
    result = world.reconcile()  # the Ray job ended: now the cluster can go
    assert patches(result) == [("churn-r1-ray", {"spec": {"suspend": True}})]
    assert "message" not in world.status["rayCluster"]


def test_a_shared_cluster_deleted_by_someone_else_fails_the_attempt_on_it_and_is_recreated():
    world = shared_world()
    world.finish("prepare")
    world.reconcile()
    train = world.step("train")["child"]
    del world.children[(c.RAY_CLUSTER_KIND, "churn-r1-ray")]
    result = world.reconcile()
    assert deleted(result) == [train]  # it cannot run without its cluster
    entry = world.step("train")
    assert entry["phase"] == c.RETRYING and entry["childState"] == c.CHILD_STATE_CLUSTER_LOST
    assert "the shared RayCluster churn-r1-ray was deleted" in entry["failures"][-1]["message"]
    assert "rayCluster" not in world.status
    lost = [e for e in result.events if e.reason == c.EVENT_RAY_CLUSTER_LOST]
    assert len(lost) == 1 and lost[0].type == "Warning"
    world.advance(3600)
    result = world.reconcile()  # the retry creates the cluster again, ahead of its RayJob
    assert created(result) == ["churn-r1-ray", "churn-train-r1-a2"]


def test_a_shared_cluster_deleted_between_ray_steps_is_recreated_for_the_next_one():
    world = shared_world()
    world.finish("prepare")
    world.reconcile()
    world.finish("train")
    world.edit(suspend=True)  # hold score back
    world.reconcile()
    del world.children[(c.RAY_CLUSTER_KIND, "churn-r1-ray")]
    result = world.reconcile()
    assert result.actions == [] and world.step("train")["phase"] == c.SUCCEEDED
    world.edit(suspend=False)
    assert created(world.reconcile()) == ["churn-r1-ray", "churn-score-r1"]
