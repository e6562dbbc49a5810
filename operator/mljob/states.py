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


# --- RayService: KubeRay v1.7 `rayservice_types.go`, as `rayservice_controller.go` writes it
# KubeRay deploys a new cluster as the *pending* one (status.pendingServiceStatus: its name, its
# applications) and promotes it to *active* once all its applications are RUNNING and the serve
# Service points at it; the first deployment goes the same way. Every reconcile that gets past
# KubeRay's validation writes observedGeneration = metadata.generation in the same status write
# as its decisions, so a spec change (a new run) is seen there together with the new pending
# cluster and UpgradeInProgress True (the MLJob always asks for upgradeStrategy NewCluster).
# Serving the current spec therefore means: observedGeneration is current, no UpgradeInProgress
# (the new cluster was promoted), Ready True (the serve Service has endpoints:
# NonZeroServeEndpoints) and every application of the active cluster RUNNING.
# Failure: an application of the cluster being deployed (the pending one, else the active one)
# DEPLOY_FAILED (Ray Serve gives up on it until the config changes; during an upgrade the
# active cluster keeps serving the old version), Ready False with reason InitializingTimeout
# (terminal in KubeRay, whatever the generation), or ValidationFailed for a generation KubeRay
# never got past (that path writes no observedGeneration). UNHEALTHY is not final: Serve
# restarts the replicas, so it only shows in the message (a step deadline bounds the wait).
RAY_SERVICE_TIMEOUT = "InitializingTimeout"
RAY_SERVICE_INVALID = "ValidationFailed"
SERVE_APP_FAILED = "DEPLOY_FAILED"
SERVE_APP_RUNNING = "RUNNING"
SERVE_APP_UNHEALTHY = "UNHEALTHY"
RAY_SERVICE_UPDATING = "Updating"  # raw state while KubeRay has not reconciled the current spec
RAY_SERVICE_UPGRADING = "UpgradeInProgress"


def ray_service_state(service: dict[str, Any]) -> ChildState:
    status = service.get("status") or {}
    if not status:
        return ChildState(c.PENDING, "")
    conditions = {x.get("type"): x for x in status.get("conditions") or [] if isinstance(x, dict)}
    ready = conditions.get("Ready") or {}
    reason = ready.get("reason") or ""
    generation = (service.get("metadata") or {}).get("generation")
    current = generation is None or (status.get("observedGeneration") or 0) >= generation
    if ready.get("status") == "False" and (
        reason == RAY_SERVICE_TIMEOUT or (reason == RAY_SERVICE_INVALID and not current)
    ):
        return _described(c.FAILED, reason, _join(reason, ready.get("message")))
    active = status.get("activeServiceStatus") or {}
    pending = status.get("pendingServiceStatus") or {}
    clusters = bool(active.get("rayClusterName") or pending.get("rayClusterName"))
    if not current:
        # Everything else in status is about an older spec (the previous run's).
        message = f"KubeRay has not taken generation {generation} of the RayService yet"
        return ChildState(c.RUNNING if clusters else c.PENDING, RAY_SERVICE_UPDATING, message)
    upgrading = (conditions.get(RAY_SERVICE_UPGRADING) or {}).get("status") == "True"
    deploying = pending if pending.get("rayClusterName") else active
    apps = deploying.get("applicationStatuses") or {}
    raw = RAY_SERVICE_UPGRADING if upgrading else reason or status.get("serviceStatus") or ""
    failed = sorted(n for n, a in apps.items() if (a or {}).get("status") == SERVE_APP_FAILED)
    if failed:
        text = _serve_app_message(failed[0], apps[failed[0]])
        return _described(c.FAILED, f"{raw}/{SERVE_APP_FAILED}" if raw else SERVE_APP_FAILED, text)
    if _serving(status, conditions, upgrading):
        # The URL needs the route (spec.serveConfigV2), which the glue does not keep of a
        # child: the planner names it from the step (status.serving).
        message = f"serving on the RayCluster {active.get('rayClusterName')}"
        return ChildState(c.SUCCEEDED, raw or "Ready", message)
    unhealthy = sorted(n for n, a in apps.items() if (a or {}).get("status") == SERVE_APP_UNHEALTHY)
    if unhealthy:
        text = _serve_app_message(unhealthy[0], apps[unhealthy[0]])
        return _described(c.RUNNING, f"{raw}/{SERVE_APP_UNHEALTHY}" if raw else "UNHEALTHY", text)
    message = ready.get("message") or ""
    if upgrading:
        message = (
            f"rolling out on the new cluster {pending.get('rayClusterName')}; "
            f"{active.get('rayClusterName')} still serves"
        )
    return _described(c.RUNNING if clusters else c.PENDING, raw, message)


def _serving(status: dict[str, Any], conditions: dict[Any, Any], upgrading: bool) -> bool:
    """The active cluster serves the current spec (observedGeneration checked by the caller)."""
    apps = (status.get("activeServiceStatus") or {}).get("applicationStatuses") or {}
    all_running = bool(apps) and all(
        (a or {}).get("status") == SERVE_APP_RUNNING for a in apps.values()
    )
    ready = (conditions.get("Ready") or {}).get("status") == "True" or (
        not conditions and status.get("serviceStatus") == "Running"  # KubeRay before v1.3
    )
    # No pending cluster needs no check of its own: KubeRay sets UpgradeInProgress True while
    # both exist, and before the first promotion the active cluster has no applications.
    return ready and all_running and not upgrading


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


def serve_endpoint(service: dict[str, Any]) -> tuple[str, int, str]:
    """A RayService's in-cluster endpoint: its serve Service (KubeRay names it
    `<rayservice>-serve-svc`), the Serve port and the application's route prefix."""
    import yaml  # only here: the states of the other kinds need no YAML

    name = (service.get("metadata") or {}).get("name", "")
    try:
        config = yaml.safe_load((service.get("spec") or {}).get("serveConfigV2") or "") or {}
        route = (config.get("applications") or [{}])[0].get("route_prefix") or "/"
    except (yaml.YAMLError, AttributeError, IndexError):
        route = "/"
    return f"{name}-serve-svc", c.RAY_SERVE_PORT, route


def serve_url(service: dict[str, Any]) -> str:
    """The in-cluster URL of a RayService's application: its serve Service, port and route."""
    namespace = (service.get("metadata") or {}).get("namespace", "default")
    name, port, route = serve_endpoint(service)
    return f"http://{name}.{namespace}.svc:{port}{route}"


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
