"""The pure planning core: (MLJob, observed children, now) -> actions + new status + events.

No I/O. The previous `status` is the planner's memory: a step that succeeded stays succeeded
when its child disappears (Spark `timeToLiveSeconds`), a failed step stays failed, and a child
recorded in status is never created again. Child names are deterministic, so a status write lost
after a create is repaired by adopting the existing child (or by the glue's 409 on re-create).

Lifecycle (docs/lifecycle.md tells it from a user's side):
- Step phases change only through the transition functions of mljob.steps, which check each
  change against its table (steps.TRANSITIONS) and clear the fields the new phase must not carry.
- Runs: status.specHash is a hash of the spec without its run-control fields (suspend, TTL,
  pipeline deadline, onSpecChange). A different hash ends the current run (spec.onSpecChange:
  WaitForRunning lets the live children finish, CancelRunning deletes them) and starts run+1;
  the same hash (a re-apply, a suspend flip) never starts anything.
- Attempts: a failed attempt (child Failed, a step deadline, the child deleted by someone
  else) is retried with a new child `-a<n>` after an exponential backoff while `retries` allow;
  status.steps[].failures keeps the last errors. Succeeded steps never run again.
- Deadlines count from the later of the child's creation (the run's start for the pipeline
  deadline) and status.resumeTime, and are not enforced while suspended (a Kubernetes Job's
  activeDeadlineSeconds behaves the same).
- Suspend: nothing starts; live children are patched `spec.suspend: true` where their kind
  allows it and back to false on resume (status.steps[].childSuspended remembers which).
- TTL: once the run ended and ttlSecondsAfterFinished passed, every child is deleted once
  (status.childrenDeletedTime); the MLJob and its status stay.
- Plan.requeue_after: seconds until the next time-based change (a backoff, a deadline, the TTL).

Shared RayCluster (spec.rayCluster): it is created in the same plan as the first RayJob that
needs it, ahead of it, and the RayJob is NOT held back until HeadPodReady: KubeRay's RayJob
controller itself waits in Initializing until the selected cluster is ready before submitting
(KubeRay v1.7.0 `ray-operator/controllers/ray/rayjob_controller.go`), so waiting here would only
add a reconcile round trip. The cluster's readiness (HeadPodReady, never the sticky
status.state) is mirrored into status.rayCluster for users. It is suspended while the MLJob is
suspended and no Ray job runs on it, created again if someone else deletes it mid-run, and
deleted once the pipeline has ended and no Ray step is still active on it. With
spec.rayCluster.startPolicy Eager it is created with the run's first step instead, so that it
warms up while Spark prepares the data; everything else about it is the same.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from mljob import builders, messages, naming, states, steps
from mljob import constants as c
from mljob import fingerprint as fp
from mljob.kinds import BY_KIND
from mljob.status import (
    CacheRecord,
    Condition,
    MLJobStatus,
    RunRecord,
    ServingStatus,
    StepStatus,
)
from mljob.validation import dependencies, validate

Obj = dict[str, Any]
ChildKey = tuple[str, str]  # (kind, name)


class _WholeObject:
    """An action carrying the full object: its kind and name are the body's."""

    body: Obj

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


@dataclass(frozen=True)
class Create(_WholeObject):
    """Create this full object (a 409 means it exists already: treat as done)."""

    body: Obj
    step: str | None = None  # None for the shared RayCluster


@dataclass(frozen=True)
class Delete:
    """Delete this child (a 404 means it is gone already: treat as done)."""

    api_version: str
    kind: str
    name: str
    namespace: str


@dataclass(frozen=True)
class Patch:
    """A JSON merge patch (RFC 7386) on a live child; only ever `{"spec": {"suspend": bool}}`,
    the one field a running SparkApplication or RayJob takes without restarting (a 404 means
    the child is gone: ignore it, the next plan sees that)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    patch: Obj


@dataclass(frozen=True)
class Update(_WholeObject):
    """Replace a serve step's RayService spec with `body`'s, and set its labels and annotations
    (a new run's model, rolled out by KubeRay's zero-downtime upgrade; a 404 means it is gone:
    the next plan sees that). The glue applies it where it would apply a Create."""

    body: Obj
    step: str


Action = Create | Delete | Patch | Update


class Event(NamedTuple):
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    status: MLJobStatus = field(default_factory=MLJobStatus)  # the complete new MLJob status
    events: list[Event] = field(default_factory=list)
    # Seconds from `now` until something time-based can change (a retry backoff, a deadline,
    # the TTL): reconcile again then, even if no event comes. None: nothing is scheduled.
    requeue_after: float | None = None


class _Verdict(NamedTuple):
    """The pipeline's phase and why, for status and conditions."""

    phase: str
    reason: str
    message: str
    current: str  # status.currentStep


class _Failure(NamedTuple):
    child_state: str  # the child's state, or one of constants.CHILD_STATE_*
    message: str


@dataclass
class _Context:
    """One planning pass: the inputs every helper needs."""

    mljob: Obj
    observed: dict[ChildKey, Obj]
    now: datetime
    run: int = 1
    # Events no status diff shows (the shared RayCluster lost and recreated under its name).
    events: list[Event] = field(default_factory=list)
    # Serve steps whose RayService serves a model now (status.serving, the RayService observed):
    # nothing the operator decides may take it down, and a failed update is not retried.
    live: frozenset[str] = frozenset()

    @property
    def spec(self) -> Obj:
        spec: Obj = self.mljob["spec"]
        return spec

    @property
    def namespace(self) -> str:
        return str(self.mljob["metadata"].get("namespace", "default"))

    @property
    def suspended(self) -> bool:
        return bool(self.spec.get("suspend"))

    @functools.cached_property
    def fingerprints(self) -> dict[str, str]:
        return fp.fingerprints(self.spec)

    def step(self, entry: StepStatus) -> Obj | None:
        """The spec step of a status entry (None when the spec no longer has it)."""
        step = next((s for s in self.spec["steps"] if s["name"] == entry["name"]), None)
        return step if step and builders.step_kind(step) == entry["kind"] else None

    def child(self, entry: StepStatus) -> Obj | None:
        return self.observed.get((entry["kind"], entry["child"]))

    def delete(self, kind: str, name: str) -> Delete:
        return Delete(BY_KIND[kind].api_version, kind, name, self.namespace)

    def patch(self, kind: str, name: str, patch: Obj) -> Patch:
        return Patch(BY_KIND[kind].api_version, kind, name, self.namespace, patch)


def plan(mljob: Obj, children: list[Obj], now: datetime) -> Plan:
    """Plan one reconcile of `mljob` given its observed `children` at `now`.

    Contract with the glue: `children` holds every child owned by this MLJob that exists, as
    last seen, INCLUDING the ones the glue created (or got a 409 for) and the watch has not
    delivered yet. So a child recorded in status that is missing from `children` was deleted:
    the planner fails (or retries) its step. Apply Delete/Patch/Create actions in order, then
    write `status`, then post `events`; reconcile again after `requeue_after` seconds.
    """
    old: MLJobStatus = mljob.get("status") or {}
    errors = validate(mljob)
    if errors:
        return _finish(old, _invalid_status(mljob, old, errors), mljob, now)
    ctx = _Context(mljob, _by_key(children), now, run=old.get("run") or 1)
    ctx.live = _live_models(ctx, old)
    new_hash = spec_hash(mljob["spec"])
    if not old.get("specHash") or old["specHash"] == new_hash:
        base = copy.deepcopy(old)
        base.update({"run": ctx.run, "specHash": new_hash})
        return _plan_run(ctx, old, base)
    return _plan_spec_change(ctx, old, new_hash)


