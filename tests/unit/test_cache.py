"""The planner's cache of succeeded steps (issue 13): a re-run skips unchanged `cache: true`
steps, and the steps after them read the earlier run's outputs."""

from __future__ import annotations

import copy

import yaml
from planner_world import T0, World

from mljob import constants as c
from mljob import steps as step_machine
from mljob.testing.corpus import mljob, ray_step, spark_step

RUN_1 = "s3a://lake/churn/churn/run-1"
RUN_2 = "s3a://lake/churn/churn/run-2"


def pipeline(**prepare) -> list[dict]:
    return [
        spark_step("prepare", cache=True, **prepare),
        ray_step("train", cache=True),
        ray_step("evaluate", cache=True),
    ]


def finished_run(steps: list[dict]) -> World:
    """A World whose run 1 of `steps` succeeded."""
    world = World(mljob(copy.deepcopy(steps)))
    for step in steps:
        world.reconcile()
        world.finish(step["name"])
    world.reconcile()
    assert world.status["phase"] == c.SUCCEEDED
    return world


def rerun(world: World, steps: list[dict]) -> list[tuple[str, str]]:
    """Apply `steps` (a spec change: run 2), then finish each step it creates; the creates."""
    before = len(world.created)
    world.edit(steps=copy.deepcopy(steps))
    for _ in range(len(steps) + 1):
        world.reconcile()
        for entry in world.status["steps"]:
            if entry["attempts"] and entry["phase"] in (c.PENDING, c.RUNNING):
                world.finish(entry["name"])
    assert world.status["phase"] == c.SUCCEEDED and world.status["run"] == 2
    return world.created[before:]


def env_of(world: World, kind: str, name: str) -> dict[str, str]:
    body = world.children[(kind, name)]
    if kind == c.SPARK_KIND:
        conf = body["spec"]["sparkConf"]
        prefix = "spark.kubernetes.driverEnv."
        return {k.removeprefix(prefix): v for k, v in conf.items() if k.startswith(prefix)}
    return yaml.safe_load(body["spec"]["runtimeEnvYAML"])["env_vars"]


def test_a_change_of_one_step_reruns_only_it_and_what_depends_on_it():
    world = finished_run(pipeline())
    edited = pipeline()
    edited[1]["ray"]["entrypoint"] = "python /app/train.py --rounds 5"
    created = rerun(world, edited)
    assert created == [(c.RAY_JOB_KIND, "churn-train-r2"), (c.RAY_JOB_KIND, "churn-evaluate-r2")]
    prepare = world.step("prepare")
    assert prepare["phase"] == c.SUCCEEDED and prepare["childState"] == c.CHILD_STATE_CACHED
    assert prepare["cachedFromRun"] == 1 and prepare["attempts"] == 0 and prepare["child"] == ""
    assert "run 1" in prepare["message"]
    cached = [e for e in world.events if e.reason == c.EVENT_STEP_CACHED]
    assert [e.message for e in cached] == [f"step prepare: {prepare['message']}"]
    env = env_of(world, c.RAY_JOB_KIND, "churn-train-r2")
    assert env["MLJOB_INPUT_PREPARE"] == f"{RUN_1}/prepare"  # where the cached outputs are
    assert env["MLJOB_OUTPUT_PATH"] == f"{RUN_2}/train"
    assert env["MLJOB_DATA_PATH"] == RUN_2  # kept for existing manifests
    assert env_of(world, c.RAY_JOB_KIND, "churn-evaluate-r2")["MLJOB_INPUT_TRAIN"] == (
        f"{RUN_2}/train"
    )


def test_a_change_at_the_end_skips_every_step_before_it_and_chains_the_inputs():
    world = finished_run(pipeline())
    edited = pipeline()
    edited[2]["ray"]["entrypoint"] = "python /app/evaluate.py --threshold 0.4"
    assert rerun(world, edited) == [(c.RAY_JOB_KIND, "churn-evaluate-r2")]
    assert [world.step(n).get("cachedFromRun") for n in ("prepare", "train")] == [1, 1]
    env = env_of(world, c.RAY_JOB_KIND, "churn-evaluate-r2")
    assert env["MLJOB_INPUT_TRAIN"] == f"{RUN_1}/train"
    # run 3 changes evaluate again: train's record still names run 1, evaluate's is run 2
    world.edit(steps=pipeline())
    world.reconcile()
    assert world.status["run"] == 3 and world.status["phase"] == c.SUCCEEDED
    assert [world.step(n)["cachedFromRun"] for n in ("prepare", "train", "evaluate")] == [1, 1, 1]


