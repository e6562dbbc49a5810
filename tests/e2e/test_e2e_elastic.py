"""Elastic workers under the real KubeRay v1.6.1 (issue 12 item 3): KubeRay accepts the
RayCluster spec the MLJob generates for minReplicas < maxReplicas (enableInTreeAutoscaling,
autoscalerOptions), adds its autoscaler sidecar to the head pod, and the Ray job runs on the
real Ray head. (Serve steps are not in this tier: docs/e2e.md says why.)"""

from __future__ import annotations

import pytest

from .helpers import (
    MLJOB,
    RAYCLUSTER,
    RAYJOB,
    create,
    items,
    mljob,
    pods,
    ray,
    step,
    wait_for,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.e2e_concurrent]


def test_kuberay_accepts_elastic_workers_and_adds_its_autoscaler(api, ns, e2e_world):
    train = ray("train", "print('elastic workers')")
    train["ray"]["workers"] = {
        "replicas": 1,
        "minReplicas": 0,
        "maxReplicas": 3,
        "upscalingMode": "Conservative",
        "idleTimeoutSeconds": 30,
        "cpu": "500m",
    }
    create(api, MLJOB, ns, mljob("el", train))

    def cluster_with_head():
        clusters = items(api, RAYCLUSTER, ns)
        heads = [p for p in pods(api, ns) if p.metadata.labels.get("ray.io/node-type") == "head"]
        return (clusters[0], heads[0]) if clusters and heads else None

    cluster, head = wait_for(cluster_with_head, "KubeRay's RayCluster and head pod", timeout=120)
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"] == {"upscalingMode": "Conservative", "idleTimeoutSeconds": 30}
    group = spec["workerGroupSpecs"][0]
    assert (group["minReplicas"], group["maxReplicas"]) == (0, 3)
    # KubeRay's own reaction to enableInTreeAutoscaling: the autoscaler sidecar on the head.
    assert "autoscaler" in [c.name for c in head.spec.containers]
    done = wait_phase(api, ns, "el", "Succeeded", timeout=180)
    assert step(done, "train")["childState"] == "Complete/SUCCEEDED"
    (job,) = items(api, RAYJOB, ns)
    assert job["status"]["jobDeploymentStatus"] == "Complete"
