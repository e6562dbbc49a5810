"""Exact behaviour of the pure core where the uniform mutation sample of issue 18 found no test
(docs/testing.md, "Mutation testing of the pure core"): each test says which surviving mutant it
kills, as `module.function: the mutation`."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from planner_world import T0, World
from test_serve_step import serving_world
from test_validation_cases import cluster

from mljob import builders, states, steps
from mljob import constants as c
from mljob.planner import Delete, plan, record_create_rejected, spec_hash
from mljob.testing.corpus import mljob, ray_step, serve_mljob, shared_cluster_mljob, spark_step
from mljob.validation import (
    ray_cluster_spec_errors,
    ray_image_version,
    ray_image_version_errors,
    validate,
)

SERVE = "spec.steps[2].serve"


def serve_with(**fields: Any) -> list[str]:
    job = serve_mljob()
    job["spec"]["steps"][2]["serve"].update(fields)
    return validate(job)


# --- validation: a serve step's fields -----------------------------------------------------------
def test_a_serve_steps_runtime_env_must_be_a_mapping() -> None:
    """_check_serve: the runtimeEnv key misspelled in the type check."""
    assert serve_with(runtimeEnv="pip: [x]") == [f"{SERVE}.runtimeEnv: must be a mapping, got str"]


def test_a_serve_steps_env_vars_are_strings_and_named_by_their_path() -> None:
    """_check_serve: runtimeEnv read as serve.get(None); the env_vars path replaced by None."""
    assert serve_with(runtimeEnv={"env_vars": {"A": 1}}) == [
        f"{SERVE}.runtimeEnv.env_vars.A: must be a string (quote numbers and booleans)"
    ]


def test_a_serve_deployment_name_used_twice_is_named_once() -> None:
    """_check_serve: seen.add(str(None)) instead of the deployment's name."""
    assert serve_with(deployments=[{"name": "a"}, {"name": "b"}, {"name": "a"}]) == [
        f"{SERVE}.deployments[2].name: duplicate deployment 'a'"
    ]


@pytest.mark.parametrize("key", ["numCpus", "numGpus"])
def test_a_serve_deployments_cpus_and_gpus_are_numbers_at_least_0(key: str) -> None:
    """_check_serve: the key "numGpus" misspelled in the loop over both."""
    assert serve_with(deployments=[{"name": "a", key: -1}]) == [
        f"{SERVE}.deployments[0].{key}: must be a number >= 0, got -1"
    ]
    assert serve_with(deployments=[{"name": "a", key: 0.5}]) == []


def test_a_smoke_request_without_a_method_is_valid() -> None:
    """_check_smoke: `method is not None and method not in SMOKE_METHODS` -> `or`."""
    assert validate(serve_mljob(path="/predict", json={"rows": []})) == []


def test_a_get_smoke_request_without_a_body_is_valid() -> None:
    """_check_smoke: the GET rule's `"body" in smoke` -> `not in`."""
    assert validate(serve_mljob(path="/health", method="GET")) == []
    assert validate(serve_mljob(path="/health", method="GET", body="x")) == [
        f"{SERVE}.smoke.method: a GET request sends no json or body; use POST or drop them"
    ]


# --- validation: which MLJob field a child's schema error is blamed on ---------------------------
def test_a_schema_error_outside_a_template_that_sets_other_fields_names_the_step() -> None:
    """_in_template: a path the template does not hold -> True (blamed on the template)."""
    job = mljob([spark_step("prepare")])
    job["spec"]["steps"][0]["spark"]["template"] = {"timeToLiveSeconds": 60}
    job["spec"]["steps"][0]["spark"]["volumes"] = [{"name": "v", "emptyDir": {"sizeLimit": []}}]
    assert validate(job) == [
        "spec.steps[0].spark: SparkApplication spec.volumes[0].emptyDir.sizeLimit: "
        "must be an integer or a string, got list"
    ]


# --- builders ------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [None, {}])
def test_no_worker_group_is_not_elastic(workers: Any) -> None:
    """builders.elastic: `if not workers: return False` -> True."""
    assert builders.elastic(workers) is False


# --- steps ---------------------------------------------------------------------------------------
def test_a_cache_hit_after_an_attempt_names_the_step_its_phase_and_attempt() -> None:
    """steps.cached: the step's name read from a misspelled key."""
    entry = steps.new_entry("prepare", c.SPARK_KIND, None)
    entry["attempts"] = 2
    with pytest.raises(steps.IllegalTransition) as raised:
        steps.cached(entry, 1, T0)
    assert str(raised.value) == "step prepare: cache hit while Pending with attempt 2"


# --- planner -------------------------------------------------------------------------------------
def test_an_invalid_spec_counts_only_the_succeeded_steps_in_progress() -> None:
    """_invalid_status: `phase == Succeeded` -> `!=` (1 of 2 gives 1/2 either way; 1 of 3 not)."""
    world = World(mljob([spark_step("a"), spark_step("b"), spark_step("c")]))
    world.reconcile()
    world.finish("a")
    world.reconcile()
    world.mljob["spec"]["steps"][2]["dependsOn"] = ["nowhere"]
    world.mljob["metadata"]["generation"] += 1
    world.reconcile()
    assert (world.status["phase"], world.status["progress"]) == ("Failed", "1/3")


