"""Which status changes and Events are worth a write of their own (issue 14, writes per step).

- `planner.progress_only(old, new)`: a live child's progress inside its step (Pending <->
  Running, childState, message, details) may wait for the next write; anything else may not.
- `planner.posted_events(events)`: the happy path's StepSucceeded / StepStarted /
  PipelineRunning of one plan are posted as one Event; every other Event as it is.
- `expectations.Memory.defer_status`: how long a progress-only write is held back.

The pipeline tests drive the pure planner through a 3-step pipeline with every intermediate
child state (planner_world.World, as the glue applies plans) and count the writes the glue
would send with these decisions."""

from __future__ import annotations

import copy

import pytest
from planner_world import World

from mljob import constants as c
from mljob import expectations as ex
from mljob.planner import Event, Plan, posted_events, progress_only
from mljob.testing.corpus import mljob, ray_step, spark_step

SPARK_STATES = [
    {"applicationState": {"state": s}, "driverInfo": {}} for s in ("SUBMITTED", "RUNNING")
]
RAY_STATES = [
    {"jobDeploymentStatus": "Initializing"},
    {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
]


class HoldingWorld(World):
    """A World whose glue holds back progress-only status writes, like handlers._write_status
    with an unbounded debounce: the status is written only when something else changed."""

    def __init__(self, body: dict) -> None:
        super().__init__(body)
        self.writes: list[str] = []  # "create", "patch", "event" in the order sent
        self.hold = True  # False: the glue's flush, when the debounce is over

    def _write_status(self, result: Plan) -> None:
        old = self.mljob.get("status") or {}
        quiet = not result.actions and not result.events
        if self.hold and quiet and progress_only(old, result.status):
            return
        self.writes += ["create"] * sum(a.__class__.__name__ == "Create" for a in result.actions)
        if old != result.status:
            self.writes.append("patch")
        self.writes += ["event"] * len(posted_events(result.events))
        super()._write_status(result)


def three_steps() -> dict:
    return mljob([spark_step("extract"), ray_step("train"), spark_step("report")])


def run_through(world: World) -> list[Plan]:
    """Start, then each step's child through its intermediate states to success; a reconcile
    after every child change, as the child events trigger. The plans, in order."""
    plans = [world.reconcile(1)]
    for name in ("extract", "train", "report"):
        entry = world.step(name)
        for state in SPARK_STATES if entry["kind"] == c.SPARK_KIND else RAY_STATES:
            world.set_status(entry["kind"], entry["child"], copy.deepcopy(state))
            plans.append(world.reconcile(1))
        world.finish(name)
        plans.append(world.reconcile(1))
    return plans


# --- progress_only --------------------------------------------------------------------------------
def test_each_intermediate_child_state_is_progress_only_and_each_transition_is_not() -> None:
    world = World(three_steps())  # for its status only: the plans come from run_through's
    flags = []
    for result in run_through(World(three_steps())):
        old = world.mljob.get("status") or {}
        flags.append(progress_only(old, result.status))
        world.mljob["status"] = result.status
    # start; extract SUBMITTED, RUNNING, done; train Initializing, Running, done; report ...
    assert flags == [False, True, True, False, True, True, False, True, True, False]


def test_nothing_changed_is_not_progress_only() -> None:
    world = World(three_steps())
    world.reconcile(1)
    assert not progress_only(world.status, copy.deepcopy(world.status))


def step_entry(**fields: object) -> dict:
    entry = {"name": "train", "kind": "RayJob", "child": "churn-train-r1", "attempts": 1}
    return {**entry, "phase": "Pending", "childState": "", "message": "", **fields}


def status(*entries: dict, **fields: object) -> dict:
    return {
        "phase": "Running",
        "message": "running step(s) train",
        "steps": list(entries),
        **fields,
    }


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"childState": "SUBMITTED", "message": "submitted"}),
        ({}, {"phase": "Running", "childState": "RUNNING"}),
        ({"phase": "Running"}, {"phase": "Pending", "childState": "PENDING_RERUN"}),
        ({}, {"details": "the child's longer text"}),
        ({"details": "old text"}, {}),
    ],
)
def test_a_live_childs_progress_is_progress_only(before: dict, after: dict) -> None:
    assert progress_only(status(step_entry(**before)), status(step_entry(**after)))


@pytest.mark.parametrize(
    "after",
    [
        {"phase": "Succeeded", "childState": "SUCCEEDED"},  # a step's end
        {"phase": "Failed"},
        {"phase": "Retrying", "nextAttemptTime": "2026-01-01T00:00:10Z"},
        {"childSuspended": True},  # suspend is a user's act
        {"attempts": 2, "child": "churn-train-r1-a2"},  # a new attempt
        {"startTime": "2026-01-01T00:00:00Z"},
    ],
)
def test_any_other_step_change_is_written_at_once(after: dict) -> None:
    assert not progress_only(status(step_entry()), status(step_entry(**after)))


@pytest.mark.parametrize(
    "top",
    [
        {"phase": "Succeeded"},
        {"message": "running step(s) train, report"},
        {"currentStep": "report"},
        {"rayCluster": {"name": "churn-r1", "state": "ready"}},
    ],
)
def test_a_change_outside_steps_is_written_at_once(top: dict) -> None:
    old = status(step_entry())
    new = status(step_entry(childState="RUNNING", phase="Running"), **top)
    assert not progress_only(old, new)


