"""The pure planning core: (MLJob, observed children, now) -> actions + new status + events.

No I/O. The previous `status` is the planner's memory: a step that succeeded stays succeeded
when its child disappears (Spark `timeToLiveSeconds`), a failed step stays failed, and a child
recorded in status is never created again. Child names are deterministic, so a status write lost
after a create is repaired by adopting the existing child (or by the glue's 409 on re-create).

Shared RayCluster (spec.rayCluster): it is created in the same plan as the first RayJob that
needs it, ahead of it, and the RayJob is NOT held back until HeadPodReady: KubeRay's RayJob
controller itself waits in Initializing until the selected cluster is ready before submitting
(reference §2.3), so waiting here would only add a reconcile round trip. The cluster's readiness
(HeadPodReady, never the sticky status.state) is mirrored into status.rayCluster for users. It is
deleted once the pipeline has ended and no Ray step is still active on it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from mljob import builders, naming, states
from mljob import constants as c
from mljob.validation import dependencies, validate

Obj = dict[str, Any]


@dataclass(frozen=True)
class Create:
    """Create this full object (a 409 means it exists already: treat as done)."""

    body: Obj
    step: str | None = None  # None for the shared RayCluster

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]


@dataclass(frozen=True)
class Delete:
    api_version: str
    kind: str
    name: str
    namespace: str


Action = Create | Delete


class Event(NamedTuple):
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    status: Obj = field(default_factory=dict)  # the complete new MLJob status
    events: list[Event] = field(default_factory=list)


def plan(mljob: Obj, children: list[Obj], now: datetime) -> Plan:
    old = mljob.get("status") or {}
    errors = validate(mljob)
    if errors:
        return _finish(old, _invalid_status(mljob, old, errors), mljob, now)
    spec = mljob["spec"]
    run = old.get("run") or 1
    observed = {(ch.get("kind"), ch["metadata"]["name"]): ch for ch in children}
    previous = {e["name"]: e for e in old.get("steps") or []}
    entries = [
        _observe_step(mljob, step, previous.get(step["name"]), observed, run, now)
        for step in spec["steps"]
    ]
    new: Obj = {"run": run, "observedGeneration": _generation(mljob), "steps": entries}
    if old.get("rayCluster"):
        new["rayCluster"] = dict(old["rayCluster"])
    actions: list[Action] = []
    if not spec.get("suspend") and not any(e["phase"] == c.FAILED for e in entries):
        actions = _start_runnable_steps(mljob, spec["steps"], new, observed, run, now)
    new = _summarize(new, old, bool(spec.get("suspend")), now)
    actions += _track_shared_cluster(mljob, new, observed, run)
    return _finish(old, new, mljob, now, actions)


def record_create_rejected(status: Obj, step_name: str | None, message: str, now: datetime) -> Plan:
    """The API server refused a child create (422, admission): fail the step once, with the
    server's message, so the planner never retries it in a loop. step_name None means the shared
    RayCluster was refused; the Ray steps already started on it fail."""
    new = copy.deepcopy(status)
    for entry in new.get("steps") or []:
        refused_cluster = step_name is None and entry["kind"] == c.RAY_JOB_KIND
        if entry["name"] == step_name or (refused_cluster and _is_active(entry)):
            what = "RayCluster" if step_name is None else f"{entry['kind']} {entry['child']}"
            entry.update(
                phase=c.FAILED,
                childState=c.CHILD_STATE_CREATE_REJECTED,
                message=_clip(f"the API server rejected {what}: {message}"),
                completionTime=_ts(now),
            )
    return Plan([], _summarize(new, status, False, now), diff_events(status, new))


# --- steps ---------------------------------------------------------------------------------------
def _observe_step(
    mljob: Obj, step: Obj, previous: Obj | None, observed: dict, run: int, now: datetime
) -> Obj:
    kind = builders.step_kind(step)
    entry: Obj = {"name": step["name"], "kind": kind, "child": "", "phase": c.PENDING}
    entry.update({"childState": "", "attempts": 0, "message": ""})
    if previous and previous.get("kind") == kind:
        entry.update(previous)
    if entry["phase"] in c.TERMINAL_PHASES:
        return entry  # memory: the outcome is recorded, whatever happens to the child now
    if entry["attempts"] == 0:
        first = builders.step_child_name(mljob, step, run, 1)
        if (kind, first) not in observed:
            return entry
        # Created, but the status write that recorded it was lost: adopt it.
        entry.update(child=first, attempts=1, startTime=_ts(now))
    child = observed.get((kind, entry["child"]))
    if child is None:
        # Created but not seen yet (watch lag), or deleted by someone else.
        # TODO(lifecycle issue): fail or retry a step whose child stays gone.
        return entry
    state = states.child_state(child)
    entry.update(phase=state.phase, childState=state.raw, message=_clip(state.message))
    if state.phase in c.TERMINAL_PHASES:
        entry["completionTime"] = _ts(now)
    return entry


def _start_runnable_steps(
    mljob: Obj, steps: list[Obj], status: Obj, observed: dict, run: int, now: datetime
) -> list[Action]:
    entries = {e["name"]: e for e in status["steps"]}
    deps = dependencies(steps)
    actions: list[Action] = []
    for step in steps:
        entry = entries[step["name"]]
        ready = all(entries[d]["phase"] == c.SUCCEEDED for d in deps[step["name"]])
        if entry["attempts"] or entry["phase"] != c.PENDING or not ready:
            continue
        if builders.step_kind(step) == c.RAY_JOB_KIND and mljob["spec"].get("rayCluster"):
            actions += _ensure_shared_cluster(mljob, status, observed, run)
        body = builders.build_step_child(mljob, step, run, 1)
        actions.append(Create(body, step["name"]))
        entry.update(child=body["metadata"]["name"], attempts=1, startTime=_ts(now))
    return actions


# --- shared RayCluster ---------------------------------------------------------------------------
def _ensure_shared_cluster(mljob: Obj, status: Obj, observed: dict, run: int) -> list[Action]:
    name = naming.ray_cluster_name(mljob["metadata"]["name"], run)
    if status.get("rayCluster", {}).get("name") == name:
        return []  # created before (maybe not observed yet): never twice
    status["rayCluster"] = {"name": name, "state": "Creating"}
    if (c.RAY_CLUSTER_KIND, name) in observed:
        return []
    return [Create(builders.build_ray_cluster(mljob, run))]


def _track_shared_cluster(mljob: Obj, status: Obj, observed: dict, run: int) -> list[Action]:
    shared = status.get("rayCluster")
    if not shared:
        return []
    cluster = observed.get((c.RAY_CLUSTER_KIND, shared["name"]))
    ended = status["phase"] in c.TERMINAL_PHASES
    ray_busy = any(e["kind"] == c.RAY_JOB_KIND and _is_active(e) for e in status["steps"])
    if cluster is None:
        if ended and shared["state"] in ("Deleting", "Ready", "Provisioning"):
            shared["state"] = "Deleted"
        return []
    if ended and not ray_busy:
        shared["state"] = "Deleting"
        ns = mljob["metadata"].get("namespace", "default")
        return [Delete(c.RAY_API_VERSION, c.RAY_CLUSTER_KIND, shared["name"], ns)]
    shared["state"] = states.ray_cluster_readiness(cluster).state
    return []


# --- pipeline summary and conditions --------------------------------------------------------------
def _summarize(new: Obj, old: Obj, suspended: bool, now: datetime) -> Obj:
    """Fill phase, progress, currentStep, message, times and conditions from new["steps"]."""
    entries = new["steps"]
    failed = [e for e in entries if e["phase"] == c.FAILED]
    done = sum(e["phase"] == c.SUCCEEDED for e in entries)
    active = [e["name"] for e in entries if _is_active(e)]
    if failed:
        phase, reason, message = c.FAILED, _failure_reason(failed[0]), _failure_message(failed[0])
        current = ",".join(e["name"] for e in failed)
    elif done == len(entries):
        phase, reason, message, current = c.SUCCEEDED, c.REASON_SUCCEEDED, "", ""
        message = f"all {done} steps succeeded"
    elif suspended:
        phase, reason, message = c.SUSPENDED, c.REASON_SUSPENDED, "spec.suspend is true"
        current = ",".join(active)
    elif active:
        phase, reason, current = c.RUNNING, c.REASON_RUNNING, ",".join(active)
        message = f"running step(s) {', '.join(active)}"
    else:
        phase, reason, message, current = c.PENDING, c.REASON_PENDING, "waiting to start", ""
    new.update(phase=phase, currentStep=current, progress=f"{done}/{len(entries)}")
    new["message"] = message
    _set_times(new, old, now)
    new["conditions"] = conditions(phase, reason, message, new["observedGeneration"], old, now)
    return new


def _invalid_status(mljob: Obj, old: Obj, errors: list[str]) -> Obj:
    status = {k: copy.deepcopy(v) for k, v in old.items() if k in ("run", "steps", "rayCluster")}
    steps = status.setdefault("steps", [])
    message = _clip("invalid spec: " + "; ".join(errors))
    status.update(observedGeneration=_generation(mljob), phase=c.FAILED, message=message)
    done = sum(e.get("phase") == c.SUCCEEDED for e in steps)
    status.update(currentStep="", progress=f"{done}/{len(steps)}")
    return status


def _finish(
    old: Obj, new: Obj, mljob: Obj, now: datetime, actions: list[Action] | None = None
) -> Plan:
    if "conditions" not in new:  # the invalid-spec path
        _set_times(new, old, now)
        new["conditions"] = conditions(
            c.FAILED, c.REASON_INVALID_SPEC, new["message"], new["observedGeneration"], old, now
        )
    return Plan(actions or [], new, diff_events(old, new))


def _set_times(new: Obj, old: Obj, now: datetime) -> None:
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
    phase: str, reason: str, message: str, generation: int, old: Obj, now: datetime
) -> list[Obj]:
    """metav1.Conditions for the phase; lastTransitionTime survives when a status is unchanged."""
    previous = {x["type"]: x for x in old.get("conditions") or []}
    result = []
    for kind, value in zip(c.CONDITION_TYPES, _CONDITION_TABLE[phase], strict=True):
        before = previous.get(kind, {})
        changed = before.get("status") != value
        result.append(
            {
                "type": kind,
                "status": value,
                "observedGeneration": generation,
                "lastTransitionTime": _ts(now) if changed else before["lastTransitionTime"],
                "reason": reason,
                "message": message,
            }
        )
    return result


def _failure_reason(entry: Obj) -> str:
    # metav1.Condition reasons allow [A-Za-z0-9_,:] only: CamelCase the step name.
    camel = "".join(part.capitalize() for part in entry["name"].split("-"))
    outcome = "Rejected" if entry["childState"] == c.CHILD_STATE_CREATE_REJECTED else "Failed"
    return f"Step{camel}{entry['kind']}{outcome}"


def _failure_message(entry: Obj) -> str:
    child = f"{entry['kind']} {entry['child']}".strip()
    return _clip(f"step {entry['name']} ({child}) failed: {entry['message'] or 'no message'}")


# --- events ------------------------------------------------------------------------------------
def diff_events(old: Obj, new: Obj) -> list[Event]:
    """Kubernetes Events for what changed between two statuses (none when nothing did)."""
    events: list[Event] = []
    before = {e["name"]: e for e in old.get("steps") or []}
    for entry in new.get("steps") or []:
        events += _step_events(before.get(entry["name"], {}), entry)
    old_cluster = (old.get("rayCluster") or {}).get("name")
    new_cluster = (new.get("rayCluster") or {}).get("name")
    if new_cluster and new_cluster != old_cluster:
        events.append(Event("Normal", c.EVENT_RAY_CLUSTER_CREATED, f"RayCluster {new_cluster}"))
    phase = new.get("phase")
    if phase != old.get("phase") and phase in c.EVENT_PIPELINE:
        kind = "Warning" if phase == c.FAILED else "Normal"
        events.append(Event(kind, c.EVENT_PIPELINE[phase], new.get("message", "")))
    return events


def _step_events(before: Obj, entry: Obj) -> list[Event]:
    name, child = entry["name"], f"{entry['kind']} {entry['child']}"
    events = []
    if entry.get("attempts", 0) > before.get("attempts", 0):
        events.append(Event("Normal", c.EVENT_STEP_STARTED, f"step {name}: created {child}"))
    if entry["phase"] != before.get("phase"):
        if entry["phase"] == c.SUCCEEDED:
            events.append(Event("Normal", c.EVENT_STEP_SUCCEEDED, f"step {name}: {child} done"))
        elif entry["phase"] == c.FAILED:
            message = f"step {name}: {child} failed: {entry['message']}"
            events.append(Event("Warning", c.EVENT_STEP_FAILED, _clip(message)))
    return events


# --- helpers -----------------------------------------------------------------------------------
def _is_active(entry: Obj) -> bool:
    return entry.get("attempts", 0) > 0 and entry["phase"] in (c.PENDING, c.RUNNING)


def _generation(mljob: Obj) -> int:
    return int(mljob.get("metadata", {}).get("generation") or 0)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: str) -> str:
    return text if len(text) <= c.MAX_MESSAGE else text[: c.MAX_MESSAGE - 3] + "..."