def _edit_train(world: World) -> None:
    """A spec change (a new run) that cancels the running one."""
    changed = copy.deepcopy(world.mljob["spec"]["steps"])
    changed[1]["ray"]["entrypoint"] = "python /app/train_v2.py"
    world.edit(steps=changed, onSpecChange=c.CANCEL_RUNNING)


def test_a_cancelled_run_deletes_its_live_rayjob_and_its_shared_cluster_at_once() -> None:
    """_delete_old_cluster: `(RayCluster, name) in ctx.observed` -> `not in`."""
    world = World(shared_cluster_mljob())
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Creating"}
    _edit_train(world)
    deletes = [(a.kind, a.name) for a in world.reconcile().actions if isinstance(a, Delete)]
    assert deletes == [("RayJob", "churn-train-r1"), ("RayCluster", "churn-r1-ray")]
    assert (world.status["run"], world.status.get("rayCluster")) == (2, None)


def _finished_on_a_shared_cluster() -> World:
    """The shared-cluster pipeline with every step finished: its cluster is being deleted."""
    world = World(shared_cluster_mljob())
    world.reconcile()
    for step in ("prepare", "train", "evaluate"):
        world.finish(step)
        world.reconcile()
    return world


def test_a_new_run_deletes_no_shared_cluster_that_is_already_gone() -> None:
    """_delete_old_cluster: `name and (RayCluster, name) in observed` -> `or`."""
    world = _finished_on_a_shared_cluster()
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Deleting"}
    assert ("RayCluster", "churn-r1-ray") not in world.children
    _edit_train(world)
    assert [a for a in world.reconcile().actions if isinstance(a, Delete)] == []
    assert world.status["runs"][-1]["phase"] == "Succeeded"


def test_a_failed_attempt_keeps_its_childs_raw_state() -> None:
    """_refresh: the failure's child state (state.raw) -> None."""
    world = World(mljob([spark_step("a", retries=1), ray_step("t", dependsOn=[])]))
    world.reconcile()
    world.finish("a", ok=False)
    world.finish("t", ok=False)
    world.reconcile()
    assert (world.step("a")["phase"], world.step("a")["childState"]) == ("Retrying", "FAILED")
    assert (world.step("t")["phase"], world.step("t")["childState"]) == ("Failed", "Failed")


def test_a_refused_create_in_the_same_run_puts_the_known_shared_cluster_back() -> None:
    """_undo_skipped_starts: old["rayCluster"] read under a misspelled key (a KeyError)."""
    world = World(shared_cluster_mljob(startPolicy="Eager"))
    world.reconcile()
    old = copy.deepcopy(world.status)
    old["rayCluster"] = {"name": "churn-r1-ray", "state": "Ready"}
    new = copy.deepcopy(old)
    new["rayCluster"]["state"] = "Creating"
    result = record_create_rejected(
        old, new, "prepare", "exceeded quota", world.now, [None], namespace="team-a"
    )
    # Back to the known cluster, which the failed run then releases.
    assert result.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Deleting"}
    assert [(a.kind, a.name) for a in result.actions] == [("RayCluster", "churn-r1-ray")]


def test_a_failed_attempt_whose_next_attempt_exists_adopts_it_in_the_same_reconcile() -> None:
    """_observe: the recursive call's `retry=retry` -> None (the next attempt's child, made by a
    plan whose status write was lost, would run unrecorded until the backoff ran out)."""
    world = World(mljob([spark_step("a", retries=2, backoffSeconds=600)]))
    world.reconcile()
    child = builders.build_step_child(world.mljob, world.mljob["spec"]["steps"][0], 1, 2)
    world.children[(child["kind"], child["metadata"]["name"])] = child
    world.finish("a", ok=False)
    assert world.reconcile().actions == []
    entry = world.step("a")
    assert (entry["phase"], entry["attempts"], entry["child"]) == ("Pending", 2, "churn-a-r1-a2")
    assert [f["child"] for f in entry["failures"]] == ["churn-a-r1"]


def test_a_step_removed_from_the_spec_while_it_runs_is_waited_for() -> None:
    """_enforce_step_deadlines: `... if step else None` -> `if step or True` (a step no longer
    in the spec has no deadlines to read)."""
    world = World(mljob([spark_step("a"), spark_step("b", dependsOn=[])]))
    world.reconcile()
    world.edit(steps=[spark_step("a")])
    assert world.reconcile().actions == []
    assert (world.status["phase"], world.status["message"]) == (
        "Running",
        "the spec changed: run 2 starts when step(s) a, b finish",
    )


# --- validation: a Spark step's fields, Ray details ----------------------------------------------
def spark_with(**fields: Any) -> list[str]:
    job = mljob()
    job["spec"]["steps"][0]["spark"].update(fields)
    return validate(job)


SPARK = "spec.steps[0].spark"


def test_a_spark_steps_fields_of_the_wrong_type_are_named_exactly() -> None:
    """_check_spark: the types list's separator; "mainClass" and "sparkConf" misspelled in the
    checks; the template's key misspelled (so a string template went unchecked)."""
    assert spark_with(type="Rust") == [
        f"{SPARK}.type: must be one of Python, Scala, Java, R, got 'Rust'"
    ]
    assert spark_with(mainClass=1) == [f"{SPARK}.mainClass: must be a string, got int"]
    assert spark_with(sparkConf={"spark.x": 1}) == [
        f"{SPARK}.sparkConf.spark.x: must be a string (quote numbers and booleans)"
    ]
    assert spark_with(template="x") == [f"{SPARK}.template: must be a mapping, got str"]


