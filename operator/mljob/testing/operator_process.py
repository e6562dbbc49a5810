"""Run the operator as a separate process against a control plane, as it runs in a cluster
(tests, benchmarks and fault injection kill it with real signals)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .controlplane import ControlPlane, ControlPlaneError, _die_with_parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class OperatorProcess:
    control_plane: ControlPlane
    log_path: Path
    # Namespaces (or kopf glob patterns such as "t-*") to serve; None serves all of them.
    namespaces: list[str] | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None
    health_port: int = 0
    metrics_port: int = 0

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.health_port = _free_port()
        self.metrics_port = _free_port()
        args = [
            sys.executable,
            "-m",
            "mljob.cli",
            "operator",
            *[f"--namespace={ns}" for ns in self.namespaces or []],
            f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
            f"--metrics-port={self.metrics_port}",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            args,
            env={**self.control_plane.env(), **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self._wait_ready(timeout)
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def _wait_ready(self, timeout: float) -> None:
        """kopf serves its liveness endpoint once startup handlers ran and indexes are
        filled; poll it (the process has nothing to watch)."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        while time.monotonic() < deadline:
            self.check_alive()
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
                urllib.request.urlopen(url, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise ControlPlaneError(f"operator not ready after {timeout}s; log: {self.log_path}")

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ControlPlaneError(
                f"operator exited with {self.popen.returncode}; log {self.log_path}:\n"
                + self.log_tail()
            )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, as a crashed or evicted pod."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
