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

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# --- running it as the chart's pod spec does ---------------------------------------------------
# Shared by tests/image (the image's own tests) and tests/e2e (the operator of the end-to-end
# world runs from the image).
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
WEBHOOK_MOUNT = "/etc/mljob/webhook"


def chart_security_flags() -> list[str]:
    """The chart's pod and container securityContext, as podman flags: UID/GID 10001, read-only
    root filesystem, /tmp an in-memory emptyDir (sizeLimit 64Mi), no capabilities, no
    privilege escalation. Host network: the test control plane listens on loopback."""
    return [
        "--user",
        "10001:10001",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=64m,mode=1777",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--network",
        "host",
    ]


@dataclass
class Container:
    """One `podman run -d` of the image, removed at the end."""

    image: Image
    name: str
    log_path: Path | None = None  # the container's output, written there as it runs

    def logs(self) -> str:
        result = self.image.engine.podman("logs", self.name, check=False)
        return str(result.stdout + result.stderr)

    def running(self) -> bool:
        result = self.image.engine.podman(
            "inspect", "--format", "{{.State.Running}}", self.name, check=False
        )
        return bool(result.stdout.strip() == "true")

    def signal_and_wait(self, signal: str, timeout: float) -> tuple[int, float]:
        """Send a signal, wait for the exit; (exit code, seconds)."""
        started = time.monotonic()
        self.image.engine.podman("kill", "--signal", signal, self.name)
        result = self.image.engine.podman("wait", self.name, timeout=timeout + 5)
        return int(result.stdout.strip().splitlines()[-1]), time.monotonic() - started

    def remove(self) -> None:
        self.image.engine.podman("rm", "--force", "--time", "0", self.name, check=False)


@contextlib.contextmanager
def run_container(
    image: Image,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    mounts: dict[Path, str] | None = None,
    entrypoint: str | None = None,
    log_path: Path | None = None,
    echo: bool = True,
) -> Iterator[Container]:
    """`podman run -d` as the chart runs the container; removed on exit (its log tail printed
    unless `echo` is False; with `log_path`, the whole log is kept there)."""
    name = f"mljob-test-{uuid.uuid4().hex[:10]}"
    flags = ["run", "--detach", "--name", name, *chart_security_flags()]
    if log_path is not None:
        flags += ["--log-driver", "k8s-file", "--log-opt", f"path={log_path}"]
    for key, value in (env or {}).items():
        flags += ["--env", f"{key}={value}"]
    for source, target in (mounts or {}).items():
        flags += ["--volume", f"{source}:{target}:ro"]
    if entrypoint:
        flags += ["--entrypoint", entrypoint]
    image.engine.podman(*flags, image.ref, *args)
    container = Container(image, name, log_path)
    try:
        yield container
    finally:
        if echo:
            print(f"--- container {name} log ---\n{container.logs()[-4000:]}")
        container.remove()


def run_once(image: Image, *command: str) -> str:
    """Run a command in the image as the chart does (entrypoint replaced); its output."""
    flags = ["run", "--rm", *chart_security_flags(), "--entrypoint", command[0]]
    result = image.engine.podman(*flags, image.ref, *command[1:], check=False, timeout=120)
    if result.returncode != 0:
        raise ImageError(f"{command}: {result.stdout}\n{result.stderr}")
    return str(result.stdout)


