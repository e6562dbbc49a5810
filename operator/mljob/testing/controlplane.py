"""A real, throwaway Kubernetes control plane: etcd, kube-apiserver and a garbage-collecting
kube-controller-manager on loopback, with the upstream Spark operator and KubeRay CRDs and the
MLJob CRD installed.

Used by the pytest fixtures, by the benchmarks, and by people:

    python -m mljob.testing.controlplane     # or: mljob dev-cluster
    export KUBECONFIG=...                    # printed on start; Ctrl-C stops everything

There is no kubelet, scheduler or other controller: tests play the Spark operator and KubeRay by
patching the children's status.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mljob import third_party

try:
    from . import certs
except ModuleNotFoundError as error:  # cryptography: only the dev-cluster (or dev) extra has it
    raise ModuleNotFoundError(
        f"{error}; the control plane needs: pip install 'mljob-operator[dev-cluster]'",
        name=error.name,
    ) from error
from .binaries import Binaries, ensure_binaries
from .processes import ManagedProcess, ProcessError, free_port

# The MLJob CRD and kopf's peering CRDs are package data: in a source checkout mljob/crds is a
# symlink to the repository's crds/ (the chart links there too), in a wheel a copy.
PROJECT_CRDS = Path(__file__).resolve().parents[1] / "crds"
MLJOB_CRD_FILE = "mljob.io_mljobs.yaml"


class ControlPlaneError(ProcessError):
    pass


def project_crd_paths() -> list[Path]:
    """The CRD files of this project (MLJob, kopf peering), from the installed package."""
    paths = sorted(PROJECT_CRDS.glob("*.yaml"))
    if not any(path.name == MLJOB_CRD_FILE for path in paths):
        raise ControlPlaneError(
            f"the MLJob CRD ({MLJOB_CRD_FILE}) is missing from {PROJECT_CRDS}; "
            "reinstall mljob-operator (in a source checkout, mljob/crds links to crds/)"
        )
    return paths


@dataclass
class ControlPlane:
    """Start with `start()` or as a context manager; `kubeconfig` is then ready to use."""

    binaries: Binaries | None = None
    workdir: Path | None = None
    crd_paths: Sequence[Path] | None = None
    # kube-controller-manager's controllers: the garbage collector makes owner references
    # cascade, the namespace controller lets test namespaces finish deleting. The end-to-end
    # tier adds `job` (KubeRay's K8sJobMode submitter Jobs).
    controllers: Sequence[str] = ("garbagecollector", "namespace")
    processes: list[ManagedProcess] = field(default_factory=list)
    apiserver_port: int = 0
    kubeconfig: Path = Path()
    _own_workdir: bool = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        started = time.monotonic()
        self.binaries = self.binaries or ensure_binaries()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="mljob-controlplane-"))
            self._own_workdir = True
        try:
            self._certs = certs.generate(self.workdir / "pki")
            self._start_etcd()
            self.apiserver_port = free_port()
            self._start_apiserver()
            self._write_kubeconfig()
            crds = list(self.crd_paths) if self.crd_paths is not None else self.default_crds()
            self.install_crds(crds)
            # After the CRDs: the garbage collector discovers resources at start (then only
            # every 30 s), so starting it now makes owner references cascade at once.
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port and data (for fault tests)."""
        apiserver = self._process("kube-apiserver")
        apiserver.stop()
        apiserver.start()
        apiserver.wait_http_ok(f"{self.url}/readyz", self._admin_ssl_context())

    @staticmethod
    def default_crds() -> list[Path]:
        return [*third_party.crd_paths(), *project_crd_paths()]

    # -- clients ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def api_client(self):
        """A kubernetes ApiClient authenticated as the admin (system:masters)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self._certs.ca_cert)
        configuration.cert_file = str(self._certs.admin_cert)
        configuration.key_file = str(self._certs.admin_key)
        return client.ApiClient(configuration)

    @property
    def pki(self) -> certs.CertFiles:
        """The CA and admin certificates (e.g. to sign a webhook's serving certificate)."""
        return self._certs

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (operator, kubectl, helm) that should use this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, check: bool = True, input: str | None = None):
        assert self.binaries is not None
        return subprocess.run(
            [str(self.binaries.kubectl), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=check,
            input=input,
        )

    # -- components ------------------------------------------------------------------------

    def _process(self, name: str) -> ManagedProcess:
        return next(p for p in self.processes if p.name == name)

    def _launch(self, name: str, args: list[str]) -> ManagedProcess:
        assert self.workdir is not None
        process = ManagedProcess(name, args, self.workdir / f"{name}.log").start()
        self.processes.append(process)
        return process

    def _start_etcd(self) -> None:
        assert self.binaries is not None and self.workdir is not None
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        etcd = self._launch(
            "etcd",
            [
                str(self.binaries.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        )
        etcd.wait_http_ok(f"{self.etcd_url}/health")

    def _start_apiserver(self) -> None:
        assert self.binaries is not None and self.workdir is not None
        pki = self._certs
        apiserver = self._launch(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--secure-port={self.apiserver_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki.service_account_key}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                "--v=0",
            ],
        )
        apiserver.wait_http_ok(f"{self.url}/readyz", self._admin_ssl_context())

    def _start_controller_manager(self) -> None:
        assert self.binaries is not None and self.workdir is not None
        port = free_port()
        manager = self._launch(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--controllers={','.join(self.controllers)}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
                "--concurrent-gc-syncs=10",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its self-signed serving cert; loopback only
        manager.wait_http_ok(f"https://127.0.0.1:{port}/healthz", insecure)

    def _admin_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self._certs.ca_cert))
        context.load_cert_chain(str(self._certs.admin_cert), str(self._certs.admin_key))
        return context

    def _write_kubeconfig(self) -> None:
        assert self.workdir is not None
        self.kubeconfig = self.workdir / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "mljob-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self._certs.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self._certs.admin_cert),
                        "client-key": str(self._certs.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "mljob-test", "context": {"cluster": "mljob-test", "user": "admin"}}
            ],
            "current-context": "mljob-test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    # -- CRDs ------------------------------------------------------------------------------

    def install_crds(self, paths: Sequence[Path], timeout: float = 60) -> None:
        """Create each CRD (a plain POST: the RayCluster CRD is too big for client-side
        apply) and wait until all are Established."""
        from kubernetes import client

        with self.api_client() as api_client:
            extensions = client.ApiextensionsV1Api(api_client)
            names = []
            for path in paths:
                for document in yaml.safe_load_all(path.read_text()):
                    if not document:
                        continue
                    names.append(document["metadata"]["name"])
                    extensions.create_custom_resource_definition(document, _preload_content=False)
            deadline = time.monotonic() + timeout
            pending = set(names)
            while pending:
                for name in sorted(pending):
                    raw = extensions.read_custom_resource_definition(name, _preload_content=False)
                    conditions = (json.loads(raw.data).get("status") or {}).get("conditions") or []
                    if any(
                        c["type"] == "Established" and c["status"] == "True" for c in conditions
                    ):
                        pending.discard(name)
                if pending and time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRDs not Established after {timeout}s: {pending}")
                if pending:
                    time.sleep(0.1)  # Established is set within a few hundred ms


@contextlib.contextmanager
def running(**kwargs) -> Iterator[ControlPlane]:
    plane = ControlPlane(**kwargs)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Start a control plane for manual use and keep it up until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="mljob dev-cluster",
        description=(
            "Start a real local kube-apiserver + etcd (+ garbage collector) with the Spark "
            "operator, KubeRay and MLJob CRDs installed. No kubelet: pods never run, but you "
            "can kubectl apply MLJobs, run the operator against it, and patch child status."
        ),
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep state and kubeconfig here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(workdir=args.workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        plane.start()
        kubectl = plane.binaries.kubectl if plane.binaries else "kubectl"
        print(f"control plane ready in {plane.startup_seconds:.1f}s at {plane.url}")
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print(f"kubectl: {kubectl}")
        print("Ctrl-C stops it and removes its data.", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    except ProcessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        plane.stop()
        print("control plane stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
