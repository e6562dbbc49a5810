"""A local run opens nothing to the network (issue 19, the ShadowRay surface): while a Spark step,
a Ray step (with actors) and a serve step (Ray Serve's proxy and a replica) run, every listening
socket of the run's process tree is on loopback, the Ray instance refuses a client without the
run's token, and after the run (or Ctrl-C) none of those sockets is left and the token is gone.

The steps hold still while the test looks: each writes `<step>.ready` and waits for the test's
`<step>.go` (bounded, so a broken test never leaves a step hanging)."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from .conftest import (
    Listener,
    alive,
    ctrl_c_as_in_a_terminal,
    descendants,
    listeners,
    open_inodes,
)

pytestmark = pytest.mark.needs_java

STEP_TIMEOUT_SECONDS = 300.0  # a step (JVM or Ray start included) on a busy 2-core machine
GONE_TIMEOUT_SECONDS = 30.0  # after the runner exits: init reaping the group, sockets closing

HOLD = '''
import os, sys, time
from pathlib import Path


def hold(markers: Path, step: str, info: str = "") -> None:
    """Tell the test this step is up (atomically), then wait until it says go."""
    (markers / f"{step}.tmp").write_text(info)
    os.replace(markers / f"{step}.tmp", markers / f"{step}.ready")
    deadline = time.monotonic() + 600
    while not (markers / f"{step}.go").exists():
        if time.monotonic() > deadline:
            sys.exit(f"{step}: the test never said go")
        time.sleep(0.05)
'''

SPARK_STEP = (
    HOLD
    + """
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
assert spark.range(1000).selectExpr("sum(id)").first()[0] == 499500  # the Python workers too
hold(Path(sys.argv[1]), "prepare")
spark.stop()
"""
)

RAY_STEP = (
    HOLD
    + """
import json
import ray

ray.init()


@ray.remote
class Echo:
    def pid(self) -> int:
        return os.getpid()


actors = [Echo.remote() for _ in range(2)]  # worker processes, each with its own server
ray.get([a.pid.remote() for a in actors])
info = {"address": os.environ["RAY_ADDRESS"], "token_file": os.environ["RAY_AUTH_TOKEN_PATH"]}
hold(Path(sys.argv[1]), "train", json.dumps(info))
"""
)

# The serve step's application: its smoke request holds in the replica, so the test looks while
# Serve's HTTP proxy and the replica (with its inter-deployment gRPC server) are up.
SERVE_STEP = (
    HOLD
    + """
import asyncio
from ray import serve


@serve.deployment
class Held:
    async def __call__(self, request) -> str:
        markers = Path(os.environ["MARKERS"])
        await asyncio.get_running_loop().run_in_executor(None, hold, markers, "serve")
        return "served"


app = Held.bind()
"""
)

# One RPC to the GCS with whatever token (or none) the environment gives. GcsClient is Ray's
# own client (internal API): the test needs a connection attempt, not a driver (ray.init retries
# for ~20 s before giving up).
GCS_PROBE = """
import sys
from ray._raylet import GcsClient

try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"mljob-probe", None, timeout=10)
except Exception as e:
    print("refused:", type(e).__name__, e)
    sys.exit(1)