def test_a_denied_spark_conf_without_a_hint_says_the_operator_sets_it() -> None:
    """spark_application_errors: the default hint's text."""
    assert spark_with(sparkConf={"spark.master": "local[2]"}) == [
        f"{SPARK}.sparkConf.spark.master: denied by the Spark operator; the operator sets it"
    ]


def test_a_ray_step_without_its_version_is_told_to_quote_it() -> None:
    """_check_ray_cluster_fields: the rayVersion hint's text."""
    job = mljob()
    del job["spec"]["steps"][1]["ray"]["rayVersion"]
    assert validate(job) == ['spec.steps[1].ray.rayVersion: required (quoted, e.g. "2.49.0")']


@pytest.mark.parametrize("param", ["num-cpus", "num-gpus", "resources"])
def test_ray_resources_in_both_places_are_refused_for_each_start_param(param: str) -> None:
    """ray_cluster_spec_errors: "num-cpus" misspelled in the set of resource parameters."""
    spec = cluster("2.49.0", None)
    spec["workerGroupSpecs"][0].update(resources={"CPU": "1"}, rayStartParams={param: "1"})
    assert [e for e in ray_cluster_spec_errors(spec, "spec") if "not both" in e] == [
        "spec.workerGroupSpecs[0]: set Ray resources in rayStartParams or resources, not both"
    ]


def test_a_ray_image_pinned_by_digest_has_its_tags_version() -> None:
    """ray_image_version: `image.split("@", 1)` -> `split(None, 1)` (the digest kept)."""
    assert ray_image_version("rayproject/ray:2.49.0-py311@sha256:0123abcd") == ((2, 49), "py311")


# --- planner: shared cluster, suspend, TTL, times -------------------------------------------------
def test_a_spec_hash_ignores_the_shared_clusters_start_policy_only() -> None:
    """spec_hash: rayCluster read or written back under a misspelled key."""
    on_demand = shared_cluster_mljob()["spec"]
    eager = shared_cluster_mljob(startPolicy="Eager")["spec"]
    other = shared_cluster_mljob(rayVersion="2.47.1")["spec"]
    assert spec_hash(eager) == spec_hash(on_demand) != spec_hash(other)


def test_every_cache_step_that_ran_is_remembered() -> None:
    """_remember_succeeded: `continue` past a step without cache -> `break`; the records read
    back under a misspelled key (each new record replaced the others)."""
    world = World(
        mljob([spark_step("a"), spark_step("b", cache=True), spark_step("c", cache=True)])
    )
    world.reconcile()
    for step in ("a", "b", "c"):
        world.finish(step)
        world.reconcile()
    assert world.status["phase"] == "Succeeded"
    assert [(r["step"], r["run"]) for r in world.status["cache"]] == [("b", 1), ("c", 1)]


def test_suspend_patches_a_spark_child_after_a_ray_job_it_cannot_suspend() -> None:
    """_suspend_or_resume: `continue` past the unsuspendable RayJob -> `break`."""
    steps_ = [
        {"name": "train", "ray": {"entrypoint": "python /app/train.py"}},
        spark_step("prepare", dependsOn=[]),
    ]
    world = World(mljob(steps_, rayCluster={"rayVersion": "2.49.0"}))
    world.reconcile()
    world.set_status("RayJob", "churn-train-r1", {"jobDeploymentStatus": "Running"})
    world.reconcile()
    world.edit(suspend=True)
    patches = [(a.kind, a.name, a.patch) for a in world.reconcile().actions]
    assert patches == [("SparkApplication", "churn-prepare-r1", {"spec": {"suspend": True}})]
    assert [e.get("childSuspended") for e in world.status["steps"]] == [None, True]


def _failed_with_a_live_ray_branch(**spec: Any) -> World:
    """prepare fails while train (independent of it) runs on the shared RayCluster."""
    job = shared_cluster_mljob()
    job["spec"].update(spec)
    job["spec"]["steps"][1]["dependsOn"] = []
    world = World(job)
    world.reconcile()
    world.finish("prepare", ok=False)
    world.reconcile()
    assert world.status["phase"] == "Failed"
    return world


def test_a_failed_run_keeps_its_shared_cluster_while_a_ray_job_runs_on_it() -> None:
    """_track_shared_cluster: ray_busy -> None (the cluster deleted under the RayJob)."""
    world = _failed_with_a_live_ray_branch()
    assert world.reconcile().actions == []
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Provisioning"}


def test_ttl_cancels_a_live_branch_marks_the_cluster_deleted_and_fires_once() -> None:
    """_expire_ttl: the cancelled step's message -> None, the cluster's state "Deleted" ->
    "deleted"; _ttl_due_at: childrenDeletedTime read under a wrong key (fired again)."""
    world = _failed_with_a_live_ray_branch(ttlSecondsAfterFinished=300)
    deletes = [(a.kind, a.name) for a in world.reconcile(300).actions]
    assert deletes == [
        ("RayCluster", "churn-r1-ray"),
        ("RayJob", "churn-train-r1"),
        ("SparkApplication", "churn-prepare-r1"),
    ]
    train = world.step("train")
    assert (train["phase"], train["message"]) == ("Failed", "deleted by ttlSecondsAfterFinished")
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Deleted"}
    fired = world.status["childrenDeletedTime"]
    assert world.reconcile().actions == []
    assert world.status["childrenDeletedTime"] == fired


