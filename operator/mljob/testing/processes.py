"""Child processes of the test harness (etcd, kube-apiserver, the operator): started in their
own process group, killed with the Python process that started them, stopped cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class ProcessError(RuntimeError):
    """A harness process exited or never became healthy; the message has its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the Python process dies (even by SIGKILL),
    so an interrupted test run never leaves an etcd, an apiserver or an operator behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class ManagedProcess:
    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> ManagedProcess:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ProcessError(
                f"{self.name} exited with code {self.popen.returncode}; "
                f"log {self.log_path}:\n{self.log_tail(25)}"
            )

    def wait_http_ok(
        self, url: str, context: ssl.SSLContext | None = None, timeout: float = 60
    ) -> None:
        """Poll a health endpoint until it answers 200 (there is nothing to watch yet)."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last_error = str(error)
            time.sleep(0.1)
        raise ProcessError(
            f"{self.name} not healthy at {url} after {timeout:.0f}s ({last_error}); "
            f"log: {self.log_path}"
        )

    def kill(self) -> None:
        """SIGKILL the whole group: no cleanup, no goodbye, as a crashed or evicted pod."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()  # type: ignore[union-attr]

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the group, then SIGKILL what is still there after `timeout`."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)  # type: ignore[union-attr]
        except subprocess.TimeoutExpired:
            self.kill()
