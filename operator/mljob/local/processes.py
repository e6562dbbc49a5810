"""Child processes of a local run: each in its own session (process group), output to a file,
stopped as a whole group (the Spark JVM and Python workers, Ray's raylet and workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_GRACE_SECONDS = 10.0


class GroupProcess:
    """A command running in its own process group, its stdout+stderr appended to `log_file`."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], cwd: Path, log_file: Path
    ) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = log_file
        with log_file.open("ab") as log:
            self._popen = subprocess.Popen(
                list(command),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the group ourselves
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def exit_code(self) -> int | None:
        return self._popen.poll()

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> bool:
        """SIGTERM the whole group, SIGKILL what is left after the grace period. Returns
        whether the leader ended on SIGTERM, within the grace period."""
        self._signal_group(signal.SIGTERM)
        try:
            self._popen.wait(timeout=grace_seconds)
            graceful = True
        except subprocess.TimeoutExpired:
            graceful = False
        self._signal_group(signal.SIGKILL)
        self._popen.wait()
        _wait_group_gone(self.pid, grace_seconds)
        return graceful

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Grandchildren may outlive the leader briefly; make sure none is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def stop_processes_with_env(entry: str, timeout: float = STOP_GRACE_SECONDS) -> list[int]:
    """SIGKILL every process whose environment holds `entry` ("NAME=value") until none is left
    (or `timeout`); returns the ones found. For processes that left our process groups (Ray's
    workers lead their own) but inherited a variable unique to the run."""
    found: set[int] = set()
    deadline = time.monotonic() + timeout
    while (pids := pids_with_env(entry)) and time.monotonic() < deadline:
        found.update(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)  # until they are gone (a zombie's environment reads empty)
    return sorted(found)


def pids_with_env(entry: str, proc: Path = Path("/proc")) -> list[int]:
    """Live processes whose environment (/proc/<pid>/environ; Linux) holds `entry`."""
    if not proc.is_dir():
        return []
    found = []
    for process in proc.iterdir():
        if not process.name.isdigit() or int(process.name) == os.getpid():
            continue
        try:
            environ = (process / "environ").read_bytes()
        except OSError:  # ended meanwhile, or not ours
            continue
        if environ_has(environ, entry):
            found.append(int(process.name))
    return found


def environ_has(environ: bytes, entry: str) -> bool:
    """Whether a NUL-separated environment block holds exactly `entry` ("NAME=value")."""
    return entry.encode() in environ.split(b"\0")


def log_tail(log_file: Path, lines: int = 30) -> list[str]:
    if not log_file.exists():
        return []
    with log_file.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
        text = f.read().decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]
