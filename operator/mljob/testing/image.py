"""Build the operator image from the repository's Dockerfile without a Docker engine or a
registry: buildah and podman from Debian's packages, and Python bases made from Debian bookworm
packages with mmdebstrap (bookworm's python3 is 3.11), imported with podman and passed to the
Dockerfile's PYTHON_IMAGE/BUILD_IMAGE build arguments.

Everything is cached and keyed by content: the bases by their recipe, the operator image by a
hash of the Dockerfile, .dockerignore, operator/, crds/, pyproject.toml, README.md and the bases.
A second run with nothing changed builds nothing. Images live in their own container storage
(vfs driver) under the cache folder, not in the machine's default one.

    python -m mljob.testing.image          # build (or find) the image, print its reference
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("buildah", "podman", "runc", "mmdebstrap")
APT_INSTALL = "apt-get update && apt-get install -y " + " ".join(TOOLS)
REPO_ROOT = Path(__file__).resolve().parents[3]
IMAGE_NAME = "localhost/mljob-operator"
# The context the Dockerfile needs (.dockerignore lets exactly these in).
CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "operator", "crds")
# Inside a build, pip must trust the same CAs as this machine's pip (a TLS-intercepting proxy):
# the host's bundle is mounted for the build only, never copied into a layer.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

Progress = Callable[[str], None]

_DEBIAN = [
    "--variant=minbase",
    '--aptopt=APT::Install-Recommends "false"',
    # merged /usr without the usrmerge package (which would pull in perl)
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
]
# The runtime base: python3 and a shell, no package manager, no perl, no pip. The package list
# stays in /var/lib/dpkg/status for image scanners.
_REMOVED = [
    "apt",
    "libapt-pkg6.0",
    "gpgv",
    "debian-archive-keyring",
    "perl-base",
    "e2fsprogs",
    "logsave",
    "libext2fs2",
    "libss2",
    "passwd",
    "login",
    "libsemanage2",
    "libsemanage-common",
    "libsepol2",
    "libgnutls30",
    "libhogweed6",
    "libnettle8",
    "libp11-kit0",
    "libtasn1-6",
    "libidn2-0",
    "libunistring2",
    "libgcrypt20",
    "libgpg-error0",
    "libseccomp2",
    "libsystemd0",
    "libzstd1",
    "libstdc++6",
    "libudev1",
    "libxxhash0",
    "util-linux",
    "mount",
    "bsdutils",
    "libmount1",
    "libsmartcols1",
    "libblkid1",
    "ncurses-bin",
    "sysvinit-utils",
    "hostname",
    "diffutils",
]
RUNTIME_BASE = [
    *_DEBIAN,
    "--include=python3",
    '--customize-hook=chroot "$1" dpkg --purge --force-remove-essential --force-depends '
    + "$(chroot \"$1\" dpkg-query -W -f '${Package} ' "
    + " ".join(_REMOVED)
    + " 2>/dev/null)",
    # dpkg itself (its database stays), glibc's iconv modules (Python has its own codecs),
    # caches and logs
    '--customize-hook=rm -rf "$1"/usr/bin/dpkg* "$1"/usr/share/dpkg "$1"/etc/dpkg '
    '"$1"/usr/lib/x86_64-linux-gnu/gconv "$1"/var/cache/* "$1"/var/lib/apt '
    '"$1"/var/log/* "$1"/usr/share/doc/*/changelog* "$1"/usr/share/bash-completion '
    '"$1"/usr/share/common-licenses "$1"/usr/lib/python3.11/test '
    '"$1"/usr/lib/python3.11/pydoc_data "$1"/usr/lib/python3.11/lib2to3',
    "--customize-hook=chroot \"$1\" python3 -c 'import ssl, json, sqlite3, zoneinfo, asyncio'",
]
BUILD_BASE = [*_DEBIAN, "--include=python3,python3-venv,ca-certificates"]


class ImageError(RuntimeError):
    """The image cannot be built here; the message says what to do."""


def _stderr(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    configured = os.environ.get("MLJOB_IMAGE_CACHE")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mljob-operator" / "containers"


# --- tools ----------------------------------------------------------------------------------
def ensure_tools(progress: Progress = _stderr) -> None:
    """buildah, podman, runc and mmdebstrap; installed with apt-get when missing and root,
    otherwise an error with the exact command to run."""
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ImageError(
            f"missing {', '.join(missing)} (the image is built without a Docker engine). "
            f"Install them as root: sudo sh -c '{APT_INSTALL}'"
        )
    progress(f"installing {', '.join(missing)}: {APT_INSTALL}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *TOOLS]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise ImageError(f"`{' '.join(command)}` failed:\n{result.stdout[-2000:]}")


@dataclass(frozen=True)
class Engine:
    """podman and buildah on one private container storage, with the settings this kind of
    machine needs: runc (crun fails on hybrid cgroups), cgroupfs, no raised ulimits."""

    root: Path

    @classmethod
    def create(cls, root: Path | None = None) -> Engine:
        engine = cls(root or cache_root())
        engine.root.mkdir(parents=True, exist_ok=True)
        engine.conf.write_text(
            "[containers]\ndefault_ulimits = []\n\n"
            '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        )
        return engine

    @property
    def conf(self) -> Path:
        return self.root / "containers.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def storage_flags(self) -> list[str]:
        return [
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "vfs",
        ]

    def podman_args(self, *args: str) -> list[str]:
        return [
            "podman",
            *self.storage_flags(),
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            *args,
        ]

    def podman(self, *args: str, check: bool = True, timeout: float | None = None):
        return _run(self.podman_args(*args), self.env, check, timeout)

    def buildah(self, *args: str, check: bool = True):
        return _run(["buildah", *self.storage_flags(), *args], self.env, check)

    def exists(self, ref: str) -> bool:
        return self.podman("image", "exists", ref, check=False).returncode == 0

    def inspect(self, ref: str) -> dict:
        return json.loads(self.podman("image", "inspect", ref).stdout)[0]


def _run(args: Sequence[str], env: dict[str, str], check: bool, timeout: float | None = None):
    result = subprocess.run(
        list(args), capture_output=True, text=True, env=env, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise ImageError(
            f"`{' '.join(args)}` failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


# --- bases ----------------------------------------------------------------------------------
def _digest(*parts: bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()[:16]


def ensure_base(engine: Engine, name: str, recipe: list[str], progress: Progress) -> str:
    ref = f"localhost/mljob-base-{name}:bookworm-{_digest(json.dumps(recipe).encode())}"
    if engine.exists(ref):
        return ref
    progress(f"making the {name} base from Debian bookworm with mmdebstrap (once; cached)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mljob-base-") as tmp:
        tarball = Path(tmp) / f"{name}.tar"
        _run(["mmdebstrap", "--quiet", *recipe, "bookworm", str(tarball)], dict(os.environ), True)
        engine.podman("import", str(tarball), ref)
    progress(f"{ref} made in {time.monotonic() - started:.0f}s")
    return ref


# --- the operator image -----------------------------------------------------------------------
def context_digest(root: Path = REPO_ROOT, extra: Sequence[str] = ()) -> str:
    """A hash of what the build reads: the files of CONTEXT (symlinks as links; no caches)."""
    parts: list[bytes] = [item.encode() for item in extra]
    for top in CONTEXT:
        path = root / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*"))
        for file in files:
            relative = file.relative_to(root).as_posix()
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            if file.is_symlink():
                parts += [relative.encode(), b"->", os.readlink(file).encode()]
            elif file.is_file():
                parts += [relative.encode(), file.read_bytes()]
    return _digest(*parts)


@dataclass(frozen=True)
class Image:
    ref: str
    engine: Engine
    built: bool  # False: found in the cache
    seconds: float


def ensure_image(progress: Progress = _stderr, root: Path = REPO_ROOT) -> Image:
    """The operator image of this checkout, built unless an identical one is cached."""
    started = time.monotonic()
    ensure_tools(progress)
    engine = Engine.create()
    runtime = ensure_base(engine, "runtime", RUNTIME_BASE, progress)
    build = ensure_base(engine, "build", BUILD_BASE, progress)
    ref = f"{IMAGE_NAME}:test-{context_digest(root, [runtime, build])}"
    if engine.exists(ref):
        return Image(ref, engine, False, time.monotonic() - started)
    progress(f"building {ref} from {root / 'Dockerfile'}")
    args = [
        "bud",
        "--isolation",
        "chroot",
        "--layers=false",
        "--build-arg",
        f"PYTHON_IMAGE={runtime}",
        "--build-arg",
        f"BUILD_IMAGE={build}",
        "--tag",
        ref,
    ]
    if HOST_CA_BUNDLE.is_file():
        args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        args += ["--build-arg", f"PIP_CERT={HOST_CA_BUNDLE}"]
    if os.environ.get("PIP_INDEX_URL"):
        args += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
    engine.buildah(*args, str(root))
    seconds = time.monotonic() - started
    progress(f"built {ref} in {seconds:.0f}s")
    prune(engine, keep={ref, runtime, build}, progress=progress)
    return Image(ref, engine, True, seconds)


# --- pruning the cache ------------------------------------------------------------------------
BASE_PREFIX = "localhost/mljob-base-"
# Another session (a CI run from a fresh clone, another checkout) may have just built its own
# image and be about to run it: only images older than this are superseded.
PRUNE_MIN_AGE_SECONDS = 3600.0


@dataclass(frozen=True)
class CachedImage:
    id: str
    names: tuple[str, ...]
    created: float  # unix seconds
    containers: int  # containers using it (podman refuses to remove those without --force)


def superseded(
    images: Sequence[CachedImage],
    keep: set[str],
    now: float,
    min_age: float = PRUNE_MIN_AGE_SECONDS,
) -> list[CachedImage]:
    """The cached images a successful build makes obsolete: ours (the operator image, the
    bases, untagged leftovers), not one to keep, not in use, older than `min_age`."""

    def ours(image: CachedImage) -> bool:
        return not image.names or all(
            name.startswith((f"{IMAGE_NAME}:", BASE_PREFIX)) for name in image.names
        )

    return [
        image
        for image in images
        if ours(image)
        and not keep & set(image.names)
        and image.containers == 0
        and now - image.created >= min_age
    ]


def cached_images(engine: Engine) -> list[CachedImage]:
    listed = json.loads(engine.podman("images", "--all", "--format", "json").stdout or "[]")
    return [
        CachedImage(
            item["Id"],
            tuple(item.get("Names") or ()),
            float(item["Created"]),
            int(item.get("Containers") or 0),
        )
        for item in listed
    ]


def prune(engine: Engine, keep: set[str], progress: Progress = _stderr) -> int:
    """Remove the superseded images, then the layers nothing uses any more; the number removed.
    Best effort: an image that cannot be removed now (in use since it was listed) stays."""
    removed = 0
    for image in superseded(cached_images(engine), keep, time.time()):
        if engine.podman("rmi", image.id, check=False).returncode == 0:
            removed += 1
    if removed:
        progress(f"pruned {removed} superseded image(s) from {engine.root}")
    return removed


@dataclass(frozen=True)
class Size:
    uncompressed: int  # bytes, as `podman images` reports (the layers' unpacked size)
    compressed: int  # bytes of the gzip-compressed layers, as a registry stores them
    layers: int


def measure(image: Image) -> Size:
    """Sizes and layers; compressed = the gzip layer blobs of an OCI layout push."""
    info = image.engine.inspect(image.ref)
    with tempfile.TemporaryDirectory(prefix="mljob-oci-") as tmp:
        layout = Path(tmp) / "oci"
        image.engine.podman("push", "--compress", "--format", "oci", image.ref, f"oci:{layout}")
        index = json.loads((layout / "index.json").read_text())
        manifest_digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_text())
        compressed = sum(layer["size"] for layer in manifest["layers"])
    return Size(int(info["Size"]), compressed, len(info["RootFS"]["Layers"]))


def main() -> int:
    try:
        image = ensure_image()
    except ImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    size = measure(image)
    print(image.ref)
    print(
        f"uncompressed {size.uncompressed / 1e6:.1f} MB, compressed {size.compressed / 1e6:.1f} "
        f"MB, {size.layers} layers ({'built' if image.built else 'cached'} in "
        f"{image.seconds:.0f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
