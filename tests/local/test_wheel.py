"""`mljob dev-cluster` from the built wheel, installed in fresh virtualenvs (no source checkout,
no system site-packages): without the `dev-cluster` extra it says which extra to install; with
it, the control plane finds every CRD, the MLJob CRD included, in the installed package.

To stay fast, the wheel is installed with --no-deps plus only what these commands import: PyYAML
(the CLI, the control plane) and, in the second venv, the extra's own requirements as the wheel
declares them. pip needs PyPI or its cache for those few packages (and for setuptools, to build).
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from mljob import third_party

REPO = Path(__file__).resolve().parents[2]
EXTRA = "dev-cluster"
# What a source tree holds that a build must not see (or that is big and irrelevant).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".cache", "build", "dist", "mljob-runs", "*.egg-info", "__pycache__",
    ".pytest_cache", ".ruff_cache",
)  # fmt: skip


def _run(
    cmd: list[str | Path], what: str, hint: str = "", **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run a step; fail (never skip) with its output if it does not work."""
    result = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, check=False, timeout=600, **kwargs
    )
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed{hint} ({' '.join(map(str, cmd))}):\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a clean copy of the source tree (an in-tree build would reuse a
    stale build/ folder and write into the tree others work in). Symlinks stay symlinks, so
    mljob/crds -> ../../crds is built exactly as from a checkout."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=NOT_SOURCE)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", source],
        "building the wheel",
        "; pip needs PyPI or its cache for setuptools",
    )
    (built,) = (root / "dist").glob("mljob_operator-*.whl")
    return built


def _venv(root: Path, wheel: Path, requirements: list[str]) -> Path:
    """A fresh virtualenv with the wheel (no dependencies) and `requirements`."""
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], "creating a virtualenv")
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, "--no-deps", wheel], "installing the wheel")
    _run([*pip, *requirements], f"installing {requirements}", "; pip needs PyPI or its cache")
    return venv


def _pinned(distribution: str) -> str:
    """The version the development venv has: known to work, and likely in pip's cache."""
    return f"{distribution}=={importlib.metadata.version(distribution)}"


def _extra_requirements(wheel: Path) -> list[str]:
    """The extra's requirements as the wheel's METADATA declares them."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    assert EXTRA in metadata.get_all("Provides-Extra", []), "the wheel has no dev-cluster extra"
    marker = f'extra == "{EXTRA}"'
    return [r.split(";")[0].strip() for r in metadata.get_all("Requires-Dist", []) if marker in r]


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    return _venv(tmp_path_factory.mktemp("plain"), wheel, [_pinned("PyYAML")])


@pytest.fixture(scope="module")
def extra_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    requirements = _extra_requirements(wheel)
    assert any(r.startswith("cryptography") for r in requirements), requirements
    return _venv(tmp_path_factory.mktemp("extra"), wheel, [_pinned("PyYAML"), *requirements])


def _user_env(venv: Path, home: Path) -> dict[str, str]:
    """A user's shell: this venv and the system on PATH, but no Go, no binary cache, nothing
    pointing back at the source tree."""
    path = f"{venv / 'bin'}:/usr/bin:/bin"
    assert shutil.which("go", path=path) is None, "go is in /usr/bin: cannot test without Go"
    keep = {"LANG", "LC_ALL", "TMPDIR", "PIP_FIND_LINKS", "PIP_CERT"}
    return {
        **{k: v for k, v in os.environ.items() if k in keep},
        "PATH": path,
        "HOME": str(home),
        "MLJOB_BIN_CACHE": str(home / "empty-bin-cache"),
    }


def test_the_wheel_holds_the_mljob_crds_as_files(wheel: Path) -> None:
    """The package data is the repository's crds/ itself (copied through the symlink)."""
    with zipfile.ZipFile(wheel) as archive:
        packaged = {
            Path(info.filename).name: archive.read(info)
            for info in archive.infolist()
            if info.filename.startswith("mljob/crds/")
        }
    assert packaged == {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    assert "mljob.io_mljobs.yaml" in packaged


def test_dev_cluster_without_the_extra_says_which_extra_to_install(
    plain_venv: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(plain_venv / "bin" / "mljob"), "dev-cluster"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=_user_env(plain_venv, tmp_path),
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == (
        "mljob: error: `mljob dev-cluster` needs the dev-cluster extra (cryptography is not "
        "installed): pip install 'mljob-operator[dev-cluster]'\n"
    )


def test_dev_cluster_with_the_extra_finds_every_crd_in_the_package(
    extra_venv: Path, tmp_path: Path
) -> None:
    python = extra_venv / "bin" / "python"
    code = (
        "import json; from mljob.testing.controlplane import ControlPlane; "
        "print(json.dumps([str(p) for p in ControlPlane.default_crds()]))"
    )
    result = _run(
        [python, "-c", code],
        "finding the CRDs from the installed wheel",
        cwd=tmp_path,
        env=_user_env(extra_venv, tmp_path),
    )
    paths = [Path(p) for p in json.loads(result.stdout)]
    assert all(p.resolve().is_relative_to(extra_venv.resolve()) for p in paths), paths
    # every vendored upstream CRD and every CRD of this repository, from the package
    expected = [p.name for p in third_party.crd_paths()] + sorted(
        p.name for p in (REPO / "crds").glob("*.yaml")
    )
    assert [p.name for p in paths] == expected, paths
    mljob_crd = next(p for p in paths if p.name == "mljob.io_mljobs.yaml")
    assert yaml.safe_load(mljob_crd.read_text())["metadata"]["name"] == "mljobs.mljob.io"
    assert mljob_crd.read_bytes() == (REPO / "crds" / "mljob.io_mljobs.yaml").read_bytes()


def test_dev_cluster_without_go_says_how_to_get_it(extra_venv: Path, tmp_path: Path) -> None:
    """No binaries cached, no KUBEBUILDER_ASSETS, no `go`: it stops before starting anything,
    with where to get Go, and no traceback."""
    result = subprocess.run(
        [str(extra_venv / "bin" / "mljob"), "dev-cluster"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=_user_env(extra_venv, tmp_path),
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result
    last = result.stderr.splitlines()[-1]
    assert last.startswith("mljob: error: missing control-plane binaries"), result.stderr
    assert "Install Go >= 1.24 (https://go.dev/dl/)" in last
