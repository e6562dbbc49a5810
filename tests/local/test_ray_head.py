"""The run's local Ray instance: started on loopback with the run's token, then stopped as a
whole, without waiting out the grace period (a SIGTERM'd `ray start --block` would otherwise try
to drain the node through a GCS that got the same SIGTERM), its folder and token removed."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from dataclasses import astuple
from pathlib import Path

import pytest
from integration.k8s import wait_for

from mljob.local import plan
from mljob.local.processes import environ_has
from mljob.local.ray_head import LocalRay

from .conftest import descendants, listeners


def test_local_ray_listens_on_loopback_and_leaves_nothing(tmp_path: Path) -> None:
    ray = LocalRay(tmp_path / "ray-head.log", cpus=1)
    group = ray._process.pid
    # Like a Ray worker: its own process group, the run's environment; blocks on stdin.
    straggler = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        env=ray.process_env(os.environ),
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        found = listeners(descendants(group) | {group})
        assert int(ray.address.rsplit(":", 1)[1]) in {s.port for s in found}
        assert all(s.on_loopback for s in found), "\n".join(map(str, found))
        assert stat.S_IMODE(ray.token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(ray.run_dir.stat().st_mode) == 0o700
        log = re.sub(r"\x1b\[[0-9;]*m", "", ray.log_file.read_text())  # Ray's colours, if any
        assert "Local node IP: 127.0.0.1" in log
    finally:
        assert ray.stop(), "Ray ignored SIGTERM for the whole grace period (draining the node?)"
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
    assert straggler.wait(timeout=10) == -signal.SIGKILL, "a process of the run outlived it"
    assert not ray.run_dir.exists(), "Ray's session files and the token are left behind"


def test_two_runs_at_once_get_two_ray_instances_on_their_own_ports(tmp_path: Path) -> None:
    """Two `mljob run --local` on one machine: with Ray's fixed default ports (the dashboard
    agent's 52365) the second instance's agent would fail to bind."""
    fixed_defaults = {8265, 52365}
    first = LocalRay(tmp_path / "first.log", cpus=1)
    try:
        second = LocalRay(tmp_path / "second.log", cpus=1)
        try:
            found = {}
            for ray in (first, second):
                # Without a dashboard (--include-dashboard=false) nothing binds its port.
                expected = set(astuple(ray.ports)) - {ray.ports.dashboard}
                found[ray] = wait_for(
                    lambda ray=ray, expected=expected: listening_on(ray, expected),
                    f"{ray.log_file.name}: Ray listening on {sorted(expected)}",
                    timeout=120,
                    interval=0.2,
                )
                assert not found[ray] & fixed_defaults, sorted(found[ray])
                assert ray.running()
            assert not found[first] & found[second]
        finally:
            second.stop()
    finally:
        first.stop()


def listening_on(ray: LocalRay, expected: set[int]) -> set[int] | None:
    group = ray._process.pid
    ports = {s.port for s in listeners(descendants(group) | {group})}
    return ports if expected <= ports else None


def test_environ_has_matches_whole_entries_only() -> None:
    environ = b"PATH=/bin\0RAY_AUTH_TOKEN_PATH=/tmp/mljob-ray-ab/auth_token\0"
    assert environ_has(environ, "RAY_AUTH_TOKEN_PATH=/tmp/mljob-ray-ab/auth_token")
    assert not environ_has(environ, "RAY_AUTH_TOKEN_PATH=/tmp/mljob-ray-a")
    assert not environ_has(b"", "PATH=/bin")  # a zombie's environment


def test_ray_process_env_points_at_the_runs_token_only(tmp_path: Path) -> None:
    inherited = {"PATH": "/bin", "RAY_AUTH_TOKEN": "someone-elses", "RAY_AUTH_MODE": "disabled"}
    env = plan.ray_process_env(inherited, tmp_path / "auth_token")
    assert "RAY_AUTH_TOKEN" not in env  # Ray would read it before RAY_AUTH_TOKEN_PATH
    assert env["RAY_AUTH_TOKEN_PATH"] == str(tmp_path / "auth_token")
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0" and env["PATH"] == "/bin"


def test_the_head_command_starts_no_ray_client_server() -> None:
    """`ray start` looks this function up when deciding on the client server; if a Ray release
    renames it, the patch silently stops working: fail here instead."""
    from ray.scripts import scripts

    assert callable(scripts.get_ray_client_dependency_error)
    command = plan.ray_head_command("python", plan.RayPorts.pick(lambda: 6379), 2, Path("/tmp/x"))
    assert "get_ray_client_dependency_error" in command[2]
    assert "--node-ip-address=127.0.0.1" in command
    assert not any(arg.startswith("--ray-client-server-port") for arg in command)


@pytest.mark.parametrize(
    ("version", "supported"),
    [("2.49.2", False), ("2.51.0", False), ("2.52.0", True), ("3.0", True)],
)
def test_token_auth_needs_ray_2_52(version: str, supported: bool) -> None:
    assert plan.ray_token_auth_supported(version) is supported


def test_spark_driver_stays_on_loopback_whatever_the_manifest_says() -> None:
    step = {
        "name": "prep",
        "spark": {
            "mainApplicationFile": "local:///app/etl.py",
            "sparkConf": {"spark.driver.host": "driver-svc.ns.svc", "spark.ui.enabled": "true"},
        },
    }
    layout = plan.RunLayout(app_dir=Path("/p"), data_dir=Path("/runs/x/run-1"), run=1)
    command = plan.spark_command("x", step, layout, plan.Machine(2, 8192), "spark-submit")
    assert "spark.driver.host=127.0.0.1" in command
    assert "spark.driver.bindAddress=127.0.0.1" in command
    assert plan.SPARK_LOCAL_ENV == {"SPARK_LOCAL_IP": "127.0.0.1"}  # the UI, when turned on