def spec_hash(spec: Obj) -> str:
    """A hash of what a run does: the spec without its run-control fields."""
    defining = {k: v for k, v in spec.items() if k not in c.RUN_CONTROL_FIELDS}
    shared = defining.get("rayCluster")
    if isinstance(shared, dict) and c.RAY_CLUSTER_RUN_CONTROL_FIELDS & shared.keys():
        # When the cluster starts is not what runs; an absent field leaves the hash unchanged.
        defining["rayCluster"] = {
            k: v for k, v in shared.items() if k not in c.RAY_CLUSTER_RUN_CONTROL_FIELDS
        }
    text = json.dumps(defining, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Obj:
    """The JSON merge patch (RFC 7386) that turns status `old` into `new`: changed keys, and
    null for every key `new` dropped (a new run drops completionTime, childrenDeletedTime...).
    Send this, not `new` alone, to the status subresource."""
    patch: Obj = {k: None for k in old if k not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = status_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before:
            patch[key] = copy.deepcopy(value)
    return patch


# --- which status changes and Events are worth a write of their own -------------------------
# A live child's progress inside its step (docs/lifecycle.md, "What is written when"): the step
# between Pending and Running, the child's raw state, its message and longer text. No Event,
# no action and nothing a user or the planner acts on follows from it alone, so the glue may
# hold it back for a short while (expectations.Memory.defer_status) and let it ride on the next
# write; every other change of status is written at once.
PROGRESS_FIELDS = frozenset({"phase", "childState", "message", "details"})
_PROGRESS_PHASES = frozenset({c.PENDING, c.RUNNING})


def progress_only(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether status `new` differs from `old` only by live children's progress (see
    PROGRESS_FIELDS): the same top-level fields but `steps`, the same steps in the same order,
    and within each step only those fields, the step staying Pending or Running. False when
    nothing differs (there is nothing to hold back)."""
    if _changed_keys(old, new) != {"steps"}:
        return False
    before, after = old.get("steps") or [], new.get("steps") or []
    if [e.get("name") for e in before] != [e.get("name") for e in after]:
        return False
    for was, now in zip(before, after, strict=True):
        changed = _changed_keys(was, now)
        if not changed <= PROGRESS_FIELDS:
            return False
        if "phase" in changed and not {was.get("phase"), now.get("phase")} <= _PROGRESS_PHASES:
            return False
    return True


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


# The happy path's progress Events, folded into one Event per reconcile (`posted_events`); the
# first present here names it.
_FOLDED_REASONS = (c.EVENT_STEP_SUCCEEDED, c.EVENT_STEP_STARTED, c.EVENT_PIPELINE[c.RUNNING])


def posted_events(events: Sequence[Event]) -> list[Event]:
    """The Events to post for one plan's `events`: the happy path's progress (StepSucceeded,
    StepStarted, PipelineRunning) as ONE Normal Event, named by the first of those reasons
    present, whose message has each folded Event's message on a line of its own; every other
    Event (Warnings, the pipeline's end, RunStarted, StepCached, RayClusterCreated, ...) is
    posted as it is. A step transition is then one Event, not two (docs/lifecycle.md)."""
    folded = [e for e in events if e.type == "Normal" and e.reason in _FOLDED_REASONS]
    if len(folded) < 2:
        return list(events)
    reason = next(r for r in _FOLDED_REASONS if any(e.reason == r for e in folded))
    message = messages.clip("\n".join(e.message for e in folded), c.MAX_EVENT_MESSAGE)
    posted: list[Event] = []
    for event in events:
        if event not in folded:
            posted.append(event)
        elif event is folded[0]:
            posted.append(Event("Normal", reason, message))  # where the first folded one was
    return posted


def record_create_rejected(
    old: MLJobStatus,
    status: MLJobStatus,
    rejected: str | None,
    message: str,
    now: datetime,
    skipped: Sequence[str | None] = (),
    *,
    namespace: str,
) -> Plan:
    """The API server refused a child create (422, 403, admission) from the plan that turned
    status `old` into `status`: fail the step once, with the server's message, so it is never
    retried in a loop. The glue applies no create after a rejected one: the steps of those
    `skipped` creates (None: the shared RayCluster) did not start, so their entries go back to
    what `old` had. `rejected` None means the shared RayCluster was refused: every Ray step of
    the run not ended yet fails, since each needs it (without an attempt: no RayJob was sent).

    The returned Plan's actions are to be applied too: when the refusal ended the run, the
    shared RayCluster (in `namespace`) is deleted now, as the plan that ends a run does, and
    not one reconcile later (nothing might trigger one before the resync)."""
    new = copy.deepcopy(status)
    cluster = _cluster_name(status)
    _undo_skipped_starts(new, old, skipped)
    if rejected is None and cluster:
        new["rayCluster"]["state"] = "Rejected"
    for entry in new.get("steps") or []:
        # A refused cluster fails every Ray step of the run not ended yet: all of them need it
        # (with startPolicy Eager it is refused before any Ray step started).
        needed_cluster = rejected is None and entry["kind"] == c.RAY_JOB_KIND
        needed_cluster = needed_cluster and entry["phase"] not in c.TERMINAL_PHASES
        if entry["name"] == rejected or needed_cluster:
            what = (
                f"RayCluster {cluster}" if needed_cluster else f"{entry['kind']} {entry['child']}"
            )
            steps.reject(entry, _line(f"the API server rejected {what}: {message}"), now)
    new = _summarize(new, status, _verdict(new["steps"], False), now)
    return Plan(_release_ended_cluster(new, namespace), new, diff_events(old, new))


def _release_ended_cluster(status: MLJobStatus, namespace: str) -> list[Action]:
    """Delete the shared RayCluster of a run that ended with no Ray job left on it."""
    shared = status.get("rayCluster")
    if not shared or shared["state"] in ("Deleting", "Deleted", "Rejected"):
        return []
    ray_busy = any(e["kind"] == c.RAY_JOB_KIND and _has_live_child(e) for e in status["steps"])
    if status["phase"] not in c.TERMINAL_PHASES or ray_busy:
        return []
    shared.pop("suspended", None)
    shared.pop("message", None)
    shared["state"] = "Deleting"
    kind = BY_KIND[c.RAY_CLUSTER_KIND]
    return [Delete(kind.api_version, kind.kind, shared["name"], namespace)]


def _undo_skipped_starts(
    status: MLJobStatus, old: MLJobStatus, skipped: Sequence[str | None]
) -> None:
    """Steps (and the shared RayCluster) whose create was never sent go back to their entry in
    `old` (a fresh one in a new run)."""
    same_run = old.get("run", status.get("run")) == status.get("run")
    before = {e["name"]: e for e in old.get("steps") or []} if same_run else {}
    for i, entry in enumerate(status.get("steps") or []):
        if entry["name"] in skipped:
            previous = before.get(entry["name"])
            status["steps"][i] = steps.new_entry(entry["name"], entry["kind"], previous)
    if None in skipped:
        if same_run and old.get("rayCluster"):
            status["rayCluster"] = copy.deepcopy(old["rayCluster"])
        else:
            status.pop("rayCluster", None)


# --- one run -------------------------------------------------------------------------------------
_CARRIED = ("run", "specHash", "runs", "rayCluster", "resumeTime", "childrenDeletedTime", "cache")
# The models that serve outlive runs too (status.serving: serve steps, below).
_CARRIED_ALL: tuple[str, ...] = (*_CARRIED, "serving")


def _plan_run(
    ctx: _Context, old: MLJobStatus, base: MLJobStatus, actions: list[Action] | None = None
) -> Plan:
    """Plan the run in `base` (the previous status of this run, or a fresh one)."""
    ctx.run = base["run"]
    actions = list(actions or [])
    previous = {e["name"]: e for e in base.get("steps") or []}
    carried = {k: copy.deepcopy(v) for k, v in base.items() if k in _CARRIED_ALL}
    new = cast(MLJobStatus, carried)
    new["observedGeneration"] = _generation(ctx.mljob)
    new["steps"] = [
        steps.new_entry(step["name"], builders.step_kind(step), previous.get(step["name"]))
        for step in ctx.spec["steps"]
    ]
    _note_resume(ctx, new, old)
    for entry in new["steps"]:
        _observe(ctx, entry, retry=True)
    _adopt_shared_cluster(ctx, new)
    actions += _notice_lost_cluster(ctx, new)
    actions += _enforce_step_deadlines(ctx, new, retry=True)
    actions += _enforce_pipeline_deadline(ctx, new, base)
    actions += _suspend_or_resume_cluster(ctx, new)
    if not ctx.suspended and not any(e["phase"] == c.FAILED for e in new["steps"]):
        _take_cache_hits(ctx, new)  # first: a run the cache ends warms up no cluster
        actions += _warm_up_shared_cluster(ctx, new)
        actions += _start_runnable_steps(ctx, new)
    _remember_succeeded(ctx, new)
    actions += _suspend_or_resume(ctx, new["steps"])
    new = _summarize(new, base, _verdict(new["steps"], ctx.suspended), ctx.now)
    actions += _track_shared_cluster(ctx, new)
    _record_serving(ctx, new)
    actions += _retire_ray_services(ctx, new, actions)
    actions += _expire_ttl(ctx, new, actions)
    _forget_serving(ctx, new, actions)
    result = _finish(old, new, ctx.mljob, ctx.now, actions, _next_wakeup(ctx, new))
    return replace(result, events=[*result.events, *ctx.events])


def _note_resume(ctx: _Context, new: MLJobStatus, old: MLJobStatus) -> None:
    """Deadline clocks restart when a suspended MLJob resumes (status.resumeTime)."""
    if old.get("phase") == c.SUSPENDED and not ctx.suspended:
        new["resumeTime"] = _ts(ctx.now)


# --- observing children --------------------------------------------------------------------------
def _observe(ctx: _Context, entry: StepStatus, *, retry: bool) -> None:
    """Mirror the entry's child into it; a failed attempt is retried when `retry` and retries
    are left, else it fails the step."""
    step = ctx.step(entry) if retry else None
    if step is not None and steps.waits_for_attempt(entry):
        _adopt_lost_create(ctx, step, entry)
    if not _has_live_child(entry):
        return
    failure = _refresh(ctx, entry)
    if failure:
        # A failed update of a model that serves is not retried: the same spec would fail the
        # same way, and the older model keeps serving.
        _attempt_failed(entry, None if entry["name"] in ctx.live else step, failure, ctx.now)
        if step is not None and steps.waits_for_attempt(entry):
            # its next attempt may exist already: created by a plan whose status write was lost
            _observe(ctx, entry, retry=retry)


def _refresh(ctx: _Context, entry: StepStatus) -> _Failure | None:
    """Mirror the entry's live child (steps.observe); its failure, or its deletion, is returned
    for `_attempt_failed`."""
    child = ctx.child(entry)
    if child is None:
        what = f"{entry['kind']} {entry['child']} was deleted while {entry['phase']}"
        return _Failure(c.CHILD_STATE_DELETED, f"{what} (by someone else)")
    if entry["kind"] == c.RAY_SERVICE_KIND and not _made_by(child, ctx.run, entry["attempts"]):
        # The watch has not delivered this attempt's create or update yet: what it shows is
        # an earlier run's spec (or the failed attempt's RayService on its way out).
        message = f"waiting for the RayService of run {ctx.run} to be seen"
        steps.observe(
            entry, states.ChildState(c.PENDING, states.RAY_SERVICE_UPDATING, message), ctx.now
        )
        return None
    state = states.child_state(child)
    if state.phase == c.FAILED:
        steps.mirror_failure(entry, state)
        return _Failure(state.raw, state.message)
    steps.observe(entry, state, ctx.now)
    return None


def _adopt_lost_create(ctx: _Context, step: Obj, entry: StepStatus) -> None:
    """The next attempt's child exists but status does not know it (a status write was lost
    after the create): adopt it instead of creating it again."""
    name = builders.step_child_name(ctx.mljob, step, ctx.run, entry["attempts"] + 1)
    child = ctx.observed.get((entry["kind"], name))
    if child is None:
        return
    if entry["kind"] == c.RAY_SERVICE_KIND and not _made_by(child, ctx.run, entry["attempts"] + 1):
        return  # a serve step's one name: an earlier run's RayService, or a failed attempt's
    steps.begin_attempt(entry, name, ctx.now)


def _attempt_failed(entry: StepStatus, step: Obj | None, failure: _Failure, now: datetime) -> None:
    """Record a failed attempt; schedule the next one while retries are left (`step` None: no
    retry, the spec no longer has the step or its run is ending)."""
    allowed = allowed_attempts(step or {})
    backoff = backoff_seconds(step or {}, entry["attempts"])
    steps.fail_attempt(
        entry, failure.child_state, failure.message, allowed=allowed, backoff=backoff, now=now
    )


def allowed_attempts(step: Obj) -> int:
    """The first attempt and `retries` more (mljob.local.runner applies the same rule)."""
    retries: int = step.get("retries") or 0
    return 1 + retries


def backoff_seconds(step: Obj, failed_attempts: int) -> float:
    """Wait before the next attempt: backoffSeconds doubled per failed attempt, capped."""
    first = step.get("backoffSeconds", c.DEFAULT_BACKOFF_SECONDS)
    cap = step.get("maxBackoffSeconds", c.DEFAULT_MAX_BACKOFF_SECONDS)
    return float(min(cap, first * 2 ** max(failed_attempts - 1, 0)))


# --- deadlines -----------------------------------------------------------------------------------
def _enforce_step_deadlines(ctx: _Context, status: MLJobStatus, *, retry: bool) -> list[Action]:
    if ctx.suspended:
        return []
    actions: list[Action] = []
    for entry in status["steps"]:
        step = ctx.step(entry)
        failure = _step_deadline_failure(ctx, status, step, entry) if step else None
        if failure:
            live = entry["name"] in ctx.live  # an update: the older model keeps serving
            if not live:
                actions.append(ctx.delete(entry["kind"], entry["child"]))
            _attempt_failed(entry, step if retry and not live else None, failure, ctx.now)
    return actions


def _step_deadline_failure(
    ctx: _Context, status: MLJobStatus, step: Obj, entry: StepStatus
) -> _Failure | None:
    if not _has_live_child(entry):
        return None
    elapsed = _seconds_since(ctx.now, entry.get("startTime"), status.get("resumeTime"))
    what = f"{entry['kind']} {entry['child']}"
    start = step.get("startDeadlineSeconds")
    if start and entry["phase"] == c.PENDING and elapsed >= start:
        still = entry["childState"] or "not started"
        message = f"startDeadlineSeconds ({start}s) expired: {what} still {still}"
        return _Failure(c.CHILD_STATE_START_DEADLINE, message)
    active = step.get("activeDeadlineSeconds")
    if active and elapsed >= active:
        message = f"activeDeadlineSeconds ({active}s) expired: {what} was {entry['phase']}"
        return _Failure(c.CHILD_STATE_ACTIVE_DEADLINE, message)
    return None


def _enforce_pipeline_deadline(
    ctx: _Context, status: MLJobStatus, base: MLJobStatus
) -> list[Action]:
    """spec.activeDeadlineSeconds: fail the run (no retries) and delete its live children."""
    limit = ctx.spec.get("activeDeadlineSeconds")
    entries = status["steps"]
    if not limit or ctx.suspended or _ended(entries) or not base.get("startTime"):
        return []
    if _seconds_since(ctx.now, base["startTime"], status.get("resumeTime")) < limit:
        return []
    started = [e for e in entries if _is_active(e)]
    targets = started or [e for e in entries if e["phase"] not in c.TERMINAL_PHASES]
    actions: list[Action] = []
    for entry in targets:
        if _has_live_child(entry) and entry["name"] not in ctx.live:
            actions.append(ctx.delete(entry["kind"], entry["child"]))
        message = f"spec.activeDeadlineSeconds ({limit}s) of the pipeline expired"
        steps.cancel(entry, c.CHILD_STATE_PIPELINE_DEADLINE, message, ctx.now)
    return actions


# --- starting steps ------------------------------------------------------------------------------
def _start_runnable_steps(ctx: _Context, status: MLJobStatus) -> list[Action]:
    """Create the first attempt of steps whose dependencies succeeded, and due retries (the
    cache hits were taken before: _take_cache_hits)."""
    entries = {e["name"]: e for e in status["steps"]}
    deps = dependencies(ctx.spec["steps"])
    view = _with_run_status(ctx, status)  # a cached input's location
    actions: list[Action] = []
    for step in ctx.spec["steps"]:
        entry = entries[step["name"]]
        ready = all(entries[d]["phase"] == c.SUCCEEDED for d in deps[step["name"]])
        if not ready or not steps.waits_for_attempt(entry) or not _retry_due(entry, ctx.now):
            continue
        if builders.step_kind(step) == c.RAY_JOB_KIND and ctx.spec.get("rayCluster"):
            actions += _ensure_shared_cluster(ctx, status)
        body = builders.build_step_child(view, step, ctx.run, entry["attempts"] + 1)
        start = _start_serving(ctx, body, entry) or Create(body, step["name"])
        if isinstance(start, _Wait):
            continue
        actions.append(start)
        steps.begin_attempt(entry, body["metadata"]["name"], ctx.now)
    return actions


# --- the cache of succeeded steps (mljob.fingerprint; docs/lifecycle.md) -------------------------
def _take_cache_hits(ctx: _Context, status: MLJobStatus) -> None:
    """Every step ready to start that hits the cache succeeds from it now, and so, in turn,
    may the steps after it (_start_runnable_steps then starts the others)."""
    entries = {e["name"]: e for e in status["steps"]}
    deps = dependencies(ctx.spec["steps"])
    view = _with_run_status(ctx, status)
    hit = True
    while hit:
        hit = False
        for step in ctx.spec["steps"]:
            entry = entries[step["name"]]
            if all(entries[d]["phase"] == c.SUCCEEDED for d in deps[step["name"]]):
                hit = _cache_hit(ctx, view, status, step, entry) or hit


def _with_run_status(ctx: _Context, status: MLJobStatus) -> Obj:
    """The MLJob as the builders must see it: with this plan's step entries, from which they
    read where each input lives (a cached dependency's outputs are in an earlier run's path)."""
    return {**ctx.mljob, "status": {"run": ctx.run, "steps": status["steps"]}}


def _cache_hit(ctx: _Context, view: Obj, status: MLJobStatus, step: Obj, entry: StepStatus) -> bool:
    """A `cache: true` step before its first attempt whose fingerprint and inputs match a step
    that succeeded in an earlier run: record it succeeded from cache (steps.cached)."""
    if not step.get("cache") or entry["attempts"] or entry["phase"] != c.PENDING:
        return False
    fingerprint = ctx.fingerprints[step["name"]]
    inputs = builders.step_inputs(view, step["name"], ctx.run)
    record = fp.lookup(status.get("cache") or [], step["name"], fingerprint, inputs)
    if record is None or record["run"] >= ctx.run:
        return False
    steps.cached(entry, record["run"], ctx.now)
    return True


def _remember_succeeded(ctx: _Context, status: MLJobStatus) -> None:
    """Add each `cache: true` step that ran and succeeded in this run to status.cache."""
    view = _with_run_status(ctx, status)
    for entry in status["steps"]:
        step = ctx.step(entry)
        ran = entry["phase"] == c.SUCCEEDED and not entry.get("cachedFromRun")
        if not step or not step.get("cache") or not ran:
            continue
        record: CacheRecord = {
            "step": entry["name"],
            "fingerprint": ctx.fingerprints[entry["name"]],
            "run": ctx.run,
            "inputs": builders.step_inputs(view, entry["name"], ctx.run),
        }
        if record not in (status.get("cache") or []):
            status["cache"] = fp.remember(status.get("cache") or [], record)


def _retry_due(entry: StepStatus, now: datetime) -> bool:
    at = entry.get("nextAttemptTime")
    return not at or _parse(at) <= now


# --- suspend and resume --------------------------------------------------------------------------
def _suspend_or_resume(ctx: _Context, entries: list[StepStatus]) -> list[Action]:
    """Patch live children's spec.suspend to follow spec.suspend, where their kind allows it."""
    actions: list[Action] = []
    for entry in entries:
        if not _has_live_child(entry):
            entry.pop("childSuspended", None)
            continue
        flagged = bool(entry.get("childSuspended"))
        if ctx.suspended == flagged or (ctx.suspended and not _suspendable(ctx, entry)):
            continue
        actions.append(
            ctx.patch(entry["kind"], entry["child"], {"spec": {"suspend": ctx.suspended}})
        )
        if ctx.suspended:
            entry["childSuspended"] = True
        else:
            entry.pop("childSuspended")
    return actions


def _suspendable(ctx: _Context, entry: StepStatus) -> bool:
    """SparkApplication: always. RayJob: only with shutdownAfterJobFinishes and its own
    cluster (KubeRay refuses otherwise). Never with a Kueue queue label: Kueue owns suspend."""
    if c.KUEUE_QUEUE_LABEL in (ctx.spec.get("labels") or {}):
        return False
    if entry["kind"] == c.SPARK_KIND:
        return True
    step = ctx.step(entry)
    if step is None:
        return False
    spec = builders.build_step_child(ctx.mljob, step, ctx.run, entry["attempts"])["spec"]
    return bool(spec.get("shutdownAfterJobFinishes")) and not spec.get("clusterSelector")


# --- spec changes and runs -----------------------------------------------------------------------
def _plan_spec_change(ctx: _Context, old: MLJobStatus, new_hash: str) -> Plan:
    """The spec changed: finish or cancel the current run, then start the next one."""
    draining: MLJobStatus = copy.deepcopy(old)
    draining["observedGeneration"] = _generation(ctx.mljob)
    for entry in draining.get("steps") or []:
        _observe(ctx, entry, retry=False)
    _record_serving(ctx, draining)  # a serve step of the ending run may have just succeeded
    # A RayJob of the ending run whose shared cluster was deleted would never finish: fail it.
    actions = _notice_lost_cluster(ctx, draining, retry=False)
    actions += _enforce_step_deadlines(ctx, draining, retry=False)
    actions += _suspend_or_resume(ctx, draining.get("steps") or [])
    live = [e for e in draining.get("steps") or [] if _has_live_child(e)]
    policy = ctx.spec.get("onSpecChange", c.WAIT_FOR_RUNNING)
    if live and policy == c.WAIT_FOR_RUNNING:
        names = ", ".join(e["name"] for e in live)
        message = f"the spec changed: run {ctx.run + 1} starts when step(s) {names} finish"
        verdict = _Verdict(c.RUNNING, c.REASON_WAITING_FOR_RUN, message, names.replace(" ", ""))
        status = _summarize(draining, old, verdict, ctx.now)
        result = _finish(old, status, ctx.mljob, ctx.now, actions, _next_wakeup(ctx, status))
        return replace(result, events=[*result.events, *ctx.events])
    actions += _cancel(ctx, live, policy)
    actions += _delete_old_cluster(ctx, draining)
    base: MLJobStatus = {
        "run": ctx.run + 1,
        "specHash": new_hash,
        "runs": [*(old.get("runs") or []), _run_record(draining, ctx.now)][-c.MAX_RUN_HISTORY :],
        "conditions": old.get("conditions") or [],
    }
    if old.get("cache"):  # the cache outlives runs: that is what it is for
        base["cache"] = copy.deepcopy(old["cache"])
    if old.get("serving"):  # so do the models that serve (serve steps, below)
        base["serving"] = copy.deepcopy(old["serving"])
    return _plan_run(ctx, old, base, actions)


def _cancel(ctx: _Context, live: list[StepStatus], policy: str) -> list[Action]:
    actions: list[Action] = []
    for entry in live:
        # A serve step's RayService stays: the next run updates it in place (KubeRay keeps
        # the older model serving meanwhile), or deletes it if its step left the spec.
        if entry["kind"] != c.RAY_SERVICE_KIND:
            actions.append(ctx.delete(entry["kind"], entry["child"]))
        message = f"cancelled: the spec changed (onSpecChange: {policy})"
        steps.cancel(entry, c.CHILD_STATE_CANCELLED, message, ctx.now)
    return actions


def _delete_old_cluster(ctx: _Context, status: MLJobStatus) -> list[Action]:
    name = _cluster_name(status)
    if name and (c.RAY_CLUSTER_KIND, name) in ctx.observed:
        return [ctx.delete(c.RAY_CLUSTER_KIND, name)]
    return []


def _run_record(status: MLJobStatus, now: datetime) -> RunRecord:
    """The summary of an ended run kept in status.runs."""
    entries = status.get("steps") or []
    failed = [e for e in entries if e["phase"] == c.FAILED]
    own_failures = [e for e in failed if e["childState"] != c.CHILD_STATE_CANCELLED]
    if entries and all(e["phase"] == c.SUCCEEDED for e in entries):
        phase, message = c.SUCCEEDED, status.get("message", "")
    elif own_failures:
        phase, message = c.FAILED, _failure_message(own_failures[0])
    else:
        phase, message = c.CANCELLED, "ended by a spec change before it finished"
    record: RunRecord = {
        "run": status.get("run") or 1,
        "phase": phase,
        "message": _clip(message),
        "completionTime": status.get("completionTime") or _ts(now),
    }
    if status.get("startTime"):
        record["startTime"] = status["startTime"]
    return record


# --- shared RayCluster ---------------------------------------------------------------------------
def _ensure_shared_cluster(ctx: _Context, status: MLJobStatus) -> list[Action]:
    name = naming.ray_cluster_name(ctx.mljob["metadata"]["name"], ctx.run)
    if status.get("rayCluster", {}).get("name") == name:
        return []  # created before (maybe not observed yet): never twice
    status["rayCluster"] = {"name": name, "state": "Creating"}
    if (c.RAY_CLUSTER_KIND, name) in ctx.observed:
        return []
    return [Create(builders.build_ray_cluster(ctx.mljob, ctx.run))]


def _warm_up_shared_cluster(ctx: _Context, status: MLJobStatus) -> list[Action]:
    """spec.rayCluster.startPolicy Eager: create the run's shared RayCluster with its first
    step, ahead of that step's create, so the head starts (image pull, scheduling) while Spark
    prepares the data. Only while a Ray step of the run is still to run: once none is left, or
    the run ended, the cluster goes as an OnDemand one does (_track_shared_cluster). Suspended
    or failed runs never get here: nothing starts then."""
    shared = ctx.spec.get("rayCluster") or {}
    if shared.get("startPolicy") != c.START_EAGER:
        return []
    ray_to_run = any(
        e["kind"] == c.RAY_JOB_KIND and e["phase"] not in c.TERMINAL_PHASES for e in status["steps"]
    )
    return _ensure_shared_cluster(ctx, status) if ray_to_run else []


def _track_shared_cluster(ctx: _Context, status: MLJobStatus) -> list[Action]:
    shared = status.get("rayCluster")
    if not shared:
        return []
    cluster = ctx.observed.get((c.RAY_CLUSTER_KIND, shared["name"]))
    ended = status["phase"] in c.TERMINAL_PHASES
    ray_busy = any(e["kind"] == c.RAY_JOB_KIND and _has_live_child(e) for e in status["steps"])
    if cluster is None:
        if ended and shared["state"] in ("Deleting", "Ready", "Provisioning", "Suspended"):
            shared["state"] = "Deleted"
        return []
    if ended and not ray_busy:
        shared.pop("suspended", None)
        shared.pop("message", None)
        shared["state"] = "Deleting"
        return [ctx.delete(c.RAY_CLUSTER_KIND, shared["name"])]
    readiness = states.ray_cluster_readiness(cluster).state
    shared["state"] = "Suspended" if shared.get("suspended") else readiness
    return []


def _adopt_shared_cluster(ctx: _Context, status: MLJobStatus) -> None:
    """A status write was lost after the run's shared RayCluster was created: status does not
    name it, yet it exists, or a RayJob adopted after the same loss runs on it. Record it, so
    that it is deleted when the run ends (or noticed as lost, and created again)."""
    if not ctx.spec.get("rayCluster") or status.get("rayCluster"):
        return
    name = naming.ray_cluster_name(ctx.mljob["metadata"]["name"], ctx.run)
    if (c.RAY_CLUSTER_KIND, name) in ctx.observed or any(map(_on_cluster, status["steps"])):
        status["rayCluster"] = {"name": name, "state": "Creating"}


def _notice_lost_cluster(ctx: _Context, status: MLJobStatus, *, retry: bool = True) -> list[Action]:
    """The shared RayCluster was deleted by someone else while the run still needs it: the Ray
    steps running on it lose their attempt (retried while retries allow, like a deleted step
    child), and the next Ray step creates it again under the same name."""
    shared = status.get("rayCluster")
    if (
        not shared
        or shared["state"] in ("Deleting", "Deleted", "Rejected")
        or (c.RAY_CLUSTER_KIND, shared["name"]) in ctx.observed
        or (_ended(status["steps"]) and not any(_on_cluster(e) for e in status["steps"]))
    ):
        return []
    lost = f"the shared RayCluster {shared['name']} was deleted (by someone else)"
    del status["rayCluster"]
    ctx.events.append(
        Event(
            "Warning",
            c.EVENT_RAY_CLUSTER_LOST,
            f"{lost}; the next Ray step creates it again" if retry else lost,
        )
    )
    actions: list[Action] = []
    for entry in status["steps"]:
        if _on_cluster(entry):
            actions.append(ctx.delete(c.RAY_JOB_KIND, entry["child"]))
            failure = _Failure(c.CHILD_STATE_CLUSTER_LOST, f"{lost} while {entry['child']} ran")
            _attempt_failed(entry, ctx.step(entry) if retry else None, failure, ctx.now)
    return actions


def _on_cluster(entry: StepStatus) -> bool:
    """A Ray step whose RayJob is live (on the shared RayCluster, when there is one)."""
    return entry["kind"] == c.RAY_JOB_KIND and _has_live_child(entry)


def _suspend_or_resume_cluster(ctx: _Context, status: MLJobStatus) -> list[Action]:
    """Suspend the shared RayCluster (its pods go, GPUs included) while the MLJob is suspended
    and no Ray job runs on it; resume it with the MLJob, before the next Ray step starts.
    KubeRay cannot suspend a RayJob on a shared cluster, so a running one keeps it up."""
    shared = status.get("rayCluster")
    if not shared or shared["state"] in ("Deleting", "Deleted", "Rejected"):
        return []
    running = [
        e["name"]
        for e in status["steps"]
        if e["kind"] == c.RAY_JOB_KIND and e["phase"] == c.RUNNING
    ]
    shared.pop("message", None)
    if ctx.suspended and running:
        shared["message"] = (
            f"kept running while suspended: step(s) {', '.join(running)} run a Ray job on it, "
            "which KubeRay cannot suspend on a shared cluster; it is suspended once they end"
        )
    want = ctx.suspended and not running
    if want == bool(shared.get("suspended")):
        return []
    if want:
        shared["suspended"] = True
    else:
        shared.pop("suspended")
    return [ctx.patch(c.RAY_CLUSTER_KIND, shared["name"], {"spec": {"suspend": want}})]


# --- serve steps: the RayService that serves outlives its run ------------------------------------
class _Wait:
    """Start nothing yet (the failed attempt's RayService of this run is still being deleted)."""


def _start_serving(ctx: _Context, body: Obj, entry: StepStatus) -> Create | Update | _Wait | None:
    """How a serve step's attempt starts (None: not a serve step). Its RayService has one name:
    created when there is none; nothing while the failed attempt's RayService of this run is
    still there (the retry creates it afresh once the watch has seen it go); else updated in
    place: it holds an earlier run's spec (KubeRay rolls the new one out on a new cluster while
    the old one keeps serving), or, after lost status writes, another attempt's of this run."""
    if body["kind"] != c.RAY_SERVICE_KIND:
        return None
    child = ctx.observed.get((c.RAY_SERVICE_KIND, body["metadata"]["name"]))
    if child is None:
        return Create(body, entry["name"])
    if entry["attempts"] and _made_by(child, ctx.run, entry["attempts"]):
        return _Wait()
    return Update(body, entry["name"])


def _labels(child: Obj) -> dict[str, str]:
    labels: dict[str, str] = (child.get("metadata") or {}).get("labels") or {}
    return labels


def _made_by(child: Obj, run: int, attempt: int) -> bool:
    """Whether a RayService holds the spec of this run and attempt (its labels say so)."""
    labels = _labels(child)
    return labels.get(c.LABEL_RUN) == str(run) and labels.get(c.LABEL_ATTEMPT) == str(attempt)


def _live_models(ctx: _Context, status: MLJobStatus) -> frozenset[str]:
    """The serve steps whose RayService serves a model (status.serving) and still exists."""
    return frozenset(
        record["step"]
        for record in status.get("serving") or []
        if (c.RAY_SERVICE_KIND, record["rayService"]) in ctx.observed
    )


def _record_serving(ctx: _Context, status: MLJobStatus) -> None:
    """A serve step of this run succeeded (KubeRay promoted the cluster with its spec): its
    RayService now serves this run's model; status.serving says where and since when, and the
    step's message names the URL."""
    for entry in status["steps"]:
        step = ctx.step(entry)
        if entry["kind"] != c.RAY_SERVICE_KIND or entry["phase"] != c.SUCCEEDED or not step:
            continue
        records = status.get("serving") or []
        known = next((r for r in records if r["step"] == entry["name"]), None)
        if known and known["liveRun"] == ctx.run and known["rayService"] == entry["child"]:
            continue
        body = builders.build_step_child(ctx.mljob, step, ctx.run, entry["attempts"])
        service, port, route = states.serve_endpoint(body)
        url = f"http://{service}.{ctx.namespace}.svc:{port}{route}"
        record: ServingStatus = {
            "step": entry["name"],
            "rayService": entry["child"],
            "service": service,
            "port": port,
            "route": route,
            "url": url,
            "liveRun": ctx.run,
            "since": entry.get("completionTime") or _ts(ctx.now),
        }
        status["serving"] = [*(r for r in records if r["step"] != entry["name"]), record]
        entry["message"] = _line(f"run {ctx.run}'s model serves at {url}")


def _forget_serving(ctx: _Context, status: MLJobStatus, planned: list[Action]) -> None:
    """A RayService that is gone, or deleted by this plan, serves nothing any more."""
    deleted = {(a.kind, a.name) for a in planned if isinstance(a, Delete)}
    kept = [
        r
        for r in status.get("serving") or []
        if (key := (c.RAY_SERVICE_KIND, r["rayService"])) in ctx.observed and key not in deleted
    ]
    if kept:
        status["serving"] = kept
    else:
        status.pop("serving", None)


def _retire_ray_services(ctx: _Context, status: MLJobStatus, planned: list[Action]) -> list[Action]:
    """Delete the RayServices no serve step needs: one whose step left the spec (its model
    goes with it), and one whose attempt failed while no model of its step serves (a
    RayService never ends by itself: its cluster would run for ever; a retry creates it again).
    A failed update keeps its RayService: KubeRay keeps the older model serving."""
    entries = {e["name"]: e for e in status["steps"] if e["kind"] == c.RAY_SERVICE_KIND}
    serving = {r["step"] for r in status.get("serving") or []}
    already = {(a.kind, a.name) for a in planned if isinstance(a, Delete)}
    actions: list[Action] = []
    for (kind, name), child in sorted(ctx.observed.items()):
        if kind != c.RAY_SERVICE_KIND or (kind, name) in already:
            continue
        entry = entries.get(_labels(child).get(c.LABEL_STEP, ""))
        failed = entry is not None and entry["phase"] in (c.FAILED, c.RETRYING)
        if entry is None or (failed and entry["name"] not in serving):
            actions.append(ctx.delete(kind, name))
    return actions


# --- TTL -----------------------------------------------------------------------------------------
def _expire_ttl(ctx: _Context, status: MLJobStatus, planned: list[Action]) -> list[Action]:
    """ttlSecondsAfterFinished: once the run ended and the TTL passed, delete every child of
    this MLJob (every run), once, except the RayService of a serve step that serves (the
    deployed model). The MLJob and its status stay."""
    due = _ttl_due_at(ctx, status)
    if due is None or due > ctx.now:
        return []
    status["childrenDeletedTime"] = _ts(ctx.now)
    for entry in status["steps"]:
        if _has_live_child(entry):  # a parallel branch of a failed run
            message = "deleted by ttlSecondsAfterFinished"
            steps.cancel(entry, c.CHILD_STATE_CANCELLED, message, ctx.now)
    if status.get("rayCluster"):
        status["rayCluster"]["state"] = "Deleted"
    already = {(a.kind, a.name) for a in planned if isinstance(a, Delete)}
    already |= {(c.RAY_SERVICE_KIND, r["rayService"]) for r in status.get("serving") or []}
    return [
        ctx.delete(kind, name) for kind, name in sorted(ctx.observed) if (kind, name) not in already
    ]


def _ttl_due_at(ctx: _Context, status: MLJobStatus) -> datetime | None:
    ttl = ctx.spec.get("ttlSecondsAfterFinished")
    if ttl is None or status.get("childrenDeletedTime") or not status.get("completionTime"):
        return None
    return _parse(status["completionTime"]) + timedelta(seconds=ttl)


# --- when to look again --------------------------------------------------------------------------
def _next_wakeup(ctx: _Context, status: MLJobStatus) -> float | None:
    """Seconds until the earliest backoff expiry, deadline or TTL still ahead."""
    moments = [_ttl_due_at(ctx, status)]
    if not ctx.suspended:
        moments += [_parse(e["nextAttemptTime"]) for e in status["steps"] if _retry_pending(e)]
        moments += [_step_deadline_at(ctx, status, e) for e in status["steps"]]
        moments.append(_pipeline_deadline_at(ctx, status))
    ahead = [(m - ctx.now).total_seconds() for m in moments if m is not None and m > ctx.now]
    return min(ahead) if ahead else None


def _retry_pending(entry: StepStatus) -> bool:
    return entry["phase"] == c.RETRYING and bool(entry.get("nextAttemptTime"))


def _step_deadline_at(ctx: _Context, status: MLJobStatus, entry: StepStatus) -> datetime | None:
    step = ctx.step(entry)
    if step is None or not _has_live_child(entry):
        return None
    names = ["activeDeadlineSeconds"]
    if entry["phase"] == c.PENDING:
        names.append("startDeadlineSeconds")
    limits: list[int] = [step[name] for name in names if step.get(name)]
    if not limits:
        return None
    since = _since(entry.get("startTime"), status.get("resumeTime"))
    return since + timedelta(seconds=min(limits)) if since else None


def _pipeline_deadline_at(ctx: _Context, status: MLJobStatus) -> datetime | None:
    limit = ctx.spec.get("activeDeadlineSeconds")
    if not limit or status["phase"] in c.TERMINAL_PHASES:
        return None
    since = _since(status.get("startTime"), status.get("resumeTime"))
    return since + timedelta(seconds=limit) if since else None


# --- pipeline summary and conditions -------------------------------------------------------------
def _verdict(entries: list[StepStatus], suspended: bool) -> _Verdict:
    failed = [e for e in entries if e["phase"] == c.FAILED]
    done = sum(e["phase"] == c.SUCCEEDED for e in entries)
    active = ",".join(e["name"] for e in entries if _is_active(e))
    if failed:
        first = next(
            (e for e in failed if e["childState"] == c.CHILD_STATE_PIPELINE_DEADLINE), failed[0]
        )
        current = ",".join(e["name"] for e in failed)
        return _Verdict(c.FAILED, _failure_reason(first), _failure_message(first), current)
    if done == len(entries):
        return _Verdict(c.SUCCEEDED, c.REASON_SUCCEEDED, f"all {done} steps succeeded", "")
    if suspended:
        return _Verdict(c.SUSPENDED, c.REASON_SUSPENDED, "spec.suspend is true", active)
    if active:
        message = f"running step(s) {active.replace(',', ', ')}"
        return _Verdict(c.RUNNING, c.REASON_RUNNING, message, active)
    return _Verdict(c.PENDING, c.REASON_PENDING, "waiting to start", "")


def _summarize(new: MLJobStatus, old: MLJobStatus, verdict: _Verdict, now: datetime) -> MLJobStatus:
    """Fill phase, progress, currentStep, message, times and conditions."""
    entries = new.get("steps") or []
    done = sum(e["phase"] == c.SUCCEEDED for e in entries)
    new.update({"phase": verdict.phase, "currentStep": verdict.current})
    new["progress"] = f"{done}/{len(entries)}"
    new["message"] = verdict.message
    _set_times(new, old, now)
    generation = new["observedGeneration"]
    new["conditions"] = conditions(
        verdict.phase, verdict.reason, verdict.message, generation, old, now
    )
    return new


def _invalid_status(mljob: Obj, old: MLJobStatus, errors: list[str]) -> MLJobStatus:
    kept = (*_CARRIED_ALL, "steps")
    status = cast(MLJobStatus, {k: copy.deepcopy(v) for k, v in old.items() if k in kept})
    entries = status.setdefault("steps", [])
    message = _clip("invalid spec: " + "; ".join(errors))
    status.update({"observedGeneration": _generation(mljob), "phase": c.FAILED})
    done = sum(e.get("phase") == c.SUCCEEDED for e in entries)
    status.update({"message": message, "currentStep": "", "progress": f"{done}/{len(entries)}"})
    return status


def _finish(
    old: MLJobStatus,
    new: MLJobStatus,
    mljob: Obj,
    now: datetime,
    actions: list[Action] | None = None,
    requeue_after: float | None = None,
) -> Plan:
    if "conditions" not in new:  # the invalid-spec path
        _set_times(new, old, now)
        new["conditions"] = conditions(
            c.FAILED, c.REASON_INVALID_SPEC, new["message"], new["observedGeneration"], old, now
        )
    return Plan(actions or [], new, diff_events(old, new), requeue_after)


def _set_times(new: MLJobStatus, old: MLJobStatus, now: datetime) -> None:
    started = old.get("startTime") or (_ts(now) if new["phase"] != c.PENDING else None)
    new.pop("startTime", None)
    new.pop("completionTime", None)
    if started:
        new["startTime"] = started
    if new["phase"] in c.TERMINAL_PHASES:
        ended_before = old.get("phase") in c.TERMINAL_PHASES and old.get("completionTime")
        new["completionTime"] = old["completionTime"] if ended_before else _ts(now)


# (Ready, Reconciling, Stalled, Succeeded) statuses per pipeline phase.
_CONDITION_TABLE = {
    c.PENDING: ("False", "True", "False", "Unknown"),
    c.RUNNING: ("False", "True", "False", "Unknown"),
    c.SUSPENDED: ("False", "False", "False", "Unknown"),
    c.SUCCEEDED: ("True", "False", "False", "True"),
    c.FAILED: ("False", "False", "True", "False"),
}


def conditions(
    phase: str, reason: str, message: str, generation: int, old: MLJobStatus, now: datetime
) -> list[Condition]:
    """metav1.Conditions for the phase; lastTransitionTime survives when a status is unchanged."""
    previous = {x["type"]: x for x in old.get("conditions") or []}
    result: list[Condition] = []
    for kind, value in zip(c.CONDITION_TYPES, _CONDITION_TABLE[phase], strict=True):
        before = previous.get(kind)
        changed = before is None or before["status"] != value
        result.append(
            {
                "type": kind,
                "status": value,
                "observedGeneration": generation,
                "lastTransitionTime": _ts(now)
                if changed or not before
                else before["lastTransitionTime"],
                "reason": reason,
                "message": message,
            }
        )
    return result


# Condition reason suffix per operator-decided childState (anything else: "Failed").
_OUTCOME = {
    c.CHILD_STATE_CREATE_REJECTED: "Rejected",
    c.CHILD_STATE_DELETED: "Deleted",
    c.CHILD_STATE_START_DEADLINE: "StartDeadlineExceeded",
    c.CHILD_STATE_ACTIVE_DEADLINE: "ActiveDeadlineExceeded",
    c.CHILD_STATE_CANCELLED: "Cancelled",
}


def _failure_reason(entry: StepStatus) -> str:
    if entry["childState"] == c.CHILD_STATE_PIPELINE_DEADLINE:
        return c.REASON_DEADLINE_EXCEEDED
    # metav1.Condition reasons allow [A-Za-z0-9_,:] only: CamelCase the step name.
    camel = "".join(part.capitalize() for part in entry["name"].split("-"))
    return f"Step{camel}{entry['kind']}{_OUTCOME.get(entry['childState'], 'Failed')}"


def _failure_message(entry: StepStatus) -> str:
    child = f"{entry['kind']} {entry['child']}".strip()
    return _line(f"step {entry['name']} ({child}) failed: {entry['message'] or 'no message'}")


# --- events ------------------------------------------------------------------------------------
def diff_events(old: MLJobStatus, new: MLJobStatus) -> list[Event]:
    """Kubernetes Events for what changed between two statuses (none when nothing did)."""
    events: list[Event] = []
    same_run = old.get("run", new.get("run")) == new.get("run")
    if not same_run:
        events.append(
            Event("Normal", c.EVENT_RUN_STARTED, f"run {new.get('run')}: the spec changed")
        )
    before = {e["name"]: e for e in old.get("steps") or []} if same_run else {}
    for entry in new.get("steps") or []:
        events += _step_events(before.get(entry["name"]), entry)
    old_cluster, new_cluster = _cluster_name(old), _cluster_name(new)
    if new_cluster and new_cluster != old_cluster:
        events.append(Event("Normal", c.EVENT_RAY_CLUSTER_CREATED, f"RayCluster {new_cluster}"))
    if new.get("childrenDeletedTime") and not old.get("childrenDeletedTime"):
        message = "ttlSecondsAfterFinished passed: deleted the children"
        events.append(Event("Normal", c.EVENT_CHILDREN_DELETED, message))
    phase = new.get("phase")
    if phase != old.get("phase") and phase in c.EVENT_PIPELINE:
        kind = "Warning" if phase == c.FAILED else "Normal"
        events.append(Event(kind, c.EVENT_PIPELINE[phase], new.get("message", "")))
    return events


def _step_events(before: StepStatus | None, entry: StepStatus) -> list[Event]:
    name, child = entry["name"], f"{entry['kind']} {entry['child']}"
    events = []
    if entry["attempts"] > (before["attempts"] if before else 0):
        events.append(Event("Normal", c.EVENT_STEP_STARTED, f"step {name}: created {child}"))
    if entry["phase"] != (before["phase"] if before else None):
        if entry.get("cachedFromRun"):
            message = f"step {name}: {entry['message']}"
            events.append(Event("Normal", c.EVENT_STEP_CACHED, message))
        elif entry["phase"] == c.SUCCEEDED:
            events.append(Event("Normal", c.EVENT_STEP_SUCCEEDED, f"step {name}: {child} done"))
        elif entry["phase"] in (c.FAILED, c.RETRYING):
            reason = c.EVENT_STEP_FAILED if entry["phase"] == c.FAILED else c.EVENT_STEP_RETRYING
            message = f"step {name}: {child}: {entry['message']}"
            if entry.get("details"):  # the end of the child's own text, under kopf's cut
                room = c.MAX_EVENT_MESSAGE - len(message) - 1
                message += "\n" + messages.tail(entry["details"], room)
            events.append(Event("Warning", reason, messages.clip(message, c.MAX_EVENT_MESSAGE)))
    return events


# --- helpers -----------------------------------------------------------------------------------
def _cluster_name(status: MLJobStatus) -> str:
    shared = status.get("rayCluster")
    return shared["name"] if shared else ""


def _by_key(children: list[Obj]) -> dict[ChildKey, Obj]:
    return {(ch.get("kind", ""), ch["metadata"]["name"]): ch for ch in children}


def _is_active(entry: StepStatus) -> bool:
    """Started and not ended (a live child, or waiting for its next attempt)."""
    return entry.get("attempts", 0) > 0 and entry["phase"] in (c.PENDING, c.RUNNING, c.RETRYING)


_has_live_child = steps.has_live_child


def _ended(entries: list[StepStatus]) -> bool:
    failed = any(e["phase"] == c.FAILED for e in entries)
    return failed or all(e["phase"] == c.SUCCEEDED for e in entries)


def _generation(mljob: Obj) -> int:
    return int(mljob.get("metadata", {}).get("generation") or 0)


def _since(*stamps: str | None) -> datetime | None:
    """The latest of the given timestamps (deadline clocks restart on resume)."""
    moments = [_parse(s) for s in stamps if s]
    return max(moments) if moments else None


def _seconds_since(now: datetime, *stamps: str | None) -> float:
    since = _since(*stamps)
    return (now - since).total_seconds() if since else 0.0


_ts = steps.timestamp


@functools.lru_cache(maxsize=4096)
def _parse(stamp: str) -> datetime:
    # Cached: every reconcile parses the same few stamps of its MLJob again (its deadlines),
    # and strptime was the planner's costliest line (py-spy, issue 14).
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _line(text: str) -> str:
    """One line naming the cause, for step messages, status.message and conditions."""
    return messages.one_line(text, c.MAX_SUMMARY)


def _clip(text: str) -> str:
    return text if len(text) <= c.MAX_MESSAGE else text[: c.MAX_MESSAGE - 3] + "..."