def test_a_spec_change_waiting_for_a_failed_runs_live_branch_has_no_completion_time() -> None:
    """_set_times: `new.pop("completionTime")` -> pop(None) (the ended run's time kept)."""
    world = _failed_with_a_live_ray_branch()
    changed = copy.deepcopy(world.mljob["spec"]["steps"])
    changed[0]["spark"]["arguments"] = ["--v2"]
    world.edit(steps=changed)
    world.reconcile()
    assert world.status["phase"] == "Running"
    assert "completionTime" not in world.status


def test_a_shared_cluster_status_lost_is_adopted_and_deleted_when_the_run_fails() -> None:
    """_adopt_shared_cluster: spec.rayCluster read under a misspelled key (never adopted: the
    cluster created by a plan whose status write was lost outlived the failed run)."""
    world = World(shared_cluster_mljob(startPolicy="Eager"))
    world.reconcile()
    del world.mljob["status"]["rayCluster"]
    world.finish("prepare", ok=False)
    deletes = [(type(a).__name__, a.kind, a.name) for a in world.reconcile().actions]
    assert deletes == [("Delete", "RayCluster", "churn-r1-ray")]
    assert world.status["phase"] == "Failed"
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Deleting"}


def test_suspend_does_not_patch_a_shared_cluster_being_deleted() -> None:
    """_suspend_or_resume_cluster: the "Deleting" state misspelled (a suspend patch sent to a
    cluster on its way out)."""
    world = World(shared_cluster_mljob())
    world.reconcile()
    for step in ("prepare", "train"):
        world.finish(step)
        world.reconcile()
    shown = copy.deepcopy(world.children[("RayCluster", "churn-r1-ray")])
    world.finish("evaluate")
    world.reconcile()
    world.children[("RayCluster", "churn-r1-ray")] = shown  # the watch still shows it
    world.edit(suspend=True)
    deletes = [(type(a).__name__, a.kind, a.name) for a in world.reconcile().actions]
    assert deletes == [("Delete", "RayCluster", "churn-r1-ray")]
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Deleting"}


# --- validation: the pipeline's and a step's fields ----------------------------------------------
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"dataPath": 1}, "spec.dataPath: must be a string, got int"),
        (
            {"annotations": {"a": 1}},
            "spec.annotations.a: must be a string (quote numbers and booleans)",
        ),
        (
            {"activeDeadlineSeconds": 0},
            "spec.activeDeadlineSeconds: must be between 1 and 31536000, got 0",
        ),
    ],
)
def test_a_pipeline_field_of_the_wrong_value_is_named_by_its_path(
    fields: dict, expected: str
) -> None:
    """_check_pipeline_fields: the path "spec" of dataPath, annotations and activeDeadlineSeconds
    mutated."""
    assert validate(mljob(**fields)) == [expected]


def test_an_unknown_start_policy_is_named() -> None:
    """_check_pipeline_fields: startPolicy read under a misspelled key."""
    assert validate(shared_cluster_mljob(startPolicy="Lazy")) == [
        "spec.rayCluster.startPolicy: must be one of OnDemand, Eager, got 'Lazy'"
    ]


@pytest.mark.parametrize("key", ["backoffSeconds", "maxBackoffSeconds"])
def test_a_backoff_is_at_most_a_day(key: str) -> None:
    """_check_step: the backoffs' upper bound MAX_BACKOFF_SECONDS -> None."""
    assert validate(mljob([spark_step("a", **{key: 86400})])) == []
    assert validate(mljob([spark_step("a", **{key: 86401})])) == [
        f"spec.steps[0].{key}: must be between 0 and 86400, got 86401"
    ]


def test_only_a_repeated_env_name_is_a_duplicate() -> None:
    """_check_env: `name in seen` -> `not in`."""
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "A", "value": "3"}]
    assert validate(mljob(env=env)) == ["spec.env[2].name: duplicate variable A"]


def test_a_cache_hit_records_where_the_outputs_come_from() -> None:
    """steps.cached: the childState key misspelled."""
    entry = steps.new_entry("prepare", c.SPARK_KIND, None)
    steps.cached(entry, 1, T0)
    assert entry == {
        "name": "prepare",
        "kind": c.SPARK_KIND,
        "child": "",
        "phase": "Succeeded",
        "childState": "Cached",
        "attempts": 0,
        "message": "not run: the outputs of run 1 are reused (cache)",
        "cachedFromRun": 1,
        "completionTime": "2026-01-01T00:00:00Z",
    }


def test_a_manifest_that_is_not_a_mapping_or_has_no_metadata_mapping() -> None:
    """_validate: the root message's text; _validated_part: `not isinstance(metadata, dict)` ->
    `isinstance` (metadata that is not a mapping then raised)."""
    assert validate(["x"]) == ["(root): an MLJob must be a mapping"]
    job = mljob()
    job["metadata"] = "churn"
    assert validate(job) == ["metadata.name: required"]


