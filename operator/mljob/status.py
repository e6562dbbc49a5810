"""The shape of `MLJob.status`, as the planner writes it and the CRD schema declares it.

TypedDicts, so the type checker follows every key the planner reads or writes; a unit test
(tests/unit/test_status_types.py) checks that they name exactly the fields of the CRD's status
schema, so code and schema cannot drift apart.
"""

# No `from __future__ import annotations`: NotRequired must be evaluated for __required_keys__.
from typing import NotRequired, TypedDict


class FailureRecord(TypedDict):
    """One failed attempt of a step (status.steps[].failures, the last few)."""

    attempt: int
    child: str
    message: str
    time: str


class StepStatus(TypedDict):
    """One entry of status.steps: the step's current attempt and how it is going."""

    name: str
    kind: str  # the child kind: SparkApplication or RayJob
    child: str  # the current attempt's child name ("" before the first)
    phase: str  # constants.STEP_PHASES
    childState: str  # the child's own state, or one the operator decided (constants.CHILD_STATE_*)
    attempts: int
    message: str
    startTime: NotRequired[str]
    completionTime: NotRequired[str]
    nextAttemptTime: NotRequired[str]
    childSuspended: NotRequired[bool]
    failures: NotRequired[list[FailureRecord]]
    details: NotRequired[str]
    cachedFromRun: NotRequired[int]  # not run: the outputs of this earlier run are reused


class SharedClusterStatus(TypedDict):
    """status.rayCluster: the run's shared RayCluster."""

    name: str
    state: str
    suspended: NotRequired[bool]
    message: NotRequired[str]


class RunRecord(TypedDict):
    """One previous run (status.runs)."""

    run: int
    phase: str
    message: str
    completionTime: str
    startTime: NotRequired[str]


class CacheRecord(TypedDict):
    """A succeeded step whose outputs a later run may reuse (status.cache, mljob.fingerprint)."""

    step: str
    fingerprint: str
    run: int  # the run whose output location holds its outputs
    inputs: dict[str, int]  # dependency -> the run whose outputs it read


class ServingStatus(TypedDict):
    """A serve step's RayService that serves a model (status.serving): its endpoint and which
    run's model answers there. Kept across runs until the RayService is deleted."""

    step: str
    rayService: str
    service: str  # KubeRay's serve Service, `<rayService>-serve-svc`
    port: int
    route: str
    url: str
    liveRun: int  # the run whose model is live (a newer run's shows once it serves)
    since: str  # when that run's model started serving


class Condition(TypedDict):
    """A metav1.Condition."""

    type: str
    status: str
    observedGeneration: int
    lastTransitionTime: str
    reason: str
    message: str


class MLJobStatus(TypedDict, total=False):
    """MLJob.status. Every key is optional: an MLJob nobody has seen yet has no status."""

    phase: str
    run: int
    specHash: str
    runs: list[RunRecord]
    resumeTime: str
    childrenDeletedTime: str
    observedGeneration: int
    startTime: str
    completionTime: str
    currentStep: str
    progress: str
    message: str
    steps: list[StepStatus]
    rayCluster: SharedClusterStatus
    serving: list[ServingStatus]
    conditions: list[Condition]
    cache: list[CacheRecord]
