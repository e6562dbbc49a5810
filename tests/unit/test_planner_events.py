"""The planner's Kubernetes Events, exactly: type, reason and text of each transition.

`diff_events(old, new)` is pure: two statuses in, the Events a person sees out. These tests
state every Event the operator emits with its literal type, reason and message (the reasons are
the API users filter on: `kubectl get events --field-selector reason=StepFailed`)."""

from __future__ import annotations

from typing import Any

import pytest

from mljob.planner import Event, diff_events

Obj = dict[str, Any]


def step(name: str = "train", **fields: Any) -> Obj:
    entry: Obj = {
        "name": name,
        "kind": "RayJob",
        "child": f"churn-{name}-r1",
        "phase": "Running",
        "childState": "RUNNING",
        "attempts": 1,
        "message": "",
    }
    return {**entry, **fields}


def status(*steps: Obj, **fields: Any) -> Obj:
    return {"run": 1, "phase": "Running", "message": "", "steps": list(steps), **fields}


# --- steps ---------------------------------------------------------------------------------------
def test_a_new_attempt_is_a_normal_step_started_naming_the_child() -> None:
    old = status(step(attempts=0, child="", phase="Pending"))
    new = status(step())
    assert diff_events(old, new) == [
        Event("Normal", "StepStarted", "step train: created RayJob churn-train-r1")
    ]


def test_a_first_step_seen_for_the_first_time_is_started() -> None:
    assert diff_events(status(), status(step(name="prep", kind="SparkApplication"))) == [
        Event("Normal", "StepStarted", "step prep: created SparkApplication churn-prep-r1")
    ]


def test_nothing_changed_no_event() -> None:
    same = status(step(), rayCluster={"name": "churn-r1", "state": "ready"})
    assert diff_events(same, dict(same)) == []


def test_a_succeeded_step_is_a_normal_step_succeeded() -> None:
    new = status(step(phase="Succeeded", childState="SUCCEEDED"))
    assert diff_events(status(step()), new) == [
        Event("Normal", "StepSucceeded", "step train: RayJob churn-train-r1 done")
    ]


def test_a_cached_step_says_which_run_it_reused() -> None:
    cached = step(phase="Succeeded", attempts=0, child="", cachedFromRun=1)
    cached["message"] = "outputs of run 1 reused"
    new = status(cached, run=2)
    old = status(step(phase="Pending", attempts=0, child=""), run=2)
    assert diff_events(old, new) == [
        Event("Normal", "StepCached", "step train: outputs of run 1 reused")
    ]


@pytest.mark.parametrize(
    ("phase", "reason"), [("Failed", "StepFailed"), ("Retrying", "StepRetrying")]
)
def test_a_failed_attempt_is_a_warning_with_the_childs_message(phase: str, reason: str) -> None:
    new = status(step(phase=phase, childState="FAILED", message="driver exited 1"))
    assert diff_events(status(step()), new) == [
        Event("Warning", reason, "step train: RayJob churn-train-r1: driver exited 1")
    ]


def test_a_running_step_that_stays_running_is_quiet() -> None:
    assert diff_events(status(step()), status(step(message="still going"))) == []


# The failure's details (the end of the child's own log) follow the one-line message, as many
# whole last lines as fit in the Event's 1024 characters with the newline between them.
LOG = [f"line {i:03}" for i in range(200)]  # 8 characters, 9 with its newline


def failed_with_details(head_length: int) -> tuple[Obj, str]:
    prefix = "step train: RayJob churn-train-r1: "
    message = "x" * (head_length - len(prefix))
    entry = step(phase="Failed", childState="FAILED", message=message, details="\n".join(LOG))
    return entry, prefix + message


