"""Find or build the control-plane binaries: etcd, kube-apiserver, kube-controller-manager,
kubectl and helm.

Nothing here downloads prebuilt binaries: they are compiled from the Go module proxy at pinned
versions into a cache keyed by version, so the second run builds nothing. `KUBEBUILDER_ASSETS`
(the envtest convention) takes precedence for the binaries it holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "1.34.4"
ETCD_VERSION = "3.6.16"
HELM_VERSION = "3.19.5"

# Kubernetes publishes its staging repositories as k8s.io/* modules; k8s.io/kubernetes itself
# requires them at v0.0.0 with replace directives that only work inside its own repo, so a
# wrapper module must replace each one with the published v0.<minor>.<patch> version.
KUBERNETES_STAGING_MODULES = [
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
]

KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kubectl")
ALL_BINARIES = ("etcd", *KUBERNETES_BINARIES, "helm")

Progress = Callable[[str], None]


class BinaryError(RuntimeError):
    """A binary is missing and cannot be built; the message says how to get it."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    helm: Path | None = None


def cache_root() -> Path:
    configured = os.environ.get("MLJOB_BIN_CACHE")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mljob-operator" / "bin"


def _stderr(message: str) -> None:
    print(f"[control-plane] {message}", file=sys.stderr, flush=True)


def ensure_binaries(*, with_helm: bool = False, progress: Progress = _stderr) -> Binaries:
    """Return paths to every binary, building the missing ones (cached by version)."""
    found = {name: _find(name) for name in ALL_BINARIES}
    wanted = [n for n in ALL_BINARIES if n != "helm" or with_helm]
    missing = [name for name in wanted if found[name] is None]
    if missing:
        _require_go(missing)
    if any(name in KUBERNETES_BINARIES for name in missing):
        _build_kubernetes(progress)
    if "etcd" in missing:
        _build_etcd(progress)
    if "helm" in missing:
        _build_helm(progress)
    paths = {name: found[name] or _cached(name) for name in wanted}
    not_built = [str(path) for path in paths.values() if not path.is_file()]
    if not_built:
        raise BinaryError(f"build finished but these binaries are missing: {not_built}")
    return Binaries(
        etcd=paths["etcd"],
        kube_apiserver=paths["kube-apiserver"],
        kube_controller_manager=paths["kube-controller-manager"],
        kubectl=paths["kubectl"],
        helm=paths.get("helm"),
    )


def _cache_dir(name: str) -> Path:
    if name in KUBERNETES_BINARIES:
        return cache_root() / f"kubernetes-v{KUBERNETES_VERSION}"
    if name == "etcd":
        return cache_root() / f"etcd-v{ETCD_VERSION}"
    return cache_root() / f"helm-v{HELM_VERSION}"


def _cached(name: str) -> Path:
    return _cache_dir(name) / name


def _find(name: str) -> Path | None:
    """KUBEBUILDER_ASSETS first (envtest ships etcd, kube-apiserver, kubectl), then our cache."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / name).is_file():
        return Path(assets) / name
    cached = _cached(name)
    return cached if cached.is_file() else None


def _require_go(missing: list[str]) -> None:
    if shutil.which("go"):
        return
    raise BinaryError(
        f"missing control-plane binaries {', '.join(missing)} and no `go` toolchain to build "
        f"them. Install Go >= 1.24 (https://go.dev/dl/) and run again, or set "
        f"KUBEBUILDER_ASSETS to a folder with envtest binaries "
        f"(`setup-envtest use {KUBERNETES_VERSION} -p path`). Cache: {cache_root()}"
    )


def _build_kubernetes(progress: Progress) -> None:
    staging = "\n".join(
        f"\tk8s.io/{m} => k8s.io/{m} v0.{KUBERNETES_VERSION.split('.', 1)[1]}"
        for m in KUBERNETES_STAGING_MODULES
    )
    go_mod = (
        "module mljob.io/kubernetes-binaries\n\ngo 1.24\n\n"
        f"require k8s.io/kubernetes v{KUBERNETES_VERSION}\n\nreplace (\n{staging}\n)\n"
    )
    major, minor, _ = KUBERNETES_VERSION.split(".")
    # Without a version stamp the binaries report v0.0.0 and kubectl/helm refuse or warn.
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion=v{KUBERNETES_VERSION}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            f"-X k8s.io/client-go/pkg/version.gitVersion=v{KUBERNETES_VERSION}",
        ]
    )
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_BINARIES]
    _go_build(
        f"Kubernetes v{KUBERNETES_VERSION}", "kube-apiserver", go_mod, packages, ldflags, progress
    )


def _build_etcd(progress: Progress) -> None:
    go_mod = (
        "module mljob.io/etcd-binaries\n\ngo 1.24\n\n"
        f"require go.etcd.io/etcd/server/v3 v{ETCD_VERSION}\n"
    )
    _go_build(
        f"etcd v{ETCD_VERSION}", "etcd", go_mod, ["go.etcd.io/etcd/server/v3"], "-s -w", progress
    )
    # `go build` names the binary after the module's last non-version element ("server").
    built = _cache_dir("etcd") / "server"
    if built.exists():
        built.rename(_cached("etcd"))


def _build_helm(progress: Progress) -> None:
    go_mod = (
        f"module mljob.io/helm-binaries\n\ngo 1.24\n\nrequire helm.sh/helm/v3 v{HELM_VERSION}\n"
    )
    ldflags = f"-s -w -X helm.sh/helm/v3/internal/version.version=v{HELM_VERSION}"
    _go_build(
        f"helm v{HELM_VERSION}", "helm", go_mod, ["helm.sh/helm/v3/cmd/helm"], ldflags, progress
    )


def _go_build(
    title: str, first: str, go_mod: str, packages: list[str], ldflags: str, progress: Progress
) -> None:
    """Build `packages` inside a throwaway wrapper module; binaries land in the cache dir."""
    out_dir = _cache_dir(first)
    src = out_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(go_mod)
    imports = "\n".join(f'\t_ "{p}"' for p in packages)
    (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    progress(f"building {title} from the Go module proxy into {out_dir} (once; cached after)")
    progress("resolving modules (go mod tidy)...")
    _run(["go", "mod", "tidy"], src, title)
    progress(f"compiling {len(packages)} binaries; the first build takes several minutes...")
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(out_dir) + "/"]
    _run([*cmd, *packages], src, title, progress)
    progress(f"built {title}")


def _run(cmd: list[str], cwd: Path, title: str, progress: Progress | None = None) -> None:
    """Run a go command; with `progress`, report how many packages were compiled so far."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for compiled, line in enumerate(proc.stdout, start=1):
        tail = [*tail[-30:], line.rstrip()]
        if progress and compiled % 250 == 0:
            progress(f"  ... {compiled} packages compiled")
    if proc.wait() != 0:
        joined = "\n".join(tail)
        raise BinaryError(f"building {title} failed: `{' '.join(cmd)}` in {cwd}:\n{joined}")


if __name__ == "__main__":
    binaries = ensure_binaries(with_helm="--helm" in sys.argv)
    for field, path in vars(binaries).items():
        print(f"{field}: {path}")
