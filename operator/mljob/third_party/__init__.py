"""The pinned upstream CRDs of the Kubeflow Spark operator and KubeRay, vendored unmodified.

They are package data: the test control plane installs them, `mljob dev-cluster` installs them,
and validation checks every generated child against their schemas offline. README.md beside
this file says where each file comes from; `scripts/refresh-upstream-crds` refreshes them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

FOLDER = Path(__file__).resolve().parent

SPARK_OPERATOR_VERSION = "2.5.2"
KUBERAY_VERSION = "1.7.0"

# project folder -> CRD files; every CRD both controllers need to start (KubeRay exits without
# RayService, the Spark operator refuses to start without SparkConnect).
CRD_FILES = {
    "spark-operator": (
        "sparkoperator.k8s.io_sparkapplications.yaml",
        "sparkoperator.k8s.io_scheduledsparkapplications.yaml",
        "sparkoperator.k8s.io_sparkconnects.yaml",
    ),
    "kuberay": ("ray.io_rayjobs.yaml", "ray.io_rayclusters.yaml", "ray.io_rayservices.yaml"),
}


def crd_paths() -> list[Path]:
    """Every vendored upstream CRD file."""
    return [FOLDER / project / name for project, files in CRD_FILES.items() for name in files]


def load_crd(file_name: str) -> dict:
    """One vendored CRD, parsed (file_name as in CRD_FILES)."""
    project = next(p for p, files in CRD_FILES.items() if file_name in files)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # 5x faster on these large files
    return yaml.load((FOLDER / project / file_name).read_text(), Loader=loader)
