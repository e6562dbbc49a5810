"""The real helm binary (built from the Go module proxy like the control plane's binaries) and
small helpers to render the chart."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from mljob.testing.binaries import BinaryError, ensure_binaries

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "mljob-operator"


@functools.cache
def helm_path() -> Path:
    """The helm binary; a test without it fails with instructions, never skips."""
    try:
        path = ensure_binaries(with_helm=True).helm
    except BinaryError as error:
        pytest.fail(f"cannot get helm: {error}", pytrace=False)
    if path is None or not path.is_file():
        pytest.fail(
            "helm not found: run `python -m mljob.testing.binaries --helm` (builds it from the "
            "Go module proxy into ~/.cache/mljob-operator/bin)",
            pytrace=False,
        )
    return path


def helm(*args: str, env: dict[str, str] | None = None, check: bool = True):
    result = subprocess.run(
        [str(helm_path()), *args], capture_output=True, text=True, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def set_args(values: dict[str, str] | None) -> list[str]:
    return [arg for key, value in (values or {}).items() for arg in ("--set", f"{key}={value}")]


def render(
    values: dict[str, str] | None = None,
    *,
    release: str = "mljob",
    namespace: str = "mljob-system",
    extra: Sequence[str] = (),
) -> list[dict]:
    """`helm template` with `--set` values; the rendered objects."""
    out = helm(
        "template", release, str(CHART), "--namespace", namespace, *set_args(values), *extra
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[dict], kind: str) -> dict:
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objects: list[dict]) -> dict:
    workloads = find(objects, "Deployment") + find(objects, "StatefulSet")
    assert len(workloads) == 1, "expected exactly one operator workload"
    (operator,) = workloads[0]["spec"]["template"]["spec"]["containers"]
    return operator