def workload_container(objects: list[dict]) -> dict:
    """The operator container of the chart's rendered Deployment (or StatefulSet)."""
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    (workload,) = workloads
    (operator,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(operator)


class Ports:
    """Host network: the pod's ports, moved to free ones of this machine."""

    def __init__(self) -> None:
        from .processes import free_port

        self.health, self.ready, self.metrics, self.webhook = (free_port() for _ in range(4))

    def overrides(self) -> dict[str, str]:
        return {
            "--liveness": f"http://127.0.0.1:{self.health}/healthz",
            "--readiness": f"http://127.0.0.1:{self.ready}/readyz",
            "--metrics-port": str(self.metrics),
            "--webhook-port": str(self.webhook),
        }


def chart_args(objects: list[dict], ports: Ports, extra: Sequence[str] = ()) -> list[str]:
    """The chart's container arguments, its ports moved (`ports`), then `extra`."""
    overrides = ports.overrides()
    args = []
    for arg in workload_container(objects)["args"]:
        flag = arg.split("=", 1)[0]
        args.append(f"{flag}={overrides[flag]}" if flag in overrides else arg)
    return [*args, *extra]


def chart_env(objects: list[dict], apiserver_port: int) -> dict[str, str]:
    """The chart's env with the pod-only values filled in: the downward API's pod name, and
    the kubernetes Service's address, here the API server on loopback."""
    env = {"POD_ID": "mljob-operator-0", "HOSTNAME": "mljob-operator-0"}
    for item in workload_container(objects).get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
    env["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
    env["KUBERNETES_SERVICE_PORT"] = str(apiserver_port)
    return env


def pod_files(
    admin: Any, ca_cert: Path, objects: list[dict], namespace: str, directory: Path
) -> dict[Path, str]:
    """What a pod of the chart gets mounted, written under `directory`: its ServiceAccount's
    token (TokenRequest API), the cluster CA and namespace at the in-cluster path; the webhook
    Secret, if the chart made one, at /etc/mljob/webhook. Returns the mounts."""
    import base64

    from kubernetes import client

    core = client.CoreV1Api(admin)
    (sa,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    token = core.create_namespaced_service_account_token(
        sa["metadata"]["name"], namespace, {"spec": {"expirationSeconds": 48 * 3600}}
    )
    account = directory / "serviceaccount"
    account.mkdir(mode=0o755)
    (account / "token").write_text(token.status.token)
    (account / "ca.crt").write_bytes(ca_cert.read_bytes())
    (account / "namespace").write_text(namespace)
    mounts = {account: SA_MOUNT}
    secrets = [o for o in objects if o["kind"] == "Secret"]
    if secrets:
        data = core.read_namespaced_secret(secrets[0]["metadata"]["name"], namespace).data
        webhook = directory / "webhook"
        webhook.mkdir(mode=0o755)
        for key, value in data.items():
            (webhook / key).write_bytes(base64.b64decode(value))
        mounts[webhook] = WEBHOOK_MOUNT
    for path in directory.rglob("*"):  # UID 10001 in the container reads them
        path.chmod(0o755 if path.is_dir() else 0o644)
    return mounts


# --- where a container's sockets lead ----------------------------------------------------------
def _address(hex_address: str) -> str:
    """An address of /proc/net/tcp{,6} (hex, 32-bit words in host order) as text."""
    import ipaddress
    import socket as socket_module

    words = bytes.fromhex(hex_address)
    packed = b"".join(
        int.from_bytes(words[i : i + 4], "big").to_bytes(4, sys.byteorder)
        for i in range(0, len(words), 4)
    )
    family = socket_module.AF_INET if len(packed) == 4 else socket_module.AF_INET6
    address = ipaddress.ip_address(socket_module.inet_ntop(family, packed))
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def socket_peers(tables: Sequence[str], inodes: set[str]) -> list[tuple[str, int]]:
    """The remote (address, port) of every connected TCP socket among `inodes`, read from the
    text of /proc/net/tcp and /proc/net/tcp6; listening sockets have no peer."""
    peers = []
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[9] not in inodes or fields[3] == "0A":  # 0A: LISTEN
                continue
            address, port = fields[2].split(":")
            peers.append((_address(address), int(port, 16)))
    return peers


def is_loopback(address: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(address).is_loopback


def process_socket_inodes(pid: int) -> set[str]:
    """The socket inodes open in `pid` and its descendants."""
    inodes: set[str] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        proc = Path(f"/proc/{current}")
        for fd in proc.glob("fd/*"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
        for children in proc.glob("task/*/children"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in children.read_text().split()]
    return inodes


class OperatorContainer:
    """The operator running from the image as the chart's Deployment runs it, against a test
    control plane where the chart is installed (`objects`, rendered for `namespace`): the chart's
    arguments and env, its ServiceAccount's token, UID 10001 on a read-only root filesystem,
    host network (the API server is on loopback, the only address it is given)."""

    def __init__(
        self, image: Image, objects: list[dict], plane: Any, namespace: str, workdir: Path
    ) -> None:
        self.image, self.objects, self.plane, self.namespace = image, objects, plane, namespace
        self.workdir = workdir
        self.log_path = workdir / "mljob-operator.log"
        self.ports = Ports()
        self.container: Container | None = None
        self._stack = contextlib.ExitStack()

    def start(self, timeout: float = 90) -> OperatorContainer:
        """Run it and wait until it is ready (`/readyz`: it watches and serves)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.plane.api_client() as admin:
            mounts = pod_files(
                admin, self.plane.pki.ca_cert, self.objects, self.namespace, self.workdir
            )
        self.container = self._stack.enter_context(
            run_container(
                self.image,
                chart_args(self.objects, self.ports),
                env=chart_env(self.objects, self.plane.apiserver_port),
                mounts=mounts,
                log_path=self.log_path,
                echo=False,
            )
        )
        self._wait_ready(f"http://127.0.0.1:{self.ports.ready}/readyz", timeout)
        return self

    def _wait_ready(self, url: str, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            if not self.running:
                raise ImageError(f"the operator container exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=3) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                last = f"{error.code} {error.read().decode()[:500]}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last = str(error)
            time.sleep(0.5)
        raise ImageError(f"{url} not ready after {timeout}s ({last}):\n{self.log_tail()}")

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    def peers(self) -> list[tuple[str, int]]:
        """Where the container's open TCP connections lead now (host network: the host's
        tables, filtered to the container's own sockets)."""
        assert self.container is not None
        result = self.image.engine.podman(
            "inspect", "--format", "{{.State.Pid}}", self.container.name
        )
        inodes = process_socket_inodes(int(result.stdout.strip()))
        tables = [Path(f"/proc/net/{name}").read_text() for name in ("tcp", "tcp6")]
        return socket_peers(tables, inodes)

    @property
    def running(self) -> bool:
        return self.container is not None and self.container.running()

    def log_tail(self, lines: int = 40) -> str:
        text = self.container.logs() if self.container else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.container is not None and not self.running:
            raise ImageError(f"the operator container exited; {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, as the kubelet stops a pod, then remove it; its log stays in log_path."""
        if self.container is not None and self.running:
            with contextlib.suppress(ImageError, subprocess.TimeoutExpired):
                self.container.signal_and_wait("TERM", 30)
        self._stack.close()
        self.container = None


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
