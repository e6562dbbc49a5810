"""`mljob status` against the real control plane: one row per step, and a missing MLJob or an
unreachable cluster in one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .k8s import MLJOB, create
from .test_pipeline import mljob, ray, spark, wait_phase

pytestmark = pytest.mark.integration


def status(control_plane, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mljob.cli", "status", *args],
        capture_output=True,
        text=True,
        env=env or control_plane.env(),
        timeout=60,
    )


@pytest.mark.usefixtures("operator_process")
def test_status_shows_one_row_per_step(control_plane, api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("churn", spark("prepare"), ray("train")))
    wait_phase(api_client, namespace, "churn", "Running")
    result = status(control_plane, "churn", "-n", namespace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"MLJob {namespace}/churn: Running"
    assert lines[1].split() == ["STEP", "KIND", "PHASE", "CHILD", "STATE", "ATTEMPTS", "MESSAGE"]
    assert lines[2].split()[:4] == ["prepare", "SparkApplication", "Pending", "churn-prepare-r1"]
    assert lines[3].split()[:3] == ["train", "RayJob", "Pending"]


def test_a_missing_mljob_is_one_line_and_exit_2(control_plane, namespace):
    result = status(control_plane, "nope", "-n", namespace)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"mljob: error: cannot read MLJob {namespace}/nope: 404 Not Found\n"


def test_no_kubeconfig_is_one_line_and_exit_2(control_plane, tmp_path):
    env = {**control_plane.env(), "KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    result = status(control_plane, "churn", env=env)
    assert result.returncode == 2
    assert result.stderr == "mljob: error: no Kubernetes configuration found (set KUBECONFIG)\n"
