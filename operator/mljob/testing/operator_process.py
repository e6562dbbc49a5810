"""Run the operator as a separate process against a control plane, as it runs in a cluster
(tests, benchmarks and fault injection kill it with real signals)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .controlplane import ControlPlane
from .processes import ManagedProcess, free_port


@dataclass
class OperatorProcess:
    control_plane: ControlPlane
    log_path: Path
    # Namespaces (or kopf glob patterns such as "t-*") to serve; None serves all of them.
    namespaces: list[str] | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    health_port: int = 0
    metrics_port: int = 0
    process: ManagedProcess | None = None

    def start(self, timeout: float = 60) -> OperatorProcess:
        """Start `mljob operator` and wait for kopf's /healthz, which answers once the startup
        handlers ran and the indexes are filled."""
        self.health_port, self.metrics_port = free_port(), free_port()
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
        env = {**self.control_plane.env(), **self.env}
        self.process = ManagedProcess("operator", args, self.log_path, env).start()
        self.process.wait_http_ok(f"http://127.0.0.1:{self.health_port}/healthz", None, timeout)
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process else ""

    def kill(self) -> None:
        if self.process:
            self.process.kill()

    def stop(self) -> None:
        if self.process:
            self.process.stop()
