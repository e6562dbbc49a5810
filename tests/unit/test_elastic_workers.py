"""Elastic workers (issue 12): minReplicas < maxReplicas turns KubeRay's in-tree autoscaler on
in the generated cluster spec (a step's own cluster and the shared RayCluster); the result
passes validate(), which checks it against the vendored KubeRay v1.7 CRDs."""

from __future__ import annotations

from typing import Any

import pytest

from mljob import builders
from mljob.testing.corpus import mljob, ray_step, shared_cluster_mljob
from mljob.validation import validate


def _step_cluster(workers: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    step = ray_step("train")
    step["ray"]["workers"] = workers
    job = mljob([step])
    return job, builders.build_step_child(job, step, 1, 1)["spec"]["rayClusterSpec"]


# (workers, (replicas, minReplicas, maxReplicas) of the group, autoscaler options or None)
CASES: list[tuple[dict[str, Any], tuple[int, int, int], dict[str, Any] | None]] = [
    ({"replicas": 2}, (2, 2, 2), None),
    ({"cpu": "2"}, (1, 1, 1), None),  # one worker by default, fixed
    ({"replicas": 2, "minReplicas": 2, "maxReplicas": 2}, (2, 2, 2), None),
    (
        {"replicas": 1, "maxReplicas": 4},
        (1, 1, 4),
        {"upscalingMode": "Default", "idleTimeoutSeconds": 60},
    ),
    (
        {"replicas": 2, "minReplicas": 0, "maxReplicas": 8, "idleTimeoutSeconds": 300},
        (2, 0, 8),
        {"upscalingMode": "Default", "idleTimeoutSeconds": 300},
    ),
    (
        {"minReplicas": 1, "maxReplicas": 3, "upscalingMode": "Conservative"},
        (1, 1, 3),
        {"upscalingMode": "Conservative", "idleTimeoutSeconds": 60},
    ),
    (
        {"replicas": 3, "minReplicas": 0, "upscalingMode": "Aggressive", "idleTimeoutSeconds": 0},
        (3, 0, 3),
        {"upscalingMode": "Aggressive", "idleTimeoutSeconds": 0},
    ),
]


@pytest.mark.parametrize(("workers", "sizes", "autoscaler"), CASES)
def test_step_cluster(
    workers: dict[str, Any], sizes: tuple[int, int, int], autoscaler: dict[str, Any] | None
) -> None:
    job, spec = _step_cluster(workers)
    (group,) = spec["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == sizes
    if autoscaler is None:
        assert "enableInTreeAutoscaling" not in spec and "autoscalerOptions" not in spec
    else:
        assert spec["enableInTreeAutoscaling"] is True
        assert spec["autoscalerOptions"] == autoscaler
    assert validate(job) == []  # KubeRay's rules and its CRD schema accept it


def test_no_workers_no_autoscaler() -> None:
    _, spec = _step_cluster(None)  # type: ignore[arg-type]
    assert "workerGroupSpecs" not in spec and "enableInTreeAutoscaling" not in spec


def test_shared_cluster_is_elastic_too() -> None:
    job = shared_cluster_mljob(workers={"replicas": 1, "maxReplicas": 5, "idleTimeoutSeconds": 120})
    spec = builders.build_ray_cluster(job, 1)["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"] == {"upscalingMode": "Default", "idleTimeoutSeconds": 120}
    assert spec["workerGroupSpecs"][0]["maxReplicas"] == 5
    assert validate(job) == []


def test_template_refines_the_autoscaler() -> None:
    """The escape hatch: any other autoscalerOptions field (resources, version, env) merges in."""
    step = ray_step("train")
    step["ray"]["workers"] = {"replicas": 1, "maxReplicas": 4}
    step["ray"]["template"] = {
        "rayClusterSpec": {
            "autoscalerOptions": {"version": "v2", "resources": {"limits": {"cpu": "1"}}}
        }
    }
    job = mljob([step])
    options = builders.build_step_child(job, step, 1, 1)["spec"]["rayClusterSpec"][
        "autoscalerOptions"
    ]
    assert options == {
        "upscalingMode": "Default",
        "idleTimeoutSeconds": 60,
        "version": "v2",
        "resources": {"limits": {"cpu": "1"}},
    }
    assert validate(job) == []


@pytest.mark.parametrize(
    ("workers", "fragment"),
    [
        ({"replicas": 0, "minReplicas": 1, "maxReplicas": 3}, "got 1 <= 0 <= 3"),
        ({"minReplicas": 4, "maxReplicas": 2}, "got 4 <= 1 <= 2"),
        ({"replicas": 2, "upscalingMode": "Aggressive"}, "upscalingMode: only used by elastic"),
        ({"replicas": 1, "maxReplicas": 2, "idleTimeoutSeconds": -1}, "idleTimeoutSeconds: must"),
    ],
)
def test_bad_bounds_are_explained(workers: dict[str, Any], fragment: str) -> None:
    step = ray_step("train")
    step["ray"]["workers"] = workers
    errors = validate(mljob([step]))
    assert any(fragment in e for e in errors), errors
