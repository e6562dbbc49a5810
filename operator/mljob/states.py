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


# --- RayService: KubeRay v1.7 `rayservice_types.go` ------------------------------------------
# Serving means the Ready condition is True (KubeRay sets it once the serve Service has at least
# one endpoint: reason NonZeroServeEndpoints), no upgrade is in progress, and every application
# of the active cluster is RUNNING. A Ready False with reason InitializingTimeout or
# ValidationFailed is KubeRay giving up; an application DEPLOY_FAILED is Ray Serve giving up on
# it (it stays so until the config changes). UNHEALTHY is not final: Serve restarts the
# replicas and KubeRay replaces the cluster after serviceUnhealthySecondThreshold, so it only
# shows in the message (a step deadline bounds the wait).
RAY_SERVICE_FAILED_REASONS = frozenset({"InitializingTimeout", "ValidationFailed"})
SERVE_APP_FAILED = "DEPLOY_FAILED"
SERVE_APP_RUNNING = "RUNNING"


def ray_service_state(service: dict[str, Any]) -> ChildState:
    status = service.get("status") or {}
    conditions = {x.get("type"): x for x in status.get("conditions") or [] if isinstance(x, dict)}
    ready = conditions.get("Ready") or {}
    upgrading = (conditions.get("UpgradeInProgress") or {}).get("status") == "True"
    apps = (status.get("activeServiceStatus") or {}).get("applicationStatuses") or {}
    failed = {n: a for n, a in apps.items() if (a or {}).get("status") == SERVE_APP_FAILED}
    raw = ready.get("reason") or status.get("serviceStatus") or ""
    if failed:
        name, app = sorted(failed.items())[0]
        text = _serve_app_message(name, app)
        return _described(c.FAILED, f"{raw}/{SERVE_APP_FAILED}" if raw else SERVE_APP_FAILED, text)
    if ready.get("status") == "False" and ready.get("reason") in RAY_SERVICE_FAILED_REASONS:
        return _described(c.FAILED, raw, _join(ready.get("reason"), ready.get("message")))
    all_running = bool(apps) and all(
        (a or {}).get("status") == SERVE_APP_RUNNING for a in apps.values()
    )
    serving = ready.get("status") == "True" or (
        not conditions and status.get("serviceStatus") == "Running"  # KubeRay before v1.3
    )
    if serving and all_running and not upgrading:
        return ChildState(c.SUCCEEDED, raw or "Ready", f"serving at {serve_url(service)}")
    unhealthy = sorted(n for n, a in apps.items() if (a or {}).get("status") == "UNHEALTHY")
    if unhealthy:
        text = _serve_app_message(unhealthy[0], apps[unhealthy[0]])
        return _described(c.RUNNING, f"{raw}/UNHEALTHY" if raw else "UNHEALTHY", text)
    phase = c.RUNNING if status.get("activeServiceStatus", {}).get("rayClusterName") else c.PENDING
    return _described(phase, raw, ready.get("message") or "")


def _serve_app_message(name: str, app: dict[str, Any]) -> str:
    """The application's own message, else its first failing deployment's."""
    status = app.get("status") or ""
    message = app.get("message") or ""
    if not message:
        for deployment, d in sorted((app.get("serveDeploymentStatuses") or {}).items()):
            if (d or {}).get("message"):
                message = f"deployment {deployment}: {d['message']}"
                break
    return f"Serve application {name} {status}: {message or 'no message'}"


def serve_url(service: dict[str, Any]) -> str:
    """The in-cluster URL of a RayService's application: its serve Service, port and route."""
    import yaml  # only here: the states of the other kinds need no YAML

    meta = service.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "default")
    try:
        config = yaml.safe_load((service.get("spec") or {}).get("serveConfigV2") or "") or {}
        route = (config.get("applications") or [{}])[0].get("route_prefix") or "/"
    except (yaml.YAMLError, AttributeError, IndexError):
        route = "/"
    return f"http://{name}-serve-svc.{namespace}.svc:{c.RAY_SERVE_PORT}{route}"


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