# --- builders: paths, inputs, the SparkApplication -----------------------------------------------
def test_a_run_folder_with_a_trailing_slash_gives_clean_paths() -> None:
    """io_env: `root.rstrip('/')` -> `lstrip('/')`."""
    assert builders.io_env(lambda r: f"/data/churn/r{r}/", 2, "train", {"prepare": 1}) == {
        "MLJOB_OUTPUT_PATH": "/data/churn/r2/train",
        "MLJOB_INPUT_PREPARE": "/data/churn/r1/prepare",
    }


def test_a_step_reads_a_cached_dependency_from_the_run_that_made_it() -> None:
    """step_inputs: status.steps read under a misspelled key (the cache hit not seen)."""
    job = mljob([spark_step("a"), spark_step("b")])
    job["status"] = {"run": 2, "steps": [{"name": "a", "cachedFromRun": 1}, {"name": "b"}]}
    assert builders.step_inputs(job, "b", 2) == {"a": 1}
    assert builders.step_inputs(job, "b", 3) == {"a": 3}  # another run's status says nothing


def test_a_spark_steps_main_class_and_arguments_reach_the_spark_application() -> None:
    """build_spark_application: the mainClass and arguments keys misspelled (read or written)."""
    step = spark_step("prepare")
    step["spark"].update(mainClass="org.example.Main", arguments=["--rows", "5"])
    spec = builders.build_step_child(mljob([step]), step, 1, 1)["spec"]
    assert (spec["mainClass"], spec["arguments"]) == ("org.example.Main", ["--rows", "5"])


# --- found by a second uniform sample (MUTANTS_SEED=19) ------------------------------------------
def test_a_serving_rayservice_without_a_reason_is_ready() -> None:
    """states.ray_service_state: the raw state's default "Ready" mutated."""
    service = {
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "activeServiceStatus": {
                "rayClusterName": "c1",
                "applicationStatuses": {"app": {"status": "RUNNING"}},
            },
        }
    }
    assert states.ray_service_state(service) == states.ChildState(
        "Succeeded", "Ready", "serving on the RayCluster c1"
    )


def test_a_rayservice_without_a_cluster_yet_is_pending() -> None:
    """states.ray_service_state: `RUNNING if clusters else PENDING` -> `if clusters or True`."""
    service = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Init"}]}}
    assert states.ray_service_state(service) == states.ChildState("Pending", "Init", "")


def test_the_endpoint_of_a_rayservice_without_a_name() -> None:
    """states.serve_endpoint: the name's default "" dropped (None-serve-svc)."""
    assert states.serve_endpoint({}) == ("-serve-svc", 8000, "/")


def test_a_serve_step_without_a_route_prefix_serves_at_the_root() -> None:
    """builders.serve_config_yaml: the route prefix's default dropped (route_prefix: null)."""
    job = serve_mljob()
    step = job["spec"]["steps"][2]
    del step["serve"]["routePrefix"]
    body = builders.build_step_child(job, step, 1, 1)
    app = yaml.safe_load(body["spec"]["serveConfigV2"])["applications"][0]
    assert app["route_prefix"] == "/"


