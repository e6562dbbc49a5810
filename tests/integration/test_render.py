"""`mljob render` prints exactly what the operator creates; the real upstream CRDs accept it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mljob.testing.corpus import template_heavy_mljob

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn" / "mljob.yaml"


def render(manifest: Path, namespace: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mljob.cli", "render", str(manifest), "-n", namespace],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def shared_cluster_variant(tmp_path: Path) -> Path:
    mljob = yaml.safe_load(EXAMPLE.read_text())
    mljob["spec"]["rayCluster"] = {"rayVersion": "2.49.0", "workers": {"replicas": 2, "gpu": 1}}
    for step in mljob["spec"]["steps"]:
        for field in ("rayVersion", "head", "workers", "image"):
            step.get("ray", {}).pop(field, None)
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(mljob))
    return path


def template_heavy_variant(tmp_path: Path) -> Path:
    """What validate() accepts in templates, the API server must accept too."""
    path = tmp_path / "template-heavy.yaml"
    path.write_text(yaml.safe_dump(template_heavy_mljob()))
    return path


VARIANTS = {
    # The example's serve step is a RayService (it keeps its own cluster with a shared one).
    "example": (lambda _: EXAMPLE, ["RayJob", "RayJob", "RayService", "SparkApplication"]),
    "shared-cluster": (
        shared_cluster_variant,
        ["RayCluster", "RayJob", "RayJob", "RayService", "SparkApplication"],
    ),
    "template-heavy": (
        template_heavy_variant,
        ["RayCluster", "RayJob", "RayJob", "SparkApplication"],
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_children_are_accepted_by_the_upstream_crds(
    control_plane, namespace, tmp_path, variant
):
    manifest_of, expected = VARIANTS[variant]
    rendered = render(manifest_of(tmp_path), namespace)
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(rendered))
    assert kinds == expected
    result = control_plane.kubectl(
        "create", "--validate=strict", "--dry-run=server", "-f", "-", input=rendered, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("created (server dry run)") == len(kinds)
