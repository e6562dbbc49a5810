"""The step state machine: one function per transition of a `status.steps[]` entry.

Pure, like the planner that calls it: every change of a step's `phase` goes through `_move`,
which checks it against `TRANSITIONS` and raises `IllegalTransition` (a bug in the planner, never
a user error) for any other. Each function sets the phase and the fields that go with it, and
clears the fields that phase must not carry.

Events x phases -> the phase after the event ("-": illegal, a bug). Succeeded and Failed take no
event at all: they are terminal within a run.

| event \\ from  | Pending    | Running   | Retrying |
|----------------|------------|-----------|----------|
| start          | Pending    | -         | Pending  |
| childPending   | Pending    | Pending   | -        |
| childRunning   | Running    | Running   | -        |
| childSucceeded | Succeeded  | Succeeded | -        |
| retry          | Retrying   | Retrying  | -        |
| fail           | Failed     | Failed    | -        |
| cancel         | Failed     | Failed    | Failed   |
| reject         | Failed     | Failed    | Failed   |
| cache          | Succeeded  | -         | -        |

- start (`begin_attempt`): a child is created, or adopted after a lost status write. Only from
  Pending before the first attempt (`attempts` 0) or from Retrying once the backoff passed.
- childPending, childRunning, childSucceeded (`observe`, `succeed`): the live child's own state
  (a Pending entry with `attempts` > 0 has a live child). A SparkApplication may go back from
  RUNNING to e.g. PENDING_RERUN, so Running → Pending is legal.
- retry, fail (`fail_attempt` → `schedule_retry` or `fail`): the attempt failed (the child
  failed, a step deadline expired, the child or the shared RayCluster was deleted by someone
  else); retry while `retries` allow, else the step fails.
- cancel (`cancel`): the operator ends the step itself: a spec change with CancelRunning, the
  TTL deleting a still-live child of a failed run, the pipeline's activeDeadlineSeconds (which
  also fails steps that never started).
- reject (`reject`): the API server refused the create of its child or of the shared RayCluster
  it needed.

- cache (`cached`): the step is not run: a step with `cache: true` whose fingerprint and inputs
  match a step that succeeded in an earlier run (mljob.fingerprint). Only before the first
  attempt; the entry names the run whose outputs it reuses (`cachedFromRun`).

Succeeded and Failed are terminal within a run: a new run starts every step afresh
(`new_entry`). `_undo_skipped_starts` in the planner is no transition: a start whose create was
never sent is rolled back to the entry as it was before the plan.

Fields per phase: `nextAttemptTime` only while Retrying; `childSuspended` only with a live child
(Pending or Running); `completionTime` only when Succeeded or Failed; `details` belongs to the
current attempt, or to the last failed one until the next starts.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from mljob import constants as c
from mljob import messages
from mljob.states import ChildState
from mljob.status import FailureRecord, StepStatus

# Events (the columns of the table above).
START = "start"
CHILD_PENDING = "childPending"
CHILD_RUNNING = "childRunning"
CHILD_SUCCEEDED = "childSucceeded"
RETRY = "retry"
FAIL = "fail"
CANCEL = "cancel"
REJECT = "reject"
CACHE = "cache"
EVENTS = (START, CHILD_PENDING, CHILD_RUNNING, CHILD_SUCCEEDED, RETRY, FAIL, CANCEL, REJECT, CACHE)

# (phase, event) -> the phase after it; any pair not in here is a bug.
TRANSITIONS: dict[tuple[str, str], str] = {
    (c.PENDING, START): c.PENDING,
    (c.RETRYING, START): c.PENDING,
    (c.PENDING, CACHE): c.SUCCEEDED,
    **{
        (phase, event): to
        for phase in (c.PENDING, c.RUNNING)
        for event, to in (
            (CHILD_PENDING, c.PENDING),
            (CHILD_RUNNING, c.RUNNING),
            (CHILD_SUCCEEDED, c.SUCCEEDED),
            (RETRY, c.RETRYING),
            (FAIL, c.FAILED),
        )
    },
    **{
        (phase, event): c.FAILED
        for phase in (c.PENDING, c.RUNNING, c.RETRYING)
        for event in (CANCEL, REJECT)
    },
}
# The same table as the (from, to) phase pairs it allows.
ALLOWED: frozenset[tuple[str, str]] = frozenset((f, to) for (f, _), to in TRANSITIONS.items())

_OBSERVED = {c.PENDING: CHILD_PENDING, c.RUNNING: CHILD_RUNNING}
# Fields a phase must not carry, dropped when an entry enters it.
_DROPS = {
    c.PENDING: (),  # a child observed Pending may be suspended (childSuspended stays)
    c.RUNNING: (),
    c.RETRYING: ("childSuspended", "completionTime"),
    c.SUCCEEDED: ("childSuspended", "nextAttemptTime"),
    c.FAILED: ("childSuspended", "nextAttemptTime"),
}
# A new attempt: nothing of the previous one stays but its failures[] record.
_START_DROPS = ("nextAttemptTime", "completionTime", "childSuspended", "details")


class IllegalTransition(RuntimeError):
    """A step phase change outside TRANSITIONS: a bug in the planner."""


def new_entry(name: str, kind: str, previous: StepStatus | None) -> StepStatus:
    """A step's status entry, continued from `previous` (same kind) if it has one, else Pending
    before its first attempt."""
    entry: StepStatus = {
        "name": name,
        "kind": kind,
        "child": "",
        "phase": c.PENDING,
        "childState": "",
        "attempts": 0,
        "message": "",
    }
    if previous and previous.get("kind") == kind:
        entry.update(copy.deepcopy(previous))
    return entry


def waits_for_attempt(entry: StepStatus) -> bool:
    """Pending before its first attempt, or Retrying: the next start creates its child."""
    never_started = entry["phase"] == c.PENDING and not entry["attempts"]
    return never_started or entry["phase"] == c.RETRYING


def has_live_child(entry: StepStatus) -> bool:
    return entry.get("attempts", 0) > 0 and entry["phase"] in (c.PENDING, c.RUNNING)


# --- transitions -------------------------------------------------------------------------------
def begin_attempt(entry: StepStatus, child_name: str, now: datetime) -> None:
    """start: the next attempt's child `child_name` was created (or adopted)."""
    if not waits_for_attempt(entry):
        raise IllegalTransition(
            f"step {entry['name']}: start while {entry['phase']} with attempt {entry['attempts']}"
        )
    _move(entry, START, drops=_START_DROPS)
    entry.update({"child": child_name, "attempts": entry["attempts"] + 1})
    entry.update({"childState": "", "message": "", "startTime": timestamp(now)})