def test_a_serve_steps_cluster_pods_carry_the_step_label() -> None:
    """builders.build_ray_service: the step name given to the cluster spec -> None."""
    job = serve_mljob()
    body = builders.build_step_child(job, job["spec"]["steps"][2], 1, 1)
    head = body["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]
    assert head["labels"] == {
        "mljob.io/name": "churn",
        "mljob.io/run": "1",
        "mljob.io/step": "serve",
    }


def test_a_serve_steps_env_vars_may_not_set_the_operators_names() -> None:
    """_check_serve: the reserved-name check given None instead of the env vars."""
    assert serve_with(runtimeEnv={"env_vars": {"MLJOB_RUN": "1"}}) == [
        f"{SERVE}.runtimeEnv.env_vars.MLJOB_RUN: set by the operator; use another name"
    ]


def test_an_autoscaler_option_on_fixed_workers_is_named_exactly() -> None:
    """_check_autoscaling: the message's text."""
    job = mljob()
    job["spec"]["steps"][1]["ray"]["workers"] = {"replicas": 2, "upscalingMode": "Conservative"}
    assert validate(job) == [
        "spec.steps[1].ray.workers.upscalingMode: only used by elastic workers; set minReplicas "
        "< maxReplicas to enable the autoscaler, or remove it"
    ]


def test_workers_are_elastic_only_below_their_maximum() -> None:
    """builders.elastic: replicas read under a misspelled key (default 1)."""
    assert builders.elastic({"replicas": 3, "maxReplicas": 3}) is False
    assert builders.elastic({"replicas": 3, "minReplicas": 1}) is True


def test_an_expired_active_deadline_is_the_childs_state() -> None:
    """_step_deadline_failure: the active deadline's child state -> None."""
    world = World(mljob([spark_step("a", activeDeadlineSeconds=60)]))
    world.reconcile()
    world.set_status("SparkApplication", "churn-a-r1", {"applicationState": {"state": "RUNNING"}})
    world.reconcile(30)
    world.reconcile(60)
    entry = world.step("a")
    assert (entry["phase"], entry["childState"]) == ("Failed", "ActiveDeadlineExceeded")


def test_suspend_leaves_a_rayjob_whose_step_left_the_spec() -> None:
    """_suspendable: `if step is None: return False` -> True."""
    world = World(mljob([ray_step("t"), spark_step("a", dependsOn=[])]))
    world.reconcile()
    world.edit(steps=[spark_step("a")])
    world.reconcile()
    world.edit(suspend=True)
    patches = [(a.kind, a.name, a.patch) for a in world.reconcile().actions]
    assert patches == [("SparkApplication", "churn-a-r1", {"spec": {"suspend": True}})]


def test_a_step_whose_kind_changed_keeps_its_old_childs_deadlines() -> None:
    """_Context.step: a step of another kind -> returned anyway (the new Ray step's deadline
    then killed the old run's SparkApplication)."""
    world = World(mljob([spark_step("a")]))
    world.reconcile()
    world.set_status("SparkApplication", "churn-a-r1", {"applicationState": {"state": "RUNNING"}})
    world.reconcile()
    world.edit(steps=[ray_step("a", activeDeadlineSeconds=60)])
    assert world.reconcile(120).actions == []
    assert world.step("a")["phase"] == "Running"


def test_a_shared_cluster_deleted_under_a_running_rayjob_is_announced_exactly() -> None:
    """_notice_lost_cluster: the Event's `if retry` -> `if retry and False` (the part saying the
    next Ray step creates it again dropped)."""
    world = World(shared_cluster_mljob())
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    world.set_status("RayJob", "churn-train-r1", {"jobDeploymentStatus": "Running"})
    world.reconcile()
    del world.children[("RayCluster", "churn-r1-ray")]
    lost = [e.message for e in world.reconcile().events if e.reason == "RayClusterLost"]
    assert lost == [
        "the shared RayCluster churn-r1-ray was deleted (by someone else); the next Ray step "
        "creates it again"
    ]


def test_suspend_does_not_patch_a_deleted_shared_cluster() -> None:
    """_suspend_or_resume_cluster: the "Deleted" state misspelled."""
    world = _finished_on_a_shared_cluster()
    world.reconcile()
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Deleted"}
    world.edit(suspend=True)
    assert world.reconcile().actions == []
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Deleted"}


def test_the_status_of_a_pipeline_whose_model_serves_has_exactly_its_fields() -> None:
    """_forget_serving: the kept records written under a misspelled key."""
    world = serving_world()
    assert sorted(world.job["status"]) == [
        "completionTime",
        "conditions",
        "currentStep",
        "message",
        "observedGeneration",
        "phase",
        "progress",
        "run",
        "serving",
        "specHash",
        "startTime",
        "steps",
    ]
    assert [r["rayService"] for r in world.job["status"]["serving"]] == ["churn-serve"]


def test_a_negative_ttl_is_named_by_its_path() -> None:
    """_check_pipeline_fields: ttlSecondsAfterFinished's path "spec" mutated."""
    assert validate(mljob(ttlSecondsAfterFinished=-1)) == [
        "spec.ttlSecondsAfterFinished: must be between 0 and 31536000, got -1"
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"serviceAccount": 1}, f"{SPARK}.serviceAccount: must be a string, got int"),
        ({"deps": {"jars": "a.jar"}}, f"{SPARK}.deps.jars: must be a list of strings"),
        ({"volumes": "x"}, f"{SPARK}.volumes: must be a list, got str"),
    ],
)
def test_more_spark_fields_of_the_wrong_type(fields: dict, expected: str) -> None:
    """_check_spark: "serviceAccount", "jars" and "volumes" misspelled in their checks."""
    assert spark_with(**fields) == [expected]


def test_a_spark_namespace_conf_must_be_the_mljobs_namespace() -> None:
    """spark_application_errors: the child's namespace read under a misspelled key."""
    assert spark_with(sparkConf={"spark.kubernetes.namespace": "team-a"}) == []
    assert spark_with(sparkConf={"spark.kubernetes.namespace": "other"}) == [
        f"{SPARK}.sparkConf.spark.kubernetes.namespace: children live in the MLJob's "
        "namespace; remove it"
    ]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ({"preRunningDeadlineSeconds": 0}, "preRunningDeadlineSeconds: must be > 0"),
        (
            {"deletionStrategy": {"deletionRules": [{"policy": "DeleteCluster"}]}},
            "deletionStrategy: deletionRules exclude shutdownAfterJobFinishes",
        ),
    ],
)
def test_kuberays_rayjob_rules_on_a_template(template: dict, expected: str) -> None:
    """ray_job_errors: "preRunningDeadlineSeconds" and "deletionStrategy" misspelled."""
    job = mljob()
    job["spec"]["steps"][1]["ray"]["template"] = template
    assert validate(job) == [f"spec.steps[1].ray.{expected}"]


