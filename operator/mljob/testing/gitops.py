"""Ask the GitOps tools' own libraries what they make of an object: `gitops-verdict`, a small Go
helper (source in gitops-verdict/ next to this file) that prints, per object, kstatus's verdict
(sigs.k8s.io/cli-utils, as Flux, kpt and Helm 4's --wait compute it) and an Argo CD health
script's verdict run in gopher-lua with the libraries Argo CD opens for it.

Built like the control-plane binaries (mljob.testing.binaries): from the Go module proxy, at the
versions pinned in gitops-verdict/go.mod and go.sum, into the same cache, under a folder named
after those versions and a hash of the source, so a second run builds nothing:

    python -m mljob.testing.gitops           # build (once) and print the binary's path
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .binaries import BinaryError, Progress, _run, cache_root

SOURCE = Path(__file__).resolve().parent / "gitops-verdict"
SOURCE_FILES = ("main.go", "go.mod", "go.sum")
NAME = "gitops-verdict"
# The modules whose versions name the cache folder (the rest are pinned by go.sum too).
PINNED = {"sigs.k8s.io/cli-utils": "cli-utils", "github.com/yuin/gopher-lua": "gopher-lua"}


def _stderr(message: str) -> None:
    print(f"[gitops-verdict] {message}", file=sys.stderr, flush=True)


def pinned_versions(go_mod: str | None = None) -> dict[str, str]:
    """The versions gitops-verdict/go.mod requires of the modules in PINNED."""
    text = go_mod if go_mod is not None else (SOURCE / "go.mod").read_text()
    found = {}
    for module in PINNED:
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
        if match:
            found[module] = match.group(1)
    return found


def cache_dir() -> Path:
    missing = [f for f in SOURCE_FILES if not (SOURCE / f).is_file()]
    if missing:
        raise BinaryError(
            f"the gitops-verdict source is incomplete ({', '.join(missing)} missing in {SOURCE}); "
            "it ships with the source checkout of mljob-operator, not with the wheel"
        )
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes())
    versions = pinned_versions()
    label = "-".join(f"{PINNED[m]}-{v}" for m, v in versions.items())
    return cache_root() / f"{NAME}-{label}-{digest.hexdigest()[:10]}"


def ensure_gitops_verdict(progress: Progress = _stderr) -> Path:
    """The path of the gitops-verdict binary, built first if this source has not been built."""
    out_dir = cache_dir()
    binary = out_dir / NAME
    if binary.is_file():
        return binary
    if not shutil.which("go"):
        raise BinaryError(
            f"the GitOps verdict helper ({NAME}: kstatus and Argo CD's gopher-lua) is not built "
            f"and there is no `go` toolchain to build it. Install Go >= 1.24 "
            f"(https://go.dev/dl/) and run again. Cache: {out_dir}"
        )
    src = out_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name in SOURCE_FILES:
        shutil.copyfile(SOURCE / name, src / name)
    versions = ", ".join(f"{m} {v}" for m, v in pinned_versions().items())
    progress(f"building {NAME} ({versions}) from the Go module proxy into {out_dir} (once)")
    progress("downloading modules and compiling (about a minute the first time)...")
    partial = out_dir / f"{NAME}.partial"
    cmd = ["go", "build", "-v", "-mod=readonly", "-trimpath", "-ldflags=-s -w", "-o", str(partial)]
    _run([*cmd, "."], src, NAME, progress)
    partial.rename(binary)
    progress(f"built {binary}")
    return binary


def verdicts(
    binary: Path, objects: list[dict[str, Any]], health_lua: Path | None = None
) -> list[dict[str, Any]]:
    """One verdict per object: {"kstatus": {"status", "message"}, "argocd": {"status",
    "message"} | {"error"} | None, "kind", "namespace", "name", "generation"}."""
    cmd = [str(binary)] + ([f"-health-lua={health_lua}"] if health_lua else [])
    result = subprocess.run(
        cmd, input=json.dumps(objects), capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{NAME} failed ({result.returncode}): {result.stderr.strip()}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    for line in lines:
        line.setdefault("argocd", None)
    return lines


if __name__ == "__main__":
    try:
        print(ensure_gitops_verdict())
    except BinaryError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
