"""The end-to-end world (docs/e2e.md): the test control plane plus kube-scheduler, kwok's fake
nodes, the real KubeRay operator and the real Kubeflow Spark operator, and one real local Ray head
behind every simulated Ray cluster's dashboard. Everything listens and dials on loopback only.

    python -m mljob.testing.e2e      # start it by hand; prints KUBECONFIG; Ctrl-C stops it

What runs for real: kube-apiserver, etcd, kube-controller-manager (garbage collector, namespace,
job), kube-scheduler, KubeRay's ray-operator, the Spark operator's controller and the spark-submit
it runs (from the installed PySpark), the Ray jobs (on the local Ray head), and the mljob operator
(started by the tests). What kwok simulates: the nodes and the pods' lifecycles (kwok_stages.py).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import kwok_stages
from .binaries import Binaries, BinaryError, ensure_binaries
from .controlplane import ControlPlane
from .loopback_net import DashboardProxy, ServiceDNS, pick_loopback_address
from .processes import ManagedProcess, ProcessError, free_port

CONTROLLERS = ("garbagecollector", "namespace", "job", "resourcequota")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# Pod IPs kwok hands out; disjoint from the API server's service range (10.0.0.0/24). Nothing
# ever dials them.
KWOK_POD_CIDR = "10.244.0.0/16"
# Fake nodes: name -> capacity. `gpu-*` have nvidia.com/gpu; nothing has more than 64 CPUs, so a
# pod asking for more stays Pending (the start-deadline scenario).
NODES = {
    "kwok-cpu-0": {"cpu": "32", "memory": "128Gi", "pods": "110"},
    "kwok-cpu-1": {"cpu": "32", "memory": "128Gi", "pods": "110"},
    "kwok-gpu-0": {"cpu": "64", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "8"},
}
SYSTEM_NAMESPACE = "mljob-e2e-system"
SPARK_SERVICE_ACCOUNT = "spark-operator"
RAY_HEAD_CPUS = 4
SPARK_OPERATOR_WORKERS = 3
READY_TIMEOUT = 180.0


class E2EError(ProcessError):
    """The end-to-end world could not start; the message says what is missing."""


def require_tools() -> None:
    """The tools the world needs besides the Go-built binaries, with what to do when missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "KubeRay runs in its own mount namespace with a bind-mounted resolv.conf: run as root"
        )
    for tool in ("unshare", "mount", "java"):
        if shutil.which(tool) is None:
            hint = "install a JDK 17 (PySpark's spark-submit)" if tool == "java" else "util-linux"
            problems.append(f"`{tool}` is not on PATH ({hint})")
    try:
        import pyspark  # noqa: F401
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError as error:
        problems.append(
            f"{error}: the tier needs PySpark and ray[default] (pip install -e '.[dev,local]')"
        )
    if problems:
        raise E2EError("cannot start the end-to-end world: " + "; ".join(problems))


def spark_home() -> Path:
    """The installed PySpark package: it ships bin/spark-submit and the spark-kubernetes jar."""
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-submit").is_file():
        raise E2EError(f"{home} has no bin/spark-submit: reinstall pyspark")
    return home


