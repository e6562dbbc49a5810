"""Versions that match (issue 12): rayVersion against the Ray image tags (validate, so the
webhook and the operator too), and a local run's installed Ray/PySpark against the manifest."""

from __future__ import annotations

import io
from typing import Any

import pytest

from mljob.local import plan
from mljob.local.errors import LocalRunError
from mljob.local.runner import check_versions
from mljob.testing.corpus import mljob, ray_step, shared_cluster_mljob, spark_step
from mljob.validation import ray_image_version, validate


@pytest.mark.parametrize(
    ("image", "parsed"),
    [
        ("rayproject/ray:2.49.0", ((2, 49), "")),
        ("rayproject/ray:2.49.0-py311-gpu", ((2, 49), "py311")),
        ("rayproject/ray:2.60.0-py312-cpu-aarch64", ((2, 60), "py312")),
        ("docker.io/rayproject/ray-ml:2.9.3-py310-cu121", ((2, 9), "py310")),
        ("quay.io/kuberay/ray:2.52", ((2, 52), "")),
        ("rayproject/ray:2.49.0@sha256:0123", ((2, 49), "")),
        ("localhost:5000/ray", None),  # the colon is a registry port: no tag
        ("rayproject/ray", None),
        ("rayproject/ray:latest", None),
        ("rayproject/ray:nightly-py311", None),
        ("registry.example.com/churn:1.4", None),  # not a Ray image: its tag says nothing
        (None, None),
    ],
)
def test_ray_image_version(image: Any, parsed: Any) -> None:
    assert ray_image_version(image) == parsed


def _ray_job(image: str, version: str = "2.49.0") -> dict[str, Any]:
    step = ray_step("train")
    step["ray"].update(image=image, rayVersion=version)
    return mljob([step])


@pytest.mark.parametrize(
    "image",
    [
        "rayproject/ray:2.49.2-py311",  # the patch version may differ
        "rayproject/ray:latest",  # a tag that says nothing is accepted
        "registry.example.com/churn:1.4",
    ],
)
def test_matching_or_unknown_image_versions_are_accepted(image: str) -> None:
    assert validate(_ray_job(image)) == []


def test_minor_mismatch_names_both_values() -> None:
    errors = validate(_ray_job("rayproject/ray:2.50.0"))
    assert errors == [
        "spec.steps[0].ray.rayClusterSpec.rayVersion: 2.49.0 does not match "
        "rayproject/ray:2.50.0, the image of the head (Ray 2.50); Ray versions must match to "
        "the minor version"
    ]


def test_major_mismatch_is_an_error_too() -> None:
    assert validate(_ray_job("rayproject/ray:3.49.0"))


def test_workers_are_checked_with_the_head() -> None:
    step = ray_step("train")
    step["ray"].update(image="rayproject/ray:2.49.0", workers={"replicas": 2})
    step["ray"]["template"] = {
        "rayClusterSpec": {
            "headGroupSpec": {
                "template": {
                    "spec": {"containers": [{"name": "h", "image": "rayproject/ray:2.49.0-py311"}]}
                }
            },
        }
    }
    assert validate(mljob([step])) == []


def test_shared_cluster_matches() -> None:
    assert validate(shared_cluster_mljob(image="rayproject/ray:2.49.1-py311-gpu")) == []
    errors = validate(shared_cluster_mljob(image="rayproject/ray:2.48.0"))
    assert [e.split(":")[0] for e in errors] == ["spec.rayCluster.rayVersion"]


# --- local mode ----------------------------------------------------------------------------------
INSTALLED = {"ray": "2.60.0", "spark": "4.3.0"}


def _pipeline(ray_version: str, spark_version: str) -> dict[str, Any]:
    prepare, train = spark_step("prepare"), ray_step("train")
    prepare["spark"]["sparkVersion"] = spark_version
    train["ray"]["rayVersion"] = ray_version
    return mljob([prepare, train])


@pytest.mark.parametrize(
    ("ray_version", "spark_version", "expected"),
    [
        ("2.60.0", "4.3.0", []),
        ("2.60.1", "4.3.2", []),  # patch versions may differ
        (
            "2.49.0",
            "4.3.0",
            [
                "step train: rayVersion is 2.49.0 but Ray 2.60.0 is installed (they should "
                "match to the minor version)"
            ],
        ),
        (
            "2.60.0",
            "4.0.1",
            [
                "step prepare: sparkVersion is 4.0.1 but PySpark 4.3.0 is installed (they "
                "should match to the minor version)"
            ],
        ),
    ],
)
def test_version_mismatches(ray_version: str, spark_version: str, expected: list[str]) -> None:
    assert plan.version_mismatches(_pipeline(ray_version, spark_version), INSTALLED) == expected


def test_shared_cluster_version_and_missing_engines() -> None:
    job = shared_cluster_mljob()  # rayVersion 2.49.0 on spec.rayCluster, two Ray steps
    lines = plan.version_mismatches(job, {"ray": "2.60.0", "spark": None})
    assert [line.split(":")[0] for line in lines] == ["step train", "step evaluate"]
    assert plan.version_mismatches(job, {"ray": None, "spark": None}) == []


def test_check_versions_warns_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from mljob.local import runner

    monkeypatch.setattr(runner, "installed_versions", lambda: INSTALLED)
    out = io.StringIO()
    check_versions(_pipeline("2.49.0", "4.3.0"), strict=False, out=out)
    assert out.getvalue() == (
        "Warning: step train: rayVersion is 2.49.0 but Ray 2.60.0 is installed (they should "
        "match to the minor version).\n"
    )
    with pytest.raises(LocalRunError, match=r"^version mismatch \(--strict-versions\):\n  step"):
        check_versions(_pipeline("2.49.0", "4.3.0"), strict=True, out=out)
    check_versions(_pipeline("2.60.0", "4.3.0"), strict=True, out=out)  # no error


def test_the_example_matches_the_local_extra() -> None:
    """The shipped example declares the versions the [local] extra installs: no warning."""
    import importlib.metadata
    from pathlib import Path

    import yaml

    example = yaml.safe_load((Path(__file__).parents[2] / "examples/churn/mljob.yaml").read_text())
    installed = {
        "ray": importlib.metadata.version("ray"),
        "spark": importlib.metadata.version("pyspark"),
    }
    assert plan.version_mismatches(example, installed) == []
    assert validate(example) == []
