"""The run's one local Ray instance (`ray start --head --block` in its own process group)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from mljob.local.errors import LocalRunError
from mljob.local.plan import RAY_LOCAL_ENV
from mljob.local.processes import GroupProcess, log_tail

READY_MARKER = "Ray runtime started"
# On SIGTERM, `ray start --block` first asks the GCS to drain the node (for Serve, up to 30 s).
# We stop the whole process group at once, so the GCS is gone and the drain request would just
# time out: our grace period, then SIGKILL, ~12 s at the end of every run. Nothing to drain here.
HEAD_ENV = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
START_TIMEOUT_SECONDS = 180.0


class LocalRay:
    def __init__(self, log_file: Path, cpus: int) -> None:
        self.log_file = log_file
        # Ray puts Unix sockets in its temp dir: keep the path short (108-byte limit).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="mljob-ray-"))
        self.address = f"127.0.0.1:{_free_port()}"
        ray_cli = Path(sys.executable).with_name("ray")
        command = [
            str(ray_cli),
            "start",
            "--head",
            "--block",
            f"--port={self.address.rsplit(':', 1)[1]}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={cpus}",
            f"--temp-dir={self.temp_dir}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
        env = {**os.environ, **RAY_LOCAL_ENV, **HEAD_ENV}
        self._process = GroupProcess(command, env, Path.cwd(), log_file)
        try:
            self._wait_ready()
        except BaseException:  # Ctrl-C while starting included: leave nothing behind
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if READY_MARKER in self.log_file.read_text(errors="replace"):
                return
            if self._process.exit_code() is not None:
                break
            time.sleep(0.2)
        tail = "\n".join(log_tail(self.log_file, 15))
        raise LocalRunError(f"the local Ray instance did not start (log {self.log_file}):\n{tail}")

    def stop(self) -> bool:
        """Stop the whole Ray instance; True when it ended on SIGTERM (no SIGKILL needed)."""
        return self._process.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