def test_a_step_added_or_removed_is_written_at_once() -> None:
    other = step_entry(name="report", kind="SparkApplication", child="")
    assert not progress_only(status(step_entry()), status(step_entry(), other))
    assert not progress_only(status(step_entry(), other), status(step_entry()))


# --- posted_events --------------------------------------------------------------------------------
STARTED = Event("Normal", c.EVENT_STEP_STARTED, "step train: created RayJob churn-train-r1")
SUCCEEDED = Event("Normal", c.EVENT_STEP_SUCCEEDED, "step extract: SparkApplication x done")
RUNNING = Event("Normal", "PipelineRunning", "running step(s) extract")
DONE = Event("Normal", "PipelineSucceeded", "all 3 steps succeeded")


def test_a_step_transition_is_one_event_named_by_the_step_that_succeeded() -> None:
    assert posted_events([SUCCEEDED, STARTED]) == [
        Event("Normal", "StepSucceeded", f"{SUCCEEDED.message}\n{STARTED.message}")
    ]


def test_a_pipelines_start_is_one_step_started_event() -> None:
    assert posted_events([STARTED, RUNNING]) == [
        Event("Normal", "StepStarted", f"{STARTED.message}\n{RUNNING.message}")
    ]


def test_the_pipelines_end_and_anything_unusual_keep_their_own_events() -> None:
    failed = Event("Warning", c.EVENT_STEP_FAILED, "step train: RayJob x: OOM")
    cluster = Event("Normal", c.EVENT_RAY_CLUSTER_CREATED, "RayCluster churn-r1")
    run = Event("Normal", c.EVENT_RUN_STARTED, "run 2: the spec changed")
    assert posted_events([SUCCEEDED, DONE]) == [SUCCEEDED, DONE]
    assert posted_events([run, STARTED, cluster, RUNNING, failed]) == [
        run,
        Event("Normal", "StepStarted", f"{STARTED.message}\n{RUNNING.message}"),
        cluster,
        failed,
    ]


def test_a_single_or_no_progress_event_is_posted_as_it_is() -> None:
    assert posted_events([]) == []
    assert posted_events([STARTED]) == [STARTED]


def test_a_folded_message_is_cut_to_what_an_event_holds() -> None:
    many = [Event("Normal", "StepStarted", "x" * 600), Event("Normal", "StepSucceeded", "y" * 600)]
    (event,) = posted_events(many)
    assert event.reason == "StepSucceeded" and len(event.message) <= c.MAX_EVENT_MESSAGE


# --- the glue's decisions over a whole pipeline ---------------------------------------------------
def test_a_three_step_pipeline_costs_four_writes_per_step_when_progress_is_held() -> None:
    world = HoldingWorld(three_steps())
    run_through(world)
    assert world.status["phase"] == c.SUCCEEDED
    # start: create + patch + StepStarted(+PipelineRunning); each transition: create + patch +
    # StepSucceeded(+StepStarted); the end: patch + StepSucceeded + PipelineSucceeded.
    assert world.writes.count("create") == 3
    assert world.writes.count("patch") == 4
    assert world.writes.count("event") == 5
    assert len(world.writes) / 3 == 4


def test_holding_progress_back_ends_in_the_same_status_and_events_as_writing_it() -> None:
    held, written = HoldingWorld(three_steps()), World(three_steps())
    run_through(held)
    run_through(written)
    assert held.status == written.status
    assert held.events == written.events


def test_a_held_state_is_what_the_next_plan_plans_again() -> None:
    """The planner re-derives a held child state from the child: the status written by the
    flush (the glue's timer) is the one the held plan had."""
    world = HoldingWorld(three_steps())
    world.reconcile(1)
    entry = world.step("extract")
    world.set_status(entry["kind"], entry["child"], copy.deepcopy(SPARK_STATES[1]))
    held = world.reconcile(0)
    assert world.step("extract")["phase"] == c.PENDING  # not written
    world.hold = False
    flushed = world.reconcile(2)  # the flush, the debounce later, writes what it plans now
    assert flushed.status == held.status
    assert world.step("extract")["phase"] == c.RUNNING


# --- Memory.defer_status --------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


KEY = ("team-a", "churn")


def test_progress_is_held_for_the_debounce_counted_from_the_first_held_change() -> None:
    clock = Clock()
    memory = ex.Memory(clock=clock, debounce=2.0)
    assert memory.defer_status(KEY, True) == 2.0
    clock.now += 1.5
    assert memory.defer_status(KEY, True) == pytest.approx(0.5)  # not pushed back
    clock.now += 0.5
    assert memory.defer_status(KEY, True) is None  # due: written now
    assert memory.defer_status(KEY, True) == 2.0  # the next change starts a new window


def test_anything_but_progress_is_written_at_once_and_ends_the_hold() -> None:
    clock = Clock()
    memory = ex.Memory(clock=clock, debounce=2.0)
    assert memory.defer_status(KEY, True) == 2.0
    clock.now += 1.0
    assert memory.defer_status(KEY, False) is None
    assert memory.defer_status(KEY, True) == 2.0  # a fresh window after that write


def test_no_debounce_holds_nothing() -> None:
    memory = ex.Memory(clock=Clock(), debounce=0)
    assert memory.defer_status(KEY, True) is None


def test_a_deleted_mljob_forgets_its_hold() -> None:
    clock = Clock()
    memory = ex.Memory(clock=clock, debounce=2.0)
    memory.defer_status(KEY, True)
    clock.now += 1.9
    memory.forget(KEY)
    assert memory.defer_status(KEY, True) == 2.0