def observe(entry: StepStatus, state: ChildState, now: datetime) -> None:
    """childPending, childRunning, childSucceeded: mirror the live child's state. A Failed
    child is an attempt failure: `mirror_failure`, then `fail_attempt`."""
    if state.phase == c.SUCCEEDED:
        succeed(entry, state, now)
        return
    if state.phase not in _OBSERVED:
        raise IllegalTransition(f"step {entry['name']}: observe a child {state.phase}")
    _require_live_child(entry)
    _move(entry, _OBSERVED[state.phase])
    _mirror(entry, state)


def succeed(entry: StepStatus, state: ChildState, now: datetime) -> None:
    """childSucceeded: the step is done; it never runs again in this run."""
    _require_live_child(entry)
    _move(entry, CHILD_SUCCEEDED)
    _mirror(entry, state)
    entry["completionTime"] = timestamp(now)


def mirror_failure(entry: StepStatus, state: ChildState) -> None:
    """The child failed: keep its longer text (`details`) for the failure that follows."""
    _require_live_child(entry)
    _set_details(entry, state.details)


def fail_attempt(
    entry: StepStatus,
    child_state: str,
    message: str,
    *,
    allowed: int,
    backoff: float,
    now: datetime,
) -> None:
    """The current attempt failed: record it in failures[], then retry after `backoff` seconds
    while fewer than `allowed` attempts were made, else fail the step."""
    _require_live_child(entry)
    attempt, message = entry["attempts"], message or "no message"
    record: FailureRecord = {
        "attempt": attempt,
        "child": entry["child"],
        "message": _line(message),
        "time": timestamp(now),
    }
    entry["failures"] = [*(entry.get("failures") or []), record][-c.MAX_FAILURE_HISTORY :]
    if attempt < allowed:
        at = timestamp(now + timedelta(seconds=backoff))
        text = f"attempt {attempt} of {allowed} failed: {message}; next attempt at {at}"
        schedule_retry(entry, child_state, _line(text), at)
        return
    text = message if attempt <= 1 else f"attempt {attempt} of {allowed} failed: {message}"
    fail(entry, child_state, _line(text), now)