print("accepted")
"""


def write_pipeline(tmp_path: Path, markers: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "spark_step.py").write_text(SPARK_STEP)
    (app / "ray_step.py").write_text(RAY_STEP)
    (app / "serve_step.py").write_text(SERVE_STEP)
    mljob = {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "MLJob",
        "metadata": {"name": "exposure"},
        "spec": {
            "image": "registry.example.com/exposure:0.1.0",
            "steps": [
                {
                    "name": "prepare",
                    "spark": {
                        "type": "Python",
                        "mainApplicationFile": "local:///app/spark_step.py",
                        "arguments": [str(markers)],
                        "sparkVersion": "4.0.1",
                        "driver": {"cores": 1, "memory": "512m"},
                        "executor": {"instances": 1, "cores": 1, "memory": "512m"},
                    },
                },
                {
                    "name": "train",
                    "ray": {
                        "entrypoint": f"python /app/ray_step.py {markers}",
                        "rayVersion": "2.49.0",
                        "workers": {"replicas": 1, "cpu": "1", "memory": "1Gi"},
                    },
                },
                {
                    "name": "serve",
                    "serve": {
                        "importPath": "serve_step:app",
                        "rayVersion": "2.60.0",
                        "runtimeEnv": {"env_vars": {"MARKERS": str(markers)}},
                        "deployments": [{"name": "Held", "numCpus": 0.5}],
                        "smoke": {"path": "/"},
                    },
                },
            ],
        },
    }
    manifest = app / "mljob.yaml"
    manifest.write_text(yaml.safe_dump(mljob, sort_keys=False))
    return manifest


@dataclass
class LocalRunUnderTest:
    """`mljob run` as a subprocess (its own process tree), watched from /proc."""

    tmp_path: Path
    markers: Path = field(init=False)
    output_file: Path = field(init=False)
    runner: subprocess.Popen[bytes] = field(init=False)
    seen_pids: set[int] = field(default_factory=set)
    seen: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.markers = self.tmp_path / "markers"
        self.markers.mkdir()
        manifest = write_pipeline(self.tmp_path, self.markers)
        self.output_file = self.tmp_path / "mljob-run.out"
        command = [sys.executable, "-m", "mljob.cli", "run", str(manifest)]
        command += ["--runs-dir", str(self.tmp_path / "runs"), "--exit-after-smoke"]
        with self.output_file.open("wb") as out:
            self.runner = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, preexec_fn=ctrl_c_as_in_a_terminal
            )

    @property
    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def wait_ready(self, step: str) -> str:
        """Wait until `step` holds (or the run ended early); returns what the step reported."""
        ready = self.markers / f"{step}.ready"
        until(
            lambda: ready.exists() or self.runner.poll() is not None,
            STEP_TIMEOUT_SECONDS,
            f"{step} to start",
        )
        if not ready.exists():
            pytest.fail(f"the run ended before {step} was up:\n{self.output}")
        return ready.read_text()

    def go(self, step: str) -> None:
        (self.markers / f"{step}.go").touch()

    def sample(self) -> list[Listener]:
        """The listening sockets of the whole process tree, remembered for the end checks."""
        pids = descendants(self.runner.pid) | {self.runner.pid}
        self.seen_pids |= pids
        found = listeners(pids)
        self.seen += found
        return found

    def wait_exit(self) -> int:
        return self.runner.wait(timeout=STEP_TIMEOUT_SECONDS)

    def assert_nothing_left(self) -> None:
        """No process of the run alive, none of its sockets open (by inode: ports may be
        reused by other programs on a shared machine)."""
        inodes = {s.inode for s in self.seen}
        until(
            lambda: not any(alive(p) for p in self.seen_pids) and not inodes & open_inodes(),
            GONE_TIMEOUT_SECONDS,
            "the run's processes and sockets to go",
        )

    def kill(self) -> None:
        """Test teardown: whatever happened, leave no run behind."""
        for step in ("prepare", "train", "serve"):
            self.go(step)
        if self.runner.poll() is None:
            self.runner.send_signal(signal.SIGINT)
            try:
                self.runner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.runner.kill()


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)  # polling interval; the condition is what we wait on


def not_on_loopback(found: list[Listener]) -> str:
    return "\n".join(str(s) for s in found if not s.on_loopback)


def probe_gcs(address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(
        [sys.executable, "-c", GCS_PROBE, address],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class Observed:
    spark: list[Listener]
    ray: list[Listener]
    serve: list[Listener]
    ray_info: dict[str, str]
    token_file_mode: int
    token_dir_mode: int
    probes: dict[str, subprocess.CompletedProcess[str]]
    exit_code: int
    output: str


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """One whole run, looked at while each step holds, then after it ended."""
    run = LocalRunUnderTest(tmp_path_factory.mktemp("exposure"))
    try:
        run.wait_ready("prepare")
        spark = run.sample()
        run.go("prepare")
        ray_info = json.loads(run.wait_ready("train"))
        ray = run.sample()
        token_file = Path(ray_info["token_file"])
        wrong_token = secrets.token_hex(32)
        probes = {
            "no token": probe_gcs(ray_info["address"], {"RAY_AUTH_MODE": "disabled"}),
            "wrong token": probe_gcs(
                ray_info["address"], {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": wrong_token}
            ),
            "the run's token": probe_gcs(
                ray_info["address"],
                {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)},
            ),
        }
        modes = token_file.stat().st_mode, token_file.parent.stat().st_mode
        run.go("train")
        run.wait_ready("serve")
        serve = run.sample()
        run.go("serve")
        exit_code = run.wait_exit()
        run.assert_nothing_left()
        yield Observed(
            spark, ray, serve, ray_info, *map(stat.S_IMODE, modes), probes, exit_code, run.output
        )
    finally:
        run.kill()


def test_the_run_succeeds(observed: Observed) -> None:
    assert observed.exit_code == 0, observed.output


def test_the_spark_step_listens_on_loopback_only(observed: Observed) -> None:
    assert observed.spark, "the Spark driver JVM listens (RPC, block manager): none seen"
    assert not not_on_loopback(observed.spark), not_on_loopback(observed.spark)


def test_the_ray_instance_and_its_workers_listen_on_loopback_only(observed: Observed) -> None:
    gcs_port = int(observed.ray_info["address"].rsplit(":", 1)[1])
    assert gcs_port in {s.port for s in observed.ray}, "the GCS was not seen listening"
    assert any("ray::Echo" in s.command for s in observed.ray), "no actor was seen listening"
    assert not not_on_loopback(observed.ray), not_on_loopback(observed.ray)
    assert not any(s.port == 10001 for s in observed.ray), "the Ray client server runs"


def test_ray_serve_listens_on_loopback_only(observed: Observed) -> None:
    """Serve's HTTP proxy on the port the run printed, and the replica's servers (Ray Serve
    binds its inter-deployment gRPC server to all interfaces unless the run's hook rebinds it)."""
    url = re.search(r"Step serve serves at http://127\.0\.0\.1:(\d+)/", observed.output)
    assert url, observed.output
    proxy = [s for s in observed.serve if s.port == int(url.group(1))]
    assert proxy and all("ProxyActor" in s.command for s in proxy), observed.serve
    replica = [s for s in observed.serve if "ServeReplica" in s.command]
    assert len(replica) >= 2, "the replica's worker and gRPC servers were not seen"
    assert "smoke request GET" in observed.output and "-> 200: served" in observed.output
    assert not not_on_loopback(observed.serve), not_on_loopback(observed.serve)


def test_the_ray_instance_refuses_clients_without_the_runs_token(observed: Observed) -> None:
    for case in ("no token", "wrong token"):
        probe = observed.probes[case]
        assert probe.returncode == 1 and "refused: AuthenticationError" in probe.stdout, (
            case,
            probe.stdout,
            probe.stderr[-2000:],
        )
    accepted = observed.probes["the run's token"]
    assert accepted.stdout.strip() == "accepted", accepted.stderr[-2000:]


def test_the_token_is_private_and_removed_with_the_ray_folder(observed: Observed) -> None:
    assert observed.token_file_mode == 0o600
    assert observed.token_dir_mode == 0o700
    assert not Path(observed.ray_info["token_file"]).parent.exists()


def test_ctrl_c_leaves_nothing_listening(tmp_path: Path) -> None:
    run = LocalRunUnderTest(tmp_path)
    try:
        run.wait_ready("prepare")
        run.sample()
        run.go("prepare")
        ray_info = json.loads(run.wait_ready("train"))
        assert run.sample()
        run.runner.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        assert run.wait_exit() != 0
        assert "Interrupted" in run.output, run.output
        run.assert_nothing_left()
        assert not Path(ray_info["token_file"]).parent.exists()
    finally:
        run.kill()
