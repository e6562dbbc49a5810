"""Find or build the control-plane binaries: etcd, kube-apiserver, kube-controller-manager,
kubectl and helm; and for the end-to-end tier (tests/e2e, docs/e2e.md) kube-scheduler, kwok and
the real upstream controllers: KubeRay's ray-operator and the Kubeflow Spark operator.

Nothing here downloads prebuilt binaries: they are compiled from the Go module proxy at pinned
versions into a cache keyed by version, so the second run builds nothing. `KUBEBUILDER_ASSETS`
(the envtest convention) takes precedence for the binaries it holds.
"""

from __future__ import annotations

import json
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
# The end-to-end tier's real controllers and simulated nodes. KubeRay v1.6.1 is the newest
# ray-operator the Go module proxy serves here (v1.7.x archives are refused); the project keeps
# the v1.7.0 CRDs (docs/e2e.md lists what v1.6.1 ignores).
KUBERAY_VERSION = "1.6.1"
SPARK_OPERATOR_VERSION = "2.5.2"
KWOK_VERSION = "0.8.0"
KUBERAY_MODULE = "github.com/ray-project/kuberay/ray-operator"
SPARK_OPERATOR_MODULE = "github.com/kubeflow/spark-operator/v2"
KWOK_MODULE = "sigs.k8s.io/kwok"

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

KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kubectl", "kube-scheduler")
# Only the end-to-end tier needs these (kube-scheduler binds pods to kwok's nodes).
E2E_BINARIES = ("kube-scheduler", "kwok", "ray-operator", "spark-operator")
ALL_BINARIES = ("etcd", *KUBERNETES_BINARIES, "helm", "kwok", "ray-operator", "spark-operator")

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
    kube_scheduler: Path | None = None
    kwok: Path | None = None
    ray_operator: Path | None = None
    spark_operator: Path | None = None


def cache_root() -> Path:
    configured = os.environ.get("MLJOB_BIN_CACHE")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mljob-operator" / "bin"


def _stderr(message: str) -> None:
    print(f"[control-plane] {message}", file=sys.stderr, flush=True)


def ensure_binaries(
    *, with_helm: bool = False, with_e2e: bool = False, progress: Progress = _stderr
) -> Binaries:
    """Return paths to every binary, building the missing ones (cached by version).

    `with_e2e` adds kube-scheduler, kwok, KubeRay's ray-operator and the Spark operator."""
    found = {name: _find(name) for name in ALL_BINARIES}
    wanted = [
        n
        for n in ALL_BINARIES
        if (n != "helm" or with_helm) and (n not in E2E_BINARIES or with_e2e)
    ]
    missing = [name for name in wanted if found[name] is None]
    if missing:
        _require_go(missing)
    if any(name in KUBERNETES_BINARIES for name in missing):
        _build_kubernetes(progress)
    if "etcd" in missing:
        _build_etcd(progress)
    if "helm" in missing:
        _build_helm(progress)
    if "kwok" in missing:
        _go_install("kwok", f"{KWOK_MODULE}/cmd/kwok@v{KWOK_VERSION}", progress)
    if "ray-operator" in missing:
        _go_install("ray-operator", f"{KUBERAY_MODULE}@v{KUBERAY_VERSION}", progress)
    if "spark-operator" in missing:
        _build_spark_operator(progress)
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
        kube_scheduler=paths.get("kube-scheduler"),
        kwok=paths.get("kwok"),
        ray_operator=paths.get("ray-operator"),
        spark_operator=paths.get("spark-operator"),
    )


def _cache_dir(name: str) -> Path:
    if name in KUBERNETES_BINARIES:
        return cache_root() / f"kubernetes-v{KUBERNETES_VERSION}"
    versions = {
        "etcd": f"etcd-v{ETCD_VERSION}",
        "helm": f"helm-v{HELM_VERSION}",
        "kwok": f"kwok-v{KWOK_VERSION}",
        "ray-operator": f"kuberay-v{KUBERAY_VERSION}",
        "spark-operator": f"spark-operator-v{SPARK_OPERATOR_VERSION}",
    }
    return cache_root() / versions[name]


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
        + (f" (kwok v{KWOK_VERSION} needs Go >= 1.26)" if "kwok" in missing else "")
    )


def _go_install(name: str, target: str, progress: Progress) -> None:
    """`go install module/cmd@version` (modules without replace directives) into the cache."""
    out_dir = _cache_dir(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress(f"building {target} from the Go module proxy into {out_dir} (once; cached after)")
    progress("compiling; the first build takes a few minutes...")
    env = {**os.environ, "GOBIN": str(out_dir), "CGO_ENABLED": "0"}
    _run(
        ["go", "install", "-v", "-trimpath", "-ldflags=-s -w", target],
        out_dir,
        target,
        progress,
        env,
    )
    progress(f"built {name}")


def _build_spark_operator(progress: Progress) -> None:
    """The Spark operator's go.mod replaces the k8s.io modules (v0.32.5 at v2.5.2), and replace
    directives only apply in the main module: copy them into a wrapper module."""
    module = f"{SPARK_OPERATOR_MODULE}@v{SPARK_OPERATOR_VERSION}"
    progress(f"reading the replace directives of {module}")
    out_dir = _cache_dir("spark-operator")
    out_dir.mkdir(parents=True, exist_ok=True)
    downloaded = subprocess.run(
        ["go", "mod", "download", "-json", module],
        cwd=out_dir,
        capture_output=True,
        text=True,
    )
    if downloaded.returncode != 0:
        raise BinaryError(
            f"`go mod download {module}` failed:\n{downloaded.stdout[-2000:]}"
            f"{downloaded.stderr[-2000:]}"
        )
    go_mod_file = Path(json.loads(downloaded.stdout)["GoMod"])
    replaces = replace_directives(go_mod_file.read_text())
    body = "\n".join(f"\t{line}" for line in replaces)
    go_mod = (
        "module mljob.io/spark-operator-binaries\n\ngo 1.24\n\n"
        f"require {SPARK_OPERATOR_MODULE} v{SPARK_OPERATOR_VERSION}\n\nreplace (\n{body}\n)\n"
    )
    _go_build(
        f"Spark operator v{SPARK_OPERATOR_VERSION}",
        "spark-operator",
        go_mod,
        [f"{SPARK_OPERATOR_MODULE}/cmd/operator"],
        "-s -w",
        progress,
    )
    # `go build` names the binary after the package's last element ("operator").
    built = out_dir / "operator"
    if built.exists():
        built.rename(_cached("spark-operator"))


def replace_directives(go_mod: str) -> list[str]:
    """The `old => new version` lines of a go.mod's replace directives (block or single)."""
    lines: list[str] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif "=>" in line:
                lines.append(line)
        elif line.startswith("replace ("):
            in_block = True
        elif line.startswith("replace ") and "=>" in line:
            lines.append(line.removeprefix("replace ").strip())
    return lines


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


def _run(
    cmd: list[str],
    cwd: Path,
    title: str,
    progress: Progress | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run a go command; with `progress`, report how many packages were compiled so far."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
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
    binaries = ensure_binaries(with_helm="--helm" in sys.argv, with_e2e="--e2e" in sys.argv)
    for field, path in vars(binaries).items():
        print(f"{field}: {path}")
