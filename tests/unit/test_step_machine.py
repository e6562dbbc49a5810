"""The step state machine (mljob.steps): the table as data, its functions, and a property test
that drives random pipelines and child outcomes through plan() and checks that every step phase
change between two consecutive statuses of a run is a path through steps.TRANSITIONS, spelled
out by the transition calls that plan made (no phase is written by hand), and that Succeeded
and Failed stay so within a run."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline_gen import pipelines
from planner_world import World

from mljob import constants as c
from mljob import steps
from mljob.planner import Create, plan
from mljob.states import ChildState, child_state

NOW = datetime(2026, 1, 1, tzinfo=UTC)


# --- the table ---------------------------------------------------------------------------------
def test_the_table_covers_the_step_phases_and_events():
    assert {f for f, _ in steps.TRANSITIONS} | set(steps.TRANSITIONS.values()) <= set(c.STEP_PHASES)
    assert {e for _, e in steps.TRANSITIONS} == set(steps.EVENTS)
    assert not {f for f, _ in steps.TRANSITIONS} & c.TERMINAL_PHASES  # nothing leaves them
    assert {(f, to) for (f, _), to in steps.TRANSITIONS.items()} == steps.ALLOWED


def test_the_table_in_the_docs_is_the_data():
    """Both tables (steps.py's docstring, docs/lifecycle.md) say what TRANSITIONS says."""
    doc = (Path(__file__).parents[2] / "docs" / "lifecycle.md").read_text()
    for text in (steps.__doc__ or "", doc):
        rows = [
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in steps.EVENTS
        ]
        header = next(
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines()
            if line.startswith("| event")
        )
        table = {
            (phase, row[0]): cell
            for row in rows
            for phase, cell in zip(header[1:], row[1:], strict=True)
            if cell != "-"
        }
        assert table == steps.TRANSITIONS


def _entry(phase: str, attempts: int = 1, **extra) -> dict:
    entry = steps.new_entry("train", c.SPARK_KIND, None)
    entry.update(phase=phase, attempts=attempts, child="j-train-r1" if attempts else "", **extra)
    return entry


@pytest.mark.parametrize("phase", sorted(c.TERMINAL_PHASES))
def test_terminal_phases_take_no_event(phase):
    entry = _entry(phase)
    with pytest.raises(steps.IllegalTransition):
        steps.begin_attempt(entry, "x", NOW)
    with pytest.raises(steps.IllegalTransition):
        steps.observe(entry, ChildState(c.RUNNING, "RUNNING"), NOW)
    with pytest.raises(steps.IllegalTransition):
        steps.fail_attempt(entry, "FAILED", "boom", allowed=3, backoff=1, now=NOW)
    with pytest.raises(steps.IllegalTransition):
        steps.cancel(entry, c.CHILD_STATE_CANCELLED, "x", NOW)
    with pytest.raises(steps.IllegalTransition):
        steps.reject(entry, "x", NOW)
    assert entry == _entry(phase)


def test_start_only_before_the_first_attempt_or_from_retrying():
    with pytest.raises(steps.IllegalTransition):
        steps.begin_attempt(_entry(c.PENDING, attempts=1), "again", NOW)  # a live child
    with pytest.raises(steps.IllegalTransition):
        steps.begin_attempt(_entry(c.RUNNING), "again", NOW)
    entry = _entry(c.RETRYING, nextAttemptTime="t", details="old trace", childState="FAILED")
    steps.begin_attempt(entry, "j-train-r1-a2", NOW)
    assert entry["phase"] == c.PENDING and entry["attempts"] == 2
    assert entry["child"] == "j-train-r1-a2" and entry["childState"] == ""
    assert not {"nextAttemptTime", "details", "completionTime"} & set(entry)


def test_a_child_is_observed_only_while_it_lives():
    with pytest.raises(steps.IllegalTransition):
        steps.observe(_entry(c.PENDING, attempts=0), ChildState(c.RUNNING, "RUNNING"), NOW)
    with pytest.raises(steps.IllegalTransition):
        steps.observe(_entry(c.RETRYING), ChildState(c.RUNNING, "RUNNING"), NOW)
    with pytest.raises(steps.IllegalTransition):  # a failure is fail_attempt's
        steps.observe(_entry(c.RUNNING), ChildState(c.FAILED, "FAILED"), NOW)


def test_each_phase_drops_what_it_must_not_carry():
    entry = _entry(c.RUNNING, childSuspended=True)
    steps.fail_attempt(entry, "FAILED", "boom", allowed=2, backoff=30, now=NOW)
    assert entry["phase"] == c.RETRYING and entry["nextAttemptTime"] == "2026-01-01T00:00:30Z"
    assert "childSuspended" not in entry and "completionTime" not in entry
    retrying = copy.deepcopy(entry)
    steps.cancel(entry, c.CHILD_STATE_PIPELINE_DEADLINE, "deadline", NOW)
    assert entry["phase"] == c.FAILED and entry["completionTime"] == "2026-01-01T00:00:00Z"
    assert "nextAttemptTime" not in entry
    steps.reject(retrying, "refused", NOW)  # a Ray step whose shared RayCluster was refused
    assert retrying["phase"] == c.FAILED and "nextAttemptTime" not in retrying
    assert retrying["childState"] == c.CHILD_STATE_CREATE_REJECTED
    done = _entry(c.RUNNING, childSuspended=True)
    steps.observe(done, ChildState(c.SUCCEEDED, "COMPLETED"), NOW)
    assert done["phase"] == c.SUCCEEDED and "childSuspended" not in done
    assert done["completionTime"] == "2026-01-01T00:00:00Z"
    pending = _entry(c.RUNNING, childSuspended=True)
    steps.observe(pending, ChildState(c.PENDING, "SUSPENDED"), NOW)
    assert pending["phase"] == c.PENDING and pending["childSuspended"] is True


def test_the_last_attempt_fails_the_step():
    entry = _entry(c.PENDING, attempts=2)
    steps.fail_attempt(entry, "Deleted", "gone", allowed=2, backoff=10, now=NOW)
    assert entry["phase"] == c.FAILED and entry["message"] == "attempt 2 of 2 failed: gone"
    assert entry["failures"][-1]["attempt"] == 2 and "nextAttemptTime" not in entry


def test_a_single_attempt_fails_with_the_childs_own_message():
    entry = _entry(c.RUNNING)
    steps.fail_attempt(entry, "FAILED", "driver OOM", allowed=1, backoff=10, now=NOW)
    assert entry["message"] == "driver OOM"  # no "attempt 1 of 1" for a step without retries
    assert entry["completionTime"] == "2026-01-01T00:00:00Z"
    assert entry["failures"] == [
        {
            "attempt": 1,
            "child": "j-train-r1",
            "message": "driver OOM",
            "time": "2026-01-01T00:00:00Z",
        }
    ]


def test_a_failure_without_a_message_says_so():
    entry = _entry(c.RUNNING)
    steps.fail_attempt(entry, "FAILED", "", allowed=2, backoff=10, now=NOW)
    assert entry["failures"][-1]["message"] == "no message"
    assert entry["message"] == (
        "attempt 1 of 2 failed: no message; next attempt at 2026-01-01T00:00:10Z"
    )
    assert entry["childState"] == "FAILED"


def test_a_new_attempt_clears_the_previous_ones_text():
    entry = _entry(c.RETRYING, message="attempt 1 of 2 failed: boom", childState="FAILED")
    steps.begin_attempt(entry, "j-train-r1-a2", NOW)
    assert entry["message"] == "" and entry["startTime"] == "2026-01-01T00:00:00Z"


def test_reject_ends_the_step_at_that_time():
    entry = _entry(c.PENDING, attempts=0)
    steps.reject(entry, "refused", NOW)
    assert entry["completionTime"] == "2026-01-01T00:00:00Z" and entry["message"] == "refused"


def test_details_follow_the_childs_longer_text():
    entry = _entry(c.RUNNING)
    steps.observe(entry, ChildState(c.RUNNING, "RUNNING", "short", "the long text"), NOW)
    assert entry["details"] == "the long text"
    steps.observe(entry, ChildState(c.RUNNING, "RUNNING", "short"), NOW)
    assert "details" not in entry  # nothing longer any more: no stale excerpt
    steps.mirror_failure(entry, ChildState(c.FAILED, "FAILED", "oom", "a stack trace"))
    assert entry["details"] == "a stack trace"


def test_new_entry_copies_the_previous_entry_deeply():
    previous = _entry(c.RETRYING, failures=[{"attempt": 1}])
    entry = steps.new_entry("train", c.SPARK_KIND, previous)
    entry["failures"].append({"attempt": 2})
    assert previous["failures"] == [{"attempt": 1}]


def test_an_entry_without_attempts_has_no_live_child():
    assert not steps.has_live_child({"name": "x", "phase": c.PENDING})


def test_illegal_transitions_say_which_step_and_why():
    with pytest.raises(steps.IllegalTransition, match="step train: start while Running"):
        steps.begin_attempt(_entry(c.RUNNING), "x", NOW)
    with pytest.raises(steps.IllegalTransition, match="step train: observe a child Failed"):
        steps.observe(_entry(c.RUNNING), ChildState(c.FAILED, "FAILED"), NOW)
    with pytest.raises(steps.IllegalTransition, match="step train: no live child while Retrying"):
        steps.mirror_failure(_entry(c.RETRYING), ChildState(c.FAILED, "FAILED"))
    with pytest.raises(steps.IllegalTransition, match="step train: no cancel from Succeeded"):
        steps.cancel(_entry(c.SUCCEEDED), c.CHILD_STATE_CANCELLED, "x", NOW)


def test_timestamps_are_utc_whatever_the_machines_time_zone(monkeypatch):
    import time
    from datetime import timedelta, timezone

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        paris = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
        assert steps.timestamp(paris) == "2026-01-01T00:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()


# --- the property test -------------------------------------------------------------------------
class Move(NamedTuple):
    step: str
    before: str
    event: str
    after: str


def _tracing(trace: list[Move]):
    """Record every phase change of steps._move, the one place a step's phase changes."""
    original = steps._move

    def move(entry, event, drops=None):
        before = entry["phase"]
        original(entry, event, drops)
        trace.append(Move(entry["name"], before, event, entry["phase"]))

    return mock.patch.object(steps, "_move", move)


SPARK_STATES = ["", "SUBMITTED", "RUNNING", "SUSPENDED", "UNKNOWN", "COMPLETED", "FAILED"]
RAY_STATES = [
    ("", ""),
    ("Initializing", ""),
    ("Running", "RUNNING"),
    ("Complete", "SUCCEEDED"),
    ("Complete", "STOPPED"),
    ("Failed", "RUNNING"),
]
# Between two reconciles: a child changes state, a child (or the shared RayCluster) is deleted
# by someone else, the user flips suspend or edits the spec, time passes; or the API server
# refuses one of the next plan's creates.
MOVES = st.tuples(
    st.sampled_from(
        ["state"] * 4 + ["delete", "suspend", "edit", "wait", "reject", "lose-cluster"]
    ),
    st.integers(0, 50),
    st.integers(0, 50),
    st.sampled_from([1, 10, 60, 600]),
)


def _child_status(kind, pick):
    if kind == c.SPARK_KIND:
        return {
            "applicationState": {"state": SPARK_STATES[pick % len(SPARK_STATES)]},
            "driverInfo": {},
        }
    deployment, job = RAY_STATES[pick % len(RAY_STATES)]
    return {"jobDeploymentStatus": deployment, "jobStatus": job}


def _check(before: dict, after: dict, trace: list[Move]) -> None:
    if not before or before.get("run") != after.get("run"):
        return  # a new run starts every step afresh
    old = {e["name"]: e for e in before["steps"]}
    for entry in after["steps"]:
        prior = old[entry["name"]]
        moves = [m for m in trace if m.step == entry["name"]]
        if prior["phase"] in c.TERMINAL_PHASES:
            assert entry["phase"] == prior["phase"], f"{entry['name']} left {prior['phase']}"
            assert (entry["attempts"], entry["child"]) == (prior["attempts"], prior["child"])
            assert not moves
            continue
        phase = prior["phase"]
        for move in moves:
            assert move.before == phase, f"{entry['name']}: {moves} from {prior['phase']}"
            assert steps.TRANSITIONS[(move.before, move.event)] == move.after
            phase = move.after
        assert phase == entry["phase"], f"{entry['name']}: a phase written by hand? {moves}"
        if len(moves) == 1 and phase != prior["phase"]:
            assert (prior["phase"], phase) in steps.ALLOWED
        started = sum(m.event == steps.START for m in moves)
        assert entry["attempts"] == prior["attempts"] + started


@given(mljob_body=pipelines(), moves=st.lists(MOVES, max_size=60))
def test_every_step_phase_change_is_in_the_table(mljob_body, moves):
    """On the random DAGs of pipeline_gen (shared RayCluster or not, retries, deadlines, TTL)."""
    world = World(mljob_body)
    trace: list[Move] = []
    reject_next: int | None = None
    with _tracing(trace):
        for move, pick, state_pick, seconds in [("wait", 0, 0, 1), *moves, ("wait", 0, 0, 0)]:
            before = copy.deepcopy(world.mljob.get("status") or {})
            trace.clear()
            if reject_next is None:
                world.reconcile(seconds=seconds)
            else:
                world.advance(seconds)
                result = plan(world.mljob, list(world.children.values()), world.now)
                planned = len(trace)
                _, skipped = world.apply_rejecting(result, reject_next)
                if any(isinstance(a, Create) for a in result.actions):
                    reject_next = None  # refused one; else the next plan's creates are
                # A skipped create's step is rolled back to its entry before the plan (no
                # transition): what plan() did to it is not in the status.
                trace[:] = [m for i, m in enumerate(trace) if i >= planned or m.step not in skipped]
            _check(before, world.status, trace)
            if move == "reject":
                reject_next = pick
            if move == "suspend":
                world.mljob["spec"]["suspend"] = not world.mljob["spec"].get("suspend")
            elif move == "edit":
                policy = [c.WAIT_FOR_RUNNING, c.CANCEL_RUNNING][state_pick % 2]
                world.mljob["spec"]["onSpecChange"] = policy
                world.edit(labels={"edit": str(pick)})
            elif move == "lose-cluster":
                for key in [k for k in world.children if k[0] == c.RAY_CLUSTER_KIND]:
                    del world.children[key]
            elif move in ("state", "delete"):
                live = sorted(
                    k
                    for k, child in world.children.items()
                    if k[0] != c.RAY_CLUSTER_KIND
                    and child_state(child).phase in (c.PENDING, c.RUNNING)
                )
                if live:
                    kind, name = live[pick % len(live)]
                    if move == "delete":
                        del world.children[(kind, name)]
                    else:
                        world.set_status(kind, name, _child_status(kind, state_pick))