@pytest.mark.parametrize(
    ("head_length", "lines_kept"),
    [
        (1024 - 100 * 9, 100),  # exactly 100 lines fit: the Event is 1024 characters long
        (1024 - 100 * 9 + 1, 99),  # one character short of the 100th line: 99 lines
    ],
)
def test_a_failure_event_ends_with_the_last_whole_lines_of_the_details(
    head_length: int, lines_kept: int
) -> None:
    entry, head = failed_with_details(head_length)
    (event,) = diff_events(status(step()), status(entry))
    assert event == Event("Warning", "StepFailed", head + "\n" + "\n".join(LOG[-lines_kept:]))
    assert len(event.message) <= 1024


def test_a_failure_message_too_long_for_an_event_is_clipped_with_an_ellipsis() -> None:
    entry = step(phase="Failed", childState="FAILED", message="y" * 2000)
    (event,) = diff_events(status(step()), status(entry))
    head = "step train: RayJob churn-train-r1: "
    assert event == Event("Warning", "StepFailed", (head + "y" * 2000)[:1021] + "...")


# --- runs, the shared cluster, TTL ---------------------------------------------------------------
def test_a_new_run_starts_its_steps_afresh() -> None:
    """A new run's steps are compared with nothing: the same attempt count is a new child."""
    old = status(step(phase="Succeeded", childState="SUCCEEDED"), phase="Succeeded")
    new = status(step(child="churn-train-r2"), run=2, phase="Running", message="running")
    assert diff_events(old, new) == [
        Event("Normal", "RunStarted", "run 2: the spec changed"),
        Event("Normal", "StepStarted", "step train: created RayJob churn-train-r2"),
        Event("Normal", "PipelineRunning", "running"),
    ]


def test_a_status_without_a_run_yet_starts_none() -> None:
    assert diff_events({}, status(run=1, phase="Pending")) == []


def test_the_shared_cluster_is_announced_once_by_name() -> None:
    cluster = {"name": "churn-r1", "state": ""}
    created = status(rayCluster=cluster)
    assert diff_events(status(), created) == [
        Event("Normal", "RayClusterCreated", "RayCluster churn-r1")
    ]
    assert diff_events(created, status(rayCluster={**cluster, "state": "ready"})) == []
    assert diff_events(created, status()) == []  # deleted: no "created" Event


def test_a_new_runs_cluster_is_announced() -> None:
    old = status(rayCluster={"name": "churn-r1", "state": "ready"})
    new = status(rayCluster={"name": "churn-r2", "state": ""})
    assert diff_events(old, new) == [Event("Normal", "RayClusterCreated", "RayCluster churn-r2")]


def test_ttl_deleting_the_children_is_announced_once() -> None:
    ended = status(phase="Succeeded")
    deleted = status(phase="Succeeded", childrenDeletedTime="2026-12-06T00:00:00Z")
    assert diff_events(ended, deleted) == [
        Event("Normal", "ChildrenDeleted", "ttlSecondsAfterFinished passed: deleted the children")
    ]
    assert diff_events(deleted, dict(deleted)) == []


# --- the pipeline's phase ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phase", "expected_type", "reason"),
    [
        ("Running", "Normal", "PipelineRunning"),
        ("Succeeded", "Normal", "PipelineSucceeded"),
        ("Suspended", "Normal", "PipelineSuspended"),
        ("Failed", "Warning", "PipelineFailed"),
    ],
)
def test_a_pipeline_phase_change_carries_the_status_message(
    phase: str, expected_type: str, reason: str
) -> None:
    new = status(phase=phase, message=f"now {phase}")
    assert diff_events(status(phase="Pending"), new) == [
        Event(expected_type, reason, f"now {phase}")
    ]


def test_a_phase_without_a_message_gives_an_empty_text() -> None:
    new: Obj = {"run": 1, "phase": "Failed"}
    assert diff_events({"run": 1, "phase": "Running"}, new) == [
        Event("Warning", "PipelineFailed", "")
    ]


def test_pending_is_no_event() -> None:
    assert diff_events(status(phase="Running"), status(phase="Pending")) == []