def test_head_and_workers_with_the_same_python_are_fine() -> None:
    """ray_image_version_errors: `head_python is not None and python != ...` -> `or`."""

    def group(image: str) -> dict:
        return {"template": {"spec": {"containers": [{"name": "ray", "image": image}]}}}

    spec = {
        "rayVersion": "2.49.0",
        "headGroupSpec": group("rayproject/ray:2.49.0-py311"),
        "workerGroupSpecs": [{"groupName": "w", **group("rayproject/ray:2.49.0-py311")}],
    }
    assert list(ray_image_version_errors(spec, "spec")) == []
    spec["workerGroupSpecs"][0].update(group("rayproject/ray:2.49.0-py312"))
    assert list(ray_image_version_errors(spec, "spec")) == [
        "spec: the head's image rayproject/ray:2.49.0-py311 (py311) and the worker group w's "
        "rayproject/ray:2.49.0-py312 (py312) have different Python versions; use one Python "
        "everywhere"
    ]


def test_a_spark_steps_own_fields_reach_the_spark_application() -> None:
    """build_spark_application: image, hadoopConf, deps and executor read (or written) under
    wrong keys; _spark_pod: cores and serviceAccount; _metadata: the annotations."""
    step = spark_step("prepare")
    step["spark"].update(
        image="spark:x",
        hadoopConf={"fs.a": "b"},
        deps={"jars": ["a.jar"]},
        driver={"cores": 2},
        executor={"memory": "4g", "instances": 3},
        serviceAccount="spark-sa",
    )
    body = builders.build_step_child(mljob([step], annotations={"team": "ml"}), step, 1, 1)
    spec = body["spec"]
    assert (spec["image"], spec["hadoopConf"], spec["deps"]) == (
        "spark:x",
        {"fs.a": "b"},
        {"jars": ["a.jar"]},
    )
    pod = {"memory": "1g", "serviceAccount": "spark-sa", "annotations": {"team": "ml"}}
    assert spec["driver"] == {"cores": 2, **pod}
    assert spec["executor"] == {**pod, "cores": 1, "memory": "4g", "instances": 3}
    assert body["metadata"]["annotations"] == {"team": "ml"}


def test_paths_without_a_data_path_are_empty_and_a_root_keeps_its_last_letter() -> None:
    """io_env: `else ""` -> "XXXX"; `rstrip('/')` -> `rstrip('XX/XX')`."""
    assert builders.io_env(lambda r: "", 1, "train", {"prepare": 1}) == {
        "MLJOB_OUTPUT_PATH": "",
        "MLJOB_INPUT_PREPARE": "",
    }
    assert builders.io_env(lambda r: "/data/MAX", 1, "train", {}) == {
        "MLJOB_OUTPUT_PATH": "/data/MAX/train"
    }


def test_an_env_entry_without_a_value_is_empty() -> None:
    """env_list_to_dict: the value's default "" mutated."""
    assert builders.env_list_to_dict([{"name": "A"}, {"name": "B", "value": 2}]) == {
        "A": "",
        "B": "2",
    }


