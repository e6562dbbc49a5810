"""The planner's summary of a pipeline in MLJob.status, exactly: phase, message, currentStep,
progress, times and the four conditions of each verdict, and the invalid-spec status."""

from __future__ import annotations

import copy
import datetime as dt
from datetime import timedelta

from planner_world import T0, World

from mljob import planner
from mljob.planner import plan, spec_hash
from mljob.testing.corpus import mljob, ray_step, spark_step
from mljob.validation import validate

CONDITION_TYPES = ["Ready", "Reconciling", "Stalled", "Succeeded"]


def stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(status: dict) -> dict:
    keys = ("phase", "message", "currentStep", "progress", "startTime", "completionTime")
    return {k: status[k] for k in keys if k in status}


def conditions(status: dict) -> list[tuple[str, str, str, str, int, str]]:
    return [
        (
            x["type"],
            x["status"],
            x["reason"],
            x["message"],
            x["observedGeneration"],
            x["lastTransitionTime"],
        )
        for x in status["conditions"]
    ]


def test_a_running_pipeline_names_its_active_steps() -> None:
    world = World(mljob([spark_step("load-raw"), spark_step("load-ref", dependsOn=[])]))
    world.reconcile()
    message = "running step(s) load-raw, load-ref"
    assert summary(world.status) == {
        "phase": "Running",
        "message": message,
        "currentStep": "load-raw,load-ref",
        "progress": "0/2",
        "startTime": stamp(60),
    }
    table = [
        ("False", "Running"),
        ("True", "Running"),
        ("False", "Running"),
        ("Unknown", "Running"),
    ]
    assert conditions(world.status) == [
        (kind, value, reason, message, 1, stamp(60))
        for kind, (value, reason) in zip(CONDITION_TYPES, table, strict=True)
    ]


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    world = World(mljob())
    world.reconcile()
    world.finish("prepare")
    world.reconcile()  # train starts: still Running, the same condition statuses
    assert [x[5] for x in conditions(world.status)] == [stamp(60)] * 4
    world.finish("train")
    world.reconcile()  # Succeeded: Ready, Reconciling and Succeeded change, Stalled does not
    assert [x[5] for x in conditions(world.status)] == [
        stamp(180),
        stamp(180),
        stamp(60),
        stamp(180),
    ]


def test_a_suspended_pipeline_says_why() -> None:
    world = World(mljob())
    world.reconcile()
    world.edit(suspend=True)
    world.reconcile()
    assert summary(world.status) == {
        "phase": "Suspended",
        "message": "spec.suspend is true",
        "currentStep": "prepare",
        "progress": "0/2",
        "startTime": stamp(60),
    }
    assert {x[2] for x in conditions(world.status)} == {"Suspended"}
    assert [x[4] for x in conditions(world.status)] == [2] * 4  # the edited generation


def test_a_succeeded_pipeline_counts_its_steps_and_keeps_its_completion_time() -> None:
    world = World(mljob())
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    world.finish("train")
    world.reconcile()
    done = {
        "phase": "Succeeded",
        "message": "all 2 steps succeeded",
        "currentStep": "",
        "progress": "2/2",
        "startTime": stamp(60),
        "completionTime": stamp(180),
    }
    assert summary(world.status) == done
    assert {x[2] for x in conditions(world.status)} == {"Succeeded"}
    world.reconcile()
    assert summary(world.status) == done  # an hour later: the same times


def test_a_failed_step_names_the_pipelines_failure() -> None:
    world = World(mljob([spark_step("load-raw-data"), ray_step("train")]))
    world.reconcile()
    world.finish("load-raw-data", ok=False)
    world.reconcile()
    message = "step load-raw-data (SparkApplication churn-load-raw-data-r1) failed: driver exited 1"
    assert summary(world.status) == {
        "phase": "Failed",
        "message": message,
        "currentStep": "load-raw-data",
        "progress": "0/2",
        "startTime": stamp(60),
        "completionTime": stamp(120),
    }
    reason = "StepLoadRawDataSparkApplicationFailed"
    assert {(x[2], x[3]) for x in conditions(world.status)} == {(reason, message)}


