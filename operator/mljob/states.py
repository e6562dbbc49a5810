"""Pure mappers from a child's upstream status to a step phase.

Tables follow the upstream types: the Spark operator v2.5.2 `api/v1beta2/sparkapplication_types.go`
(ApplicationStateType) and KubeRay v1.7.0 `ray-operator/apis/ray/v1/rayjob_types.go`
(JobDeploymentStatus) and `raycluster_types.go`. Unknown values map to a
non-terminal phase: the upstream schemas have no enum, and guessing "failed" would end a pipeline
on a version skew. A child's own message becomes one line naming the cause (messages.summarize);
when that line leaves text out, a bounded excerpt of it is kept as `details`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mljob import constants as c
from mljob import messages


@dataclass(frozen=True)
class ChildState:
    phase: str  # one of constants.STEP_PHASES
    raw: str  # the child's own state, shown as status.steps[].childState
    message: str = ""  # one line, at most constants.MAX_CHILD_SUMMARY characters
    details: str = ""  # an excerpt of the child's longer message (status.steps[].details)


def _described(phase: str, raw: str, text: str) -> ChildState:
    """A state whose message is `text` summarized; `details` only when the summary dropped
    something, so a short one-line message is never stored twice."""
    summary = messages.summarize(text, c.MAX_CHILD_SUMMARY)
    whole = summary == messages.one_line(text, len(text) + 1)
    return ChildState(phase, raw, summary, "" if whole else messages.excerpt(text, c.MAX_DETAILS))


# --- SparkApplication: status.applicationState.state -------------------------------------------
# "" is NEW (status may be missing entirely). Only COMPLETED and FAILED are terminal; SUCCEEDING
# and FAILING are transient (the restart policy decides), SUBMISSION_FAILED may be retried.
SPARK_STATE_PHASE = {
    "": c.PENDING,
    "SUBMITTED": c.PENDING,
    "PENDING_RERUN": c.PENDING,
    "INVALIDATING": c.PENDING,
    "RESUMING": c.PENDING,
    "SUBMISSION_FAILED": c.PENDING,
    "SUSPENDING": c.PENDING,
    "SUSPENDED": c.PENDING,
    "RUNNING": c.RUNNING,
    "SUCCEEDING": c.RUNNING,
    "FAILING": c.RUNNING,
    "UNKNOWN": c.RUNNING,
    "COMPLETED": c.SUCCEEDED,
    "FAILED": c.FAILED,
}


def spark_application_state(app: dict[str, Any]) -> ChildState:
    app_state = (app.get("status") or {}).get("applicationState") or {}
    raw = app_state.get("state") or ""
    phase = SPARK_STATE_PHASE.get(raw)
    if phase is None:
        return ChildState(c.PENDING, raw, f"unrecognised SparkApplication state {raw!r}")
    message = app_state.get("errorMessage") or ""
    if phase == c.FAILED and not message:
        message = "SparkApplication failed without an error message"
    return _described(phase, raw, message)


# --- RayJob: status.jobDeploymentStatus (+ jobStatus only to qualify Complete) -----------------
# jobStatus alone can lie (RUNNING after Failed, kuberay#2314). ValidationFailed is never left.
# Retrying: a retry by backoffLimit is in progress; a written Failed is always final.
RAY_DEPLOYMENT_PHASE = {
    "": c.PENDING,
    "New": c.PENDING,
    "Initializing": c.PENDING,
    "Waiting": c.PENDING,
    "Suspending": c.PENDING,
    "Suspended": c.PENDING,
    "Running": c.RUNNING,
    "Retrying": c.RUNNING,
    "Failed": c.FAILED,
    "ValidationFailed": c.FAILED,
}


def ray_job_state(job: dict[str, Any]) -> ChildState:
    status = job.get("status") or {}
    deployment = status.get("jobDeploymentStatus") or ""
    job_status = status.get("jobStatus") or ""
    raw = f"{deployment}/{job_status}" if job_status else deployment
    message = _join(status.get("reason"), status.get("message"))
    if deployment == "Complete":
        if job_status == "SUCCEEDED":
            return _described(c.SUCCEEDED, raw, message)
        # Complete+STOPPED means someone stopped the Ray job: the step did not do its work.
        return _described(c.FAILED, raw, message or f"Ray job ended with jobStatus {job_status}")
    phase = RAY_DEPLOYMENT_PHASE.get(deployment)
    if phase is None:
        return ChildState(c.PENDING, raw, f"unrecognised RayJob jobDeploymentStatus {deployment!r}")
    if phase == c.FAILED and not message:
        message = f"RayJob {deployment}"
    return _described(phase, raw, message)


def _join(reason: str | None, message: str | None) -> str:
    return ": ".join(part for part in (reason, message) if part)


# --- RayCluster: readiness from the live HeadPodReady condition, not the sticky status.state ----
@dataclass(frozen=True)
class ClusterReadiness:
    ready: bool
    state: str  # "Ready" | "Provisioning" | the HeadPodReady reason (e.g. ImagePullBackOff)
    message: str = ""


def ray_cluster_readiness(cluster: dict[str, Any]) -> ClusterReadiness:
    conditions = (cluster.get("status") or {}).get("conditions") or []
    head = next((x for x in conditions if x.get("type") == "HeadPodReady"), None)
    if head is None:
        return ClusterReadiness(False, "Provisioning")
    if head.get("status") == "True":
        return ClusterReadiness(True, "Ready")
    return ClusterReadiness(False, head.get("reason") or "Provisioning", head.get("message") or "")


def child_state(child: dict[str, Any]) -> ChildState:
    """Dispatch on the child's kind (a step child: SparkApplication or RayJob), by kinds.py."""
    from mljob import kinds  # kinds.py imports this module: the table is read at call time

    return kinds.child_state(child)