def test_a_rayjobs_cluster_pods_carry_the_run_label() -> None:
    """_pod_metadata: the run given to child_labels -> None."""
    step = ray_step("t")
    body = builders.build_step_child(mljob([step]), step, 1, 1)
    head = body["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["metadata"]
    assert head == {"labels": {"mljob.io/name": "churn", "mljob.io/run": "1", "mljob.io/step": "t"}}


def test_the_serve_config_lists_an_applications_fields_in_rays_order() -> None:
    """serve_config_yaml: `sort_keys=False` dropped (the keys sorted: import_path first)."""
    job = serve_mljob()
    text = builders.serve_config_yaml(job, 1, job["spec"]["steps"][2])
    assert text.splitlines()[:5] == [
        "applications:",
        "- name: serve",
        "  import_path: serve_model:app",
        "  route_prefix: /churn",
        "  runtime_env:",
    ]


# --- found by a third uniform sample (MUTANTS_SEED=20) -------------------------------------------
def test_a_step_that_is_not_a_mapping_does_not_hide_the_next_ones() -> None:
    """_check_steps: `continue` past a non-mapping step -> `break`."""
    assert validate(mljob(["x", spark_step("B")])) == [
        "spec.steps[0]: must be a mapping",
        "spec.steps[1].name: 'B' must be at most 30 lower-case alphanumerics or '-', starting "
        "and ending with an alphanumeric",
    ]


@pytest.mark.parametrize(
    ("engine", "fields", "expected"),
    [
        ("spark", {"driver": {"cores": 0}}, f"{SPARK}.driver.cores: must be >= 1, got 0"),
        (
            "ray",
            {"runtimeEnv": {"env_vars": {"A": 1}}},
            "spec.steps[1].ray.runtimeEnv.env_vars.A: must be a string (quote numbers and "
            "booleans)",
        ),
        (
            "ray",
            {"workers": {"replicas": 5, "maxReplicas": 4}},
            "spec.steps[1].ray.workers: need minReplicas <= replicas <= maxReplicas, got 5 <= 5 "
            "<= 4 (minReplicas and maxReplicas default to replicas; replicas is the starting "
            "size of elastic workers)",
        ),
    ],
)
def test_more_step_fields_named_exactly(engine: str, fields: dict, expected: str) -> None:
    """_check_spark: "cores" misspelled; _check_ray_step: the env_vars path -> None;
    _check_ray_cluster_fields: the replica bounds message's text."""
    job = mljob()
    job["spec"]["steps"][0 if engine == "spark" else 1][engine].update(fields)
    assert validate(job) == [expected]


def test_a_missing_spark_version_and_an_unknown_step_field_are_named_exactly() -> None:
    """_check_spark: the sparkVersion example -> None; _check_known: the list's separator."""
    job = mljob()
    del job["spec"]["steps"][0]["spark"]["sparkVersion"]
    assert validate(job) == [f'{SPARK}.sparkVersion: required (quoted, e.g. "4.0.1")']
    assert validate(mljob([spark_step("a", colour="red")])) == [
        "spec.steps[0].colour: unknown field (known: activeDeadlineSeconds, backoffSeconds, "
        "cache, cacheKey, dependsOn, maxBackoffSeconds, name, outputs, ray, retries, serve, "
        "spark, startDeadlineSeconds)"
    ]


def test_a_steps_active_deadline_is_a_wakeup() -> None:
    """_step_deadline_at: "activeDeadlineSeconds" misspelled (no requeue for it)."""
    world = World(mljob([spark_step("a", activeDeadlineSeconds=600)]))
    assert world.reconcile().requeue_after == 600.0


def test_the_pipeline_deadline_restarts_on_resume() -> None:
    """_pipeline_deadline_at: resumeTime dropped (the wakeup counted from the first start)."""
    world = World(mljob([spark_step("a")], activeDeadlineSeconds=600))
    world.reconcile()
    world.edit(suspend=True)
    world.reconcile()
    world.edit(suspend=False)
    assert world.reconcile(100).requeue_after == 600.0
    assert world.status["resumeTime"] == "2026-01-01T00:03:40Z"


def test_a_child_that_ended_while_suspended_loses_its_suspended_flag() -> None:
    """The flag goes with the move to Succeeded (steps' drops), so `_suspend_or_resume`'s own
    pop of it (mutated to pop(None) in the third sample) is an accepted equivalent."""
    world = World(mljob([spark_step("a"), spark_step("b", dependsOn=[])]))
    world.reconcile()
    world.edit(suspend=True)
    world.reconcile()
    world.finish("a")
    world.reconcile()
    flags = [(e["name"], e["phase"], e.get("childSuspended")) for e in world.status["steps"]]
    assert flags == [("a", "Succeeded", None), ("b", "Pending", True)]


def test_an_output_outside_the_steps_folder_is_named_exactly() -> None:
    """_check_cache_fields: the message's text."""
    assert validate(mljob([spark_step("a", cache=True, outputs=["/abs"])])) == [
        "spec.steps[0].outputs[0]: '/abs' must be a relative path under the step's output "
        "location (no leading '/', no '..', no empty part, at most 253 characters)"
    ]


def test_a_data_path_with_a_trailing_slash_gives_one_separator() -> None:
    """data_path: `root.rstrip('/')` -> `rstrip(None)`."""
    assert builders.data_path(mljob(dataPath="s3a://lake/x/"), 2) == "s3a://lake/x/churn/run-2"


def test_a_create_refused_in_a_new_run_leaves_the_skipped_step_fresh() -> None:
    """_undo_skipped_starts: the old status's run read under a misspelled key (the skipped step
    got the previous run's entry back: Succeeded, with run 1's child)."""
    world = World(mljob([spark_step("a"), spark_step("b", dependsOn=[])]))
    world.reconcile()
    world.finish("a")
    world.finish("b")
    world.reconcile()
    changed = copy.deepcopy(world.mljob["spec"]["steps"])
    changed[0]["spark"]["arguments"] = ["--v2"]
    world.edit(steps=changed)
    world.advance(60)
    result = plan(world.mljob, list(world.children.values()), world.now)
    _, skipped = world.apply_rejecting(result, 0)
    assert skipped == ["b"]
    entries = [(e["name"], e["phase"], e["attempts"], e["child"]) for e in world.status["steps"]]
    assert entries == [("a", "Failed", 1, "churn-a-r2"), ("b", "Pending", 0, "")]


def test_suspend_does_not_patch_a_shared_cluster_the_api_server_refused() -> None:
    """_suspend_or_resume_cluster: the "Rejected" state misspelled (a suspend patch sent to a
    cluster that was never created)."""
    world = World(shared_cluster_mljob(startPolicy="Eager"))
    world.advance(60)
    _, skipped = world.apply_rejecting(plan(world.mljob, [], world.now), 0)
    assert skipped == ["prepare"]
    assert (world.status["phase"], world.status["rayCluster"]) == (
        "Failed",
        {"name": "churn-r1-ray", "state": "Rejected"},
    )
    world.edit(suspend=True)
    assert world.reconcile().actions == []
    assert world.status["rayCluster"] == {"name": "churn-r1-ray", "state": "Rejected"}


def test_the_pipeline_deadline_no_longer_applies_once_the_run_failed() -> None:
    """_ended: `failed or all(... Succeeded)` -> `and` (never true: the pipeline deadline then
    killed the failed run's live branch with a StepFailed Event)."""
    world = World(
        mljob([spark_step("a"), spark_step("b", dependsOn=[])], activeDeadlineSeconds=600)
    )
    world.reconcile()
    world.finish("a", ok=False)
    world.reconcile()
    assert world.status["phase"] == "Failed"
    result = world.reconcile(700)
    assert (result.actions, result.events) == ([], [])
    assert (world.step("b")["phase"], world.step("b")["child"]) == ("Pending", "churn-b-r1")