def schedule_retry(entry: StepStatus, child_state: str, message: str, at: str) -> None:
    """retry: wait in Retrying until `at` (status.steps[].nextAttemptTime), then start again."""
    _require_live_child(entry)
    _move(entry, RETRY)
    entry.update({"childState": child_state, "message": message, "nextAttemptTime": at})


def fail(entry: StepStatus, child_state: str, message: str, now: datetime) -> None:
    """fail: the last attempt failed; the step and the run are Failed."""
    _require_live_child(entry)
    _move(entry, FAIL)
    entry.update({"childState": child_state, "message": message, "completionTime": timestamp(now)})


def cancel(entry: StepStatus, child_state: str, message: str, now: datetime) -> None:
    """cancel: the operator ends a step that has not ended (its live child is deleted by the
    caller): `child_state` says why (constants.CHILD_STATE_CANCELLED, _PIPELINE_DEADLINE)."""
    _move(entry, CANCEL)
    entry.update({"childState": child_state, "message": message, "completionTime": timestamp(now)})


def cached(entry: StepStatus, from_run: int, now: datetime) -> None:
    """cache: the step is not run; its outputs of run `from_run` are reused."""
    if entry["phase"] != c.PENDING or entry["attempts"]:
        raise IllegalTransition(
            f"step {entry['name']}: cache hit while {entry['phase']} with attempt "
            f"{entry['attempts']}"
        )
    _move(entry, CACHE, drops=_START_DROPS)
    entry.update({"childState": c.CHILD_STATE_CACHED, "cachedFromRun": from_run})
    entry["message"] = f"not run: the outputs of run {from_run} are reused (cache)"
    entry["completionTime"] = timestamp(now)


def reject(entry: StepStatus, message: str, now: datetime) -> None:
    """reject: the API server refused a create this step needed; no retry (the same body would
    be refused again)."""
    _move(entry, REJECT)
    entry.update({"childState": c.CHILD_STATE_CREATE_REJECTED, "message": message})
    entry["completionTime"] = timestamp(now)


# --- helpers -----------------------------------------------------------------------------------
def _move(entry: StepStatus, event: str, drops: tuple[str, ...] | None = None) -> None:
    """The one place a step's phase changes: check the table, set the phase, drop what the new
    phase must not carry."""
    to = TRANSITIONS.get((entry["phase"], event))
    if to is None:
        raise IllegalTransition(f"step {entry['name']}: no {event} from {entry['phase']}")
    fields = cast(dict[str, Any], entry)  # the dropped keys are all optional ones
    for stale in _DROPS[to] if drops is None else drops:
        fields.pop(stale, None)
    entry["phase"] = to


def _require_live_child(entry: StepStatus) -> None:
    if not has_live_child(entry):
        raise IllegalTransition(f"step {entry['name']}: no live child while {entry['phase']}")


def _mirror(entry: StepStatus, state: ChildState) -> None:
    entry.update({"childState": state.raw, "message": _line(state.message)})
    _set_details(entry, state.details)


def _set_details(entry: StepStatus, details: str) -> None:
    if details:  # the child's longer text, kept once (docs/lifecycle.md)
        entry["details"] = details
    else:
        entry.pop("details", None)


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(text: str) -> str:
    """One line naming the cause, for step messages, status.message and conditions."""
    return messages.one_line(text, c.MAX_SUMMARY)
