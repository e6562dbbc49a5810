"""validation's KubeRay rules on small cluster specs, one rule per case (what a merged template
can break: KubeRay v1.7 refuses such a RayCluster after the pipeline started)."""

from __future__ import annotations

from typing import Any

import pytest

from mljob.validation import ray_cluster_spec_errors

Obj = dict[str, Any]
RESTART = "spec.workerGroupSpecs[0].template.spec.restartPolicy"


def cluster(ray_version: str, worker_restart: str | None, **options: Any) -> Obj:
    image = {"name": "ray", "image": "registry.example.com/app:1"}
    worker_pod: Obj = {"containers": [image]}
    if worker_restart is not None:
        worker_pod["restartPolicy"] = worker_restart
    spec: Obj = {
        "rayVersion": ray_version,
        "enableInTreeAutoscaling": True,
        "headGroupSpec": {"template": {"spec": {"containers": [image]}}},
        "workerGroupSpecs": [{"groupName": "w", "template": {"spec": worker_pod}}],
    }
    if options:
        spec["autoscalerOptions"] = options
    return spec


def restart_errors(spec: Obj) -> list[str]:
    return [e for e in ray_cluster_spec_errors(spec, "spec") if "restartPolicy" in e]


V2_ERROR = f"{RESTART}: autoscaler v2 (elastic workers) needs Never or unset, got Always"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # autoscaler v2 asked for: a worker restarting Always is refused, whatever the Ray
        (cluster("2.40.0", "Always", version="v2"), [V2_ERROR]),
        # v2 by default from Ray 2.47 on
        (cluster("2.47.0", "Always"), [V2_ERROR]),
        (cluster("2.46.0", "Always"), []),
        # v1 asked for: no such rule, even on a newer Ray
        (cluster("2.60.0", "Always", version="v1"), []),
        # Never or unset pass
        (cluster("2.60.0", "Never"), []),
        (cluster("2.60.0", None), []),
        (cluster("2.60.0", ""), []),
    ],
)
def test_autoscaler_v2_needs_workers_that_never_restart(spec: Obj, expected: list[str]) -> None:
    assert restart_errors(spec) == expected


def test_without_autoscaling_the_restart_policy_is_free() -> None:
    spec = cluster("2.60.0", "Always")
    spec["enableInTreeAutoscaling"] = False
    spec["workerGroupSpecs"][0].update(minReplicas=1, maxReplicas=1)
    assert restart_errors(spec) == []