@dataclass
class E2EWorld:
    workdir: Path | None = None
    binaries: Binaries | None = None
    plane: ControlPlane | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    address: str = ""  # the loopback address of the DNS responder and the dashboard proxy
    dns: ServiceDNS | None = None
    proxy: DashboardProxy | None = None
    ray_dashboard_port: int = 0
    startup_seconds: float = 0.0
    _own_workdir: bool = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> E2EWorld:
        started = time.monotonic()
        require_tools()
        self.binaries = self.binaries or ensure_binaries(with_e2e=True)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="mljob-e2e-"))
            self._own_workdir = True
        try:
            ray_head = self._start_ray_head()  # slowest to start: first, waited for last
            self.plane = ControlPlane(
                binaries=self.binaries, workdir=self.workdir / "plane", controllers=CONTROLLERS
            )
            self.plane.workdir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            self.plane.start()
            self._create_nodes()
            self._start_scheduler()
            self._start_kwok()
            self._start_spark_operator()
            self.address = pick_loopback_address()
            self.dns = ServiceDNS(self.address)
            self._start_kuberay()
            self._wait_ray_head(ray_head)
            self._wait_nodes_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=10)
        self.processes.clear()
        if self.proxy:
            self.proxy.stop()
        if self.dns:
            self.dns.stop()
        if self.plane:
            self.plane.stop()
        if getattr(self, "ray_dir", None):
            shutil.rmtree(self.ray_dir, ignore_errors=True)
        if self.workdir and self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> E2EWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_alive(self) -> None:
        """Raise with the log tail of any component that died."""
        for process in self.processes:
            process.check_alive()

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.processes if p.name == name)

    # -- components --------------------------------------------------------------------------

    def _launch(self, name: str, args: list[str], env: dict[str, str] | None = None):
        assert self.workdir is not None
        process = ManagedProcess(name, args, self.workdir / f"{name}.log", env).start()
        self.processes.append(process)
        return process

    def _create_nodes(self) -> None:
        from kubernetes import client

        assert self.plane is not None
        with self.plane.api_client() as api:
            core = client.CoreV1Api(api)
            for name, capacity in NODES.items():
                core.create_node(
                    {
                        "metadata": {
                            "name": name,
                            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                            "labels": {"type": "kwok", "kubernetes.io/hostname": name},
                        },
                        "status": {"capacity": capacity, "allocatable": capacity},
                    }
                )

    def _wait_nodes_ready(self, timeout: float = 60) -> None:
        from kubernetes import client

        assert self.plane is not None
        deadline = time.monotonic() + timeout
        with self.plane.api_client() as api:
            core = client.CoreV1Api(api)
            while True:
                ready = [
                    node.metadata.name
                    for node in core.list_node().items
                    if any(
                        c.type == "Ready" and c.status == "True"
                        for c in node.status.conditions or []
                    )
                ]
                if len(ready) == len(NODES):
                    # The API server taints every new node not-ready (TaintNodesByCondition);
                    # the node lifecycle controller, not run here, would lift it once Ready.
                    for name in ready:
                        core.patch_node(name, {"spec": {"taints": None}})
                    return
                self.check_alive()
                if time.monotonic() > deadline:
                    raise E2EError(f"kwok nodes not Ready after {timeout}s (ready: {ready})")
                time.sleep(0.2)

    def _start_scheduler(self) -> None:
        assert self.plane is not None and self.binaries and self.binaries.kube_scheduler
        kubeconfig = str(self.plane.kubeconfig)
        port = free_port()
        scheduler = self._launch(
            "kube-scheduler",
            [
                str(self.binaries.kube_scheduler),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
            ],
        )
        scheduler.wait_http_ok(f"https://127.0.0.1:{port}/healthz", _insecure())

    def _start_kwok(self) -> None:
        assert self.plane is not None and self.workdir and self.binaries and self.binaries.kwok
        stages = self.workdir / "kwok-stages.yaml"
        stages.write_text(kwok_stages.STAGES)
        port = free_port()
        self._launch(
            "kwok",
            [
                str(self.binaries.kwok),
                f"--kubeconfig={self.plane.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{port}",
                f"--cidr={KWOK_POD_CIDR}",
                f"--config={stages}",
            ],
        )

    def _start_ray_head(self) -> ManagedProcess:
        """One real Ray head on loopback with its dashboard (the Job API KubeRay uses) and
        token auth, as local mode runs it; the venv's python first on PATH for entrypoints."""
        from mljob.local import plan
        from mljob.local.ray_head import HEAD_ENV, write_token

        assert self.workdir is not None
        # Short path: Ray's Unix sockets live under the temp dir (108-byte limit).
        self.ray_dir = Path(tempfile.mkdtemp(prefix="mljob-e2e-ray-"))
        token_file = write_token(self.ray_dir / "auth_token")
        self.ray_token = token_file.read_text().strip()
        ports = plan.RayPorts.pick(free_port)
        self.ray_dashboard_port = ports.dashboard
        command = [
            *plan.ray_head_command(sys.executable, ports, RAY_HEAD_CPUS, self.ray_dir / "r"),
            "--block",
        ]
        command.remove("--include-dashboard=false")
        command += [
            "--include-dashboard=true",
            f"--dashboard-host={plan.LOOPBACK}",
            "--object-store-memory=268435456",  # 256 MiB of /dev/shm, not 30% of the RAM
        ]
        env = {**plan.ray_process_env(os.environ, token_file), **HEAD_ENV}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return self._launch("ray-head", command, env)

    def _wait_ray_head(self, head: ManagedProcess) -> None:
        """Ready when the Job API answers through the proxy (which adds the token)."""
        self.proxy = DashboardProxy(self.address, self.ray_dashboard_port, self.ray_token)
        url = f"http://{self.address}:8265/api/jobs/"
        deadline = time.monotonic() + READY_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            head.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        self.proxy.requests.clear()
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last = str(error)
            time.sleep(0.5)
        raise E2EError(
            f"the local Ray dashboard did not answer {url} ({last}); log {head.log_path}"
        )

    def _start_kuberay(self) -> None:
        """KubeRay in its own mount namespace, where /etc/resolv.conf names our DNS responder:
        `<cluster>-head-svc.<ns>.svc.cluster.local` resolves to the dashboard proxy."""
        assert self.plane and self.workdir and self.dns and self.binaries
        assert self.binaries.ray_operator
        resolv = self.workdir / "kuberay-resolv.conf"
        resolv.write_text(self.dns.resolv_conf())
        script = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
        env = {**self.plane.env(), "GODEBUG": "netdns=go"}
        self._launch(
            "kuberay",
            [
                "unshare",
                "--mount",
                "--propagation=private",
                "sh",
                "-c",
                script,
                "sh",
                str(resolv),
                str(self.binaries.ray_operator),
                "--enable-leader-election=false",
                f"--metrics-addr=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                "--log-stdout-encoder=console",
            ],
            env,
        )

    def _start_spark_operator(self) -> None:
        """The Spark operator's controller (no webhook) with a ServiceAccount token: the JVM's
        fabric8 client in spark-submit cannot load the harness's EC admin key."""
        assert self.plane and self.workdir and self.binaries and self.binaries.spark_operator
        kubeconfig = self._service_account_kubeconfig()
        home = spark_home()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "SPARK_HOME": str(home),
            # Where spark-submit sends the driver (the operator builds --master from these).
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.plane.apiserver_port),
            "SPARK_LOCAL_IP": "127.0.0.1",
            # spark-submit is a JVM that lives seconds: the client compiler alone and the serial
            # collector halve its CPU, which on two cores is what several concurrent
            # submissions queue on. It runs the same code.
            "SPARK_SUBMIT_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        }
        self._launch(
            "spark-operator",
            [
                str(self.binaries.spark_operator),
                "controller",
                "start",
                "--leader-election=false",
                "--enable-ui-service=false",
                "--enable-metrics=false",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                "--zap-log-level=info",
                # At most this many spark-submit JVMs at once (its chart's controller.workers,
                # default 10): the concurrent scenarios would otherwise start a JVM each on
                # two cores, and every submission would time out together.
                f"--controller-threads={SPARK_OPERATOR_WORKERS}",
            ],
            env,
        )

    def _service_account_kubeconfig(self) -> Path:
        from kubernetes import client

        assert self.plane and self.workdir
        with self.plane.api_client() as api:
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": SYSTEM_NAMESPACE}})
            core.create_namespaced_service_account(
                SYSTEM_NAMESPACE, {"metadata": {"name": SPARK_SERVICE_ACCOUNT}}
            )
            client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
                {
                    "metadata": {"name": "mljob-e2e-spark-operator"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "name": SPARK_SERVICE_ACCOUNT,
                            "namespace": SYSTEM_NAMESPACE,
                        }
                    ],
                }
            )
            token = core.create_namespaced_service_account_token(
                SPARK_SERVICE_ACCOUNT,
                SYSTEM_NAMESPACE,
                {"spec": {"expirationSeconds": 48 * 3600}},
            ).status.token
        ca = self.plane.pki.ca_cert
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {
                        "server": self.plane.url,
                        "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": SPARK_SERVICE_ACCOUNT, "user": {"token": token}}],
            "contexts": [
                {"name": "e2e", "context": {"cluster": "e2e", "user": SPARK_SERVICE_ACCOUNT}}
            ],
            "current-context": "e2e",
        }
        path = self.workdir / "spark-operator.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


def _insecure():
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a component's self-signed serving cert; loopback only
    return context


def main() -> int:
    world = E2EWorld(workdir=Path(tempfile.mkdtemp(prefix="mljob-e2e-")))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with `&`
    try:
        world.start()
        assert world.plane is not None
        print(f"end-to-end world ready in {world.startup_seconds:.1f}s; logs in {world.workdir}")
        print(f"export KUBECONFIG={world.plane.kubeconfig}")
        print(f"kubectl: {world.plane.binaries.kubectl if world.plane.binaries else 'kubectl'}")
        print("run the operator: mljob operator   (Ctrl-C here stops everything)", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    except (ProcessError, BinaryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        world.stop()
        if world.workdir:
            print(f"logs kept in {world.workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
