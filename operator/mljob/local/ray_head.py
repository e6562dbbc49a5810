"""The run's one local Ray instance (`ray start --head --block` in its own process group),
listening on 127.0.0.1 only and requiring a token made for the run (see plan.RAY_LOCAL_ENV)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from mljob.local import plan
from mljob.local.errors import LocalRunError
from mljob.local.processes import GroupProcess, log_tail, stop_processes_with_env

READY_MARKER = "Ray runtime started"
# On SIGTERM, `ray start --block` first asks the GCS to drain the node (for Serve, up to 30 s).
# We stop the whole process group at once, so the GCS is gone and the drain request would just
# time out: our grace period, then SIGKILL, ~12 s at the end of every run. Nothing to drain here.
HEAD_ENV = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
START_TIMEOUT_SECONDS = 180.0
TOKEN_FILE_NAME = "auth_token"
RAY_TEMP_DIR_NAME = "r"


class LocalRay:
    def __init__(self, log_file: Path, cpus: int) -> None:
        self.log_file = log_file
        # Ray makes its temp folder world-writable (0777) and keeps its Unix sockets there; the
        # parent from mkdtemp is 0700, so only we reach either. Short path: 108-byte socket limit.
        self.run_dir = Path(tempfile.mkdtemp(prefix="mljob-ray-"))
        self.temp_dir = self.run_dir / RAY_TEMP_DIR_NAME
        self.token_file = write_token(self.run_dir / TOKEN_FILE_NAME)
        self.ports = plan.RayPorts.pick(free_loopback_port)
        self.address = f"{plan.LOOPBACK}:{self.ports.gcs}"
        command = [
            *plan.ray_head_command(sys.executable, self.ports, cpus, self.temp_dir),
            "--block",
        ]
        env = {**self.process_env(os.environ), **HEAD_ENV}
        self._process = GroupProcess(command, env, Path.cwd(), log_file)
        try:
            self._wait_ready()
        except BaseException:  # Ctrl-C while starting included: leave nothing behind
            self.stop()
            raise

    def process_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with what it takes to use this instance (loopback settings, the token)."""
        return plan.ray_process_env(base, self.token_file)

    def running(self) -> bool:
        """Whether the head (`ray start --block`) is still up."""
        return self._process.exit_code() is None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if READY_MARKER in self.log_file.read_text(errors="replace"):
                return
            if self._process.exit_code() is not None:
                break
            time.sleep(0.2)
        code = self._process.exit_code()
        why = f"exit code {code}" if code is not None else f"not up in {START_TIMEOUT_SECONDS:g} s"
        headline = f"the local Ray instance did not start ({why}; log {self.log_file})"
        # The headline alone says it all when `ray start` died before writing anything (a crash
        # on a bad RAY_* setting); else the log's end, where Ray says why.
        tail = "\n".join(log_tail(self.log_file, 15)).strip("\n")
        raise LocalRunError(f"{headline}:\n{tail}" if tail.strip() else headline)

    def stop(self) -> bool:
        """Stop the whole Ray instance and remove its folder (session files, the token); True
        when it ended on SIGTERM (no SIGKILL needed)."""
        try:
            return self._process.stop()
        finally:
            # Ray's workers lead their own process groups: they end with the raylet, but one
            # being started just then can outlive it and recreate the temp folder. Every Ray
            # process has the run's token path in its environment.
            stop_processes_with_env(f"{plan.RAY_TOKEN_PATH_ENV}={self.token_file}")
            shutil.rmtree(self.run_dir, ignore_errors=True)


def write_token(path: Path) -> Path:
    """A new random token in a file only this user can read (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))  # 256 bits, as `ray get-auth-token --generate`
    return path


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 now (the caller binds it soon after; a race we accept)."""
    with socket.socket() as s:
        s.bind((plan.LOOPBACK, 0))
        return s.getsockname()[1]
