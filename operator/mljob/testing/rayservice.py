"""RayService statuses exactly as KubeRay v1.6.1 writes them (`controllers/ray/
rayservice_controller.go`: `calculateStatus`, `calculateConditions`,
`reconcilePromotionAndServingStatus`), for the tests that play KubeRay: the unit tests of the
state mapper and the planner, and the integration tests that patch a RayService's /status.

The moments of a RayService's life, each a whole status as one reconcile writes it:
- `deploying`: a new cluster is the *pending* one (the first deployment, or a new spec rolled
  out next to the serving cluster: UpgradeInProgress True), its applications as Ray Serve
  reports them; Ready stays whatever the serve Service's endpoints say.
- `serving`: the pending cluster was promoted (its name moved to activeServiceStatus, the
  pending status emptied), Ready True with NonZeroServeEndpoints, UpgradeInProgress False.
Every status carries `observedGeneration` = the generation KubeRay reconciled.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
TIME = "2026-12-06T03:00:00Z"


def _condition(kind: str, status: str, reason: str, message: str, generation: int) -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": TIME,
    }


def _ready(generation: int) -> Obj:
    """Ready True: KubeRay's reason once the serve Service has endpoints."""
    return _condition(
        "Ready",
        "True",
        "NonZeroServeEndpoints",
        "Number of serve endpoints is greater than 0",
        generation,
    )


def apps(status: str = "RUNNING", message: str = "", app: str = "serve") -> Obj:
    """applicationStatuses as KubeRay copies them from the dashboard's Serve status."""
    deployment = {"status": "HEALTHY" if status == "RUNNING" else "UPDATING", "message": ""}
    return {
        app: {
            "status": status,
            "message": message,
            "serveDeploymentStatuses": {"Model": deployment},
        }
    }


def cluster_status(name: str, applications: Obj | None) -> Obj:
    """One of activeServiceStatus / pendingServiceStatus (rayClusterStatus trimmed to its state)."""
    out: Obj = {"rayClusterName": name, "rayClusterStatus": {"state": "ready"}}
    if applications is not None:
        out["applicationStatuses"] = applications
    return out


def deploying(
    generation: int,
    pending: str,
    applications: Obj | None,
    active: str = "",
    endpoints: int = 0,
) -> Obj:
    """A new cluster `pending` deploys `applications` (None: its head is not ready, KubeRay has
    not asked the dashboard yet); `active`, if any, keeps serving (an upgrade)."""
    upgrade = (
        _condition(
            "UpgradeInProgress",
            "True",
            "BothActivePendingClustersExist",
            "Both active and pending Ray clusters exist",
            generation,
        )
        if active
        else _condition(
            "UpgradeInProgress", "False", "Initializing", "RayService is initializing", generation
        )
    )
    ready = (
        _ready(generation)
        if endpoints
        else _condition("Ready", "False", "Initializing", "RayService is initializing", generation)
    )
    status: Obj = {
        "observedGeneration": generation,
        "conditions": [ready, upgrade],
        "numServeEndpoints": endpoints,
        "serviceStatus": "Running" if endpoints else "NotRunning",
        "pendingServiceStatus": cluster_status(pending, applications),
        "lastUpdateTime": TIME,
    }
    # During an upgrade KubeRay reconciles Serve on the pending cluster only: the active one's
    # applicationStatuses are left out (nil) until the switch.
    status["activeServiceStatus"] = cluster_status(active, None) if active else {}
    return status


def serving(generation: int, active: str, applications: Obj | None = None) -> Obj:
    """`active` serves after its promotion: Ready True, no pending cluster."""
    return {
        "observedGeneration": generation,
        "conditions": [
            _ready(generation),
            _condition(
                "UpgradeInProgress",
                "False",
                "NoPendingCluster",
                "Active Ray cluster exists and no pending Ray cluster",
                generation,
            ),
        ],
        "numServeEndpoints": 1,
        "serviceStatus": "Running",
        "activeServiceStatus": cluster_status(active, applications or apps()),
        "pendingServiceStatus": {},
        "lastUpdateTime": TIME,
    }


def validation_failed(message: str) -> Obj:
    """KubeRay's validation refused the spec: that path writes no observedGeneration."""
    return {
        "conditions": [_condition("Ready", "False", "ValidationFailed", message, 0)],
        "lastUpdateTime": TIME,
    }