def entry(name: str, phase: str, state: str = "", message: str = "", attempts: int = 1) -> dict:
    kind, child = "RayJob", f"churn-{name}-r1"
    return {
        "name": name,
        "kind": kind,
        "child": child,
        "phase": phase,
        "childState": state,
        "attempts": attempts,
        "message": message,
    }


def test_of_several_failed_steps_the_pipeline_deadline_is_the_reason() -> None:
    entries = [
        entry("a", "Failed", "FAILED", "boom"),
        entry("b", "Failed", "PipelineDeadlineExceeded", "spec.activeDeadlineSeconds passed"),
    ]
    verdict = planner._verdict(entries, suspended=False)
    assert verdict == (
        "Failed",
        "ActiveDeadlineExceeded",
        "step b (RayJob churn-b-r1) failed: spec.activeDeadlineSeconds passed",
        "a,b",
    )


def test_a_failed_step_without_a_message_says_so() -> None:
    verdict = planner._verdict([entry("a", "Failed", "FAILED")], suspended=False)
    assert verdict.message == "step a (RayJob churn-a-r1) failed: no message"


def test_a_pipeline_with_nothing_started_is_pending() -> None:
    entries = [entry("a", "Pending", attempts=0), entry("b", "Pending", attempts=0)]
    assert planner._verdict(entries, suspended=False) == (
        "Pending",
        "Pending",
        "waiting to start",
        "",
    )


def test_an_invalid_spec_fails_the_pipeline_and_keeps_the_steps_record() -> None:
    world = World(mljob())
    world.reconcile()
    world.finish("prepare")
    world.reconcile()
    steps_before = copy.deepcopy(world.status["steps"])
    world.mljob["spec"]["steps"][1]["dependsOn"] = ["nowhere"]
    world.mljob["spec"]["steps"][1]["ray"].pop("entrypoint")
    world.mljob["metadata"]["generation"] += 1
    errors = validate(world.mljob)
    assert len(errors) >= 2
    world.reconcile()
    message = "invalid spec: " + "; ".join(errors)
    assert summary(world.status) == {
        "phase": "Failed",
        "message": message,
        "currentStep": "",
        "progress": "1/2",
        "startTime": stamp(60),
        "completionTime": stamp(180),
    }
    assert world.status["steps"] == steps_before and world.status["observedGeneration"] == 2
    assert {(x[2], x[3], x[4]) for x in conditions(world.status)} == {("InvalidSpec", message, 2)}


def test_a_status_message_is_clipped_to_4096_characters() -> None:
    assert planner._clip("x" * 4096) == "x" * 4096
    assert planner._clip("x" * 4097) == "x" * 4093 + "..."


# --- the spec hash -------------------------------------------------------------------------------
def test_the_spec_hash_is_stable_across_operator_versions() -> None:
    """status.specHash of every existing MLJob: a different hash for the same spec after an
    upgrade would start a new run of every pipeline."""
    spec = {
        "image": "registry.example.com/churn:1.4",
        "steps": [
            {"name": "prepare", "spark": {"mainApplicationFile": "local:///app/etl.py"}},
            {"name": "train", "ray": {"entrypoint": "python /app/train.py"}},
        ],
        "suspend": False,  # run control: not part of the hash
    }
    assert spec_hash(spec) == "b3c9769794fd62ee"


def test_the_spec_hash_ignores_key_order_and_takes_yaml_dates() -> None:
    spec = mljob()["spec"]
    reordered = dict(reversed(list(spec.items())))
    assert spec_hash(reordered) == spec_hash(spec)
    dated = {
        **spec,
        "steps": [{**spec["steps"][0], "env": [{"name": "D", "value": dt.date(2026, 1, 1)}]}],
    }
    assert spec_hash(dated) != spec_hash(spec)  # YAML reads an unquoted 2026-01-01 as a date


def test_a_status_patch_is_independent_of_the_new_status() -> None:
    old: dict = {"runs": []}
    new = {"runs": [{"run": 1}]}
    patch = planner.status_patch(old, new)
    new["runs"][0]["run"] = 2
    assert patch == {"runs": [{"run": 1}]}


def test_replanning_at_the_same_time_gives_the_same_status() -> None:
    world = World(mljob())
    world.reconcile()
    again = plan(world.mljob, list(world.children.values()), world.now)
    assert again.status == world.status and again.events == []