def test_a_cache_key_bump_reruns_the_step_and_everything_below_it():
    world = finished_run(pipeline(cacheKey="2026-01-01"))
    created = rerun(world, pipeline(cacheKey="2026-01-02"))
    assert [name for _, name in created] == [
        "churn-prepare-r2",
        "churn-train-r2",
        "churn-evaluate-r2",
    ]
    env = env_of(world, c.RAY_JOB_KIND, "churn-train-r2")
    assert env["MLJOB_INPUT_PREPARE"] == f"{RUN_2}/prepare"


def test_a_dependency_that_ran_again_makes_its_dependant_miss():
    """train's own spec did not change, but prepare's did: train must not reuse its outputs."""
    world = finished_run(pipeline())
    edited = pipeline()
    edited[0]["spark"]["arguments"] = ["--rows", "10"]
    created = rerun(world, edited)
    assert [name for _, name in created] == [
        "churn-prepare-r2",
        "churn-train-r2",
        "churn-evaluate-r2",
    ]


def test_fresh_outputs_upstream_are_never_hidden_even_with_the_same_fingerprint():
    """prepare without cache runs again in run 2 (fresh data): train, unchanged and cached,
    still misses, since its inputs are prepare's run 2 outputs now."""
    steps = pipeline()
    del steps[0]["cache"]
    world = finished_run(steps)
    edited = copy.deepcopy(steps)
    edited[2]["ray"]["entrypoint"] = "python /app/evaluate.py --v 2"
    created = rerun(world, edited)
    assert [name for _, name in created] == [
        "churn-prepare-r2",
        "churn-train-r2",
        "churn-evaluate-r2",
    ]


def test_cache_off_reruns_everything_and_remembers_nothing():
    steps = [spark_step("prepare"), ray_step("train"), ray_step("evaluate")]
    world = finished_run(steps)
    assert "cache" not in world.status
    edited = copy.deepcopy(steps)
    edited[2]["ray"]["entrypoint"] = "python /app/evaluate.py --v 2"
    assert len(rerun(world, edited)) == 3
    assert not [e for e in world.events if e.reason == c.EVENT_STEP_CACHED]


def test_a_failed_step_is_not_remembered_and_a_succeeded_one_is_once():
    world = World(mljob(pipeline()))
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    world.reconcile()
    assert [(r["step"], r["run"], r["inputs"]) for r in world.status["cache"]] == [
        ("prepare", 1, {})
    ]
    world.finish("train", ok=False)
    world.reconcile()
    assert world.status["phase"] == c.FAILED
    assert [r["step"] for r in world.status["cache"]] == ["prepare"]


def test_the_cache_survives_a_run_that_changes_nothing_cached():
    world = finished_run(pipeline())
    records = copy.deepcopy(world.status["cache"])
    assert [(r["step"], r["inputs"]) for r in records] == [
        ("prepare", {}),
        ("train", {"prepare": 1}),
        ("evaluate", {"train": 1}),
    ]
    world.edit(suspend=True)  # a run-control field: no new run
    world.reconcile()
    assert world.status["cache"] == records


def test_the_cache_transition_is_only_before_the_first_attempt():
    entry = step_machine.new_entry("prepare", c.SPARK_KIND, None)
    entry["attempts"] = 1
    try:
        step_machine.cached(entry, 1, T0)
    except step_machine.IllegalTransition as error:
        assert "cache hit while Pending with attempt 1" in str(error)
    else:
        raise AssertionError("a started step took a cache hit")


def test_a_run_the_cache_ends_at_once_warms_up_no_shared_cluster():
    """startPolicy Eager creates the shared RayCluster with the run's first step; a run whose
    every step hits the cache has none to run (found by the property test)."""
    steps = [ray_step("train", cache=True)]
    del steps[0]["ray"]["rayVersion"]
    shared = {"rayVersion": "2.49.0", "startPolicy": c.START_EAGER}
    world = World(mljob(copy.deepcopy(steps), rayCluster=shared))
    world.reconcile()
    world.finish("train")
    world.reconcile()
    assert world.status["phase"] == c.SUCCEEDED
    world.edit(labels={"team": "a"})  # a new run; the fingerprint does not count labels
    world.reconcile()
    assert world.status["run"] == 2 and world.status["phase"] == c.SUCCEEDED
    assert world.step("train")["cachedFromRun"] == 1
    assert [key for key in world.created if key[0] == c.RAY_CLUSTER_KIND] == [
        (c.RAY_CLUSTER_KIND, "churn-r1-ray")
    ]
