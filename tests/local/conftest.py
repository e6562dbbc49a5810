"""Local-mode tests: real PySpark (needs Java) and real Ray, on small data."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "churn"
SMALL_ROWS = "20000"


def ctrl_c_as_in_a_terminal() -> None:
    """preexec_fn for a `mljob run` a test stops with SIGINT: SIGINT at its default and not
    blocked, as in a terminal's foreground job. Both are inherited: a shell without job control
    (CI's background jobs) starts its children with SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler (a CI run had three Ctrl-C tests see the run go on to exit 0)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def small_example(tmp_path: Path, *, break_step: str | None = None, serve: bool = False) -> Path:
    """The example manifest with little data and few rounds, written next to copies of its
    programs; `break_step` gets an entrypoint/main file that fails. Without `serve` the serve
    step is left out: a run of the whole example serves until Ctrl-C (unless exit_after_smoke),
    and only tests of serving need its time."""
    app = tmp_path / "app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("mljob-runs", "__pycache__"))
    mljob = yaml.safe_load((EXAMPLE / "mljob.yaml").read_text())
    if not serve:
        mljob["spec"]["steps"] = [s for s in mljob["spec"]["steps"] if "serve" not in s]
    steps = {s["name"]: s for s in mljob["spec"]["steps"]}
    steps["prepare"]["spark"]["arguments"] = ["--rows", SMALL_ROWS]
    steps["train"]["ray"]["entrypoint"] = "python /app/train.py --workers 2 --rounds 40"
    if break_step:
        (app / "broken.py").write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
        step = steps[break_step]
        if "spark" in step:
            step["spark"]["mainApplicationFile"] = "local:///app/broken.py"
            step["spark"]["arguments"] = []
        else:
            step["ray"]["entrypoint"] = "python /app/broken.py"
    manifest = app / "mljob.yaml"
    manifest.write_text(yaml.safe_dump(mljob, sort_keys=False))
    return manifest


@pytest.fixture(autouse=True)
def _java_for_pyspark(request: pytest.FixtureRequest) -> None:
    """PySpark tests need a JDK: fail (never skip) with how to get one."""
    if "needs_java" in request.keywords and shutil.which("java") is None:
        pytest.fail(
            "local-mode tests need Java 17 on PATH: apt-get install openjdk-17-jre-headless"
        )


# --- processes and their sockets, from /proc -----------------------------------------------------
def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc), e.g. a Spark JVM or Ray's raylet."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket or an unconnected (receiving from anyone) UDP socket."""

    protocol: str  # tcp, tcp6, udp, udp6
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    inode: str
    pid: int
    command: str

    @property
    def on_loopback(self) -> bool:
        mapped = getattr(self.address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 (dual-stack)
        return self.address.is_loopback or bool(mapped and mapped.is_loopback)

    def __str__(self) -> str:
        return f"{self.protocol} {self.address}:{self.port} pid {self.pid} {self.command}"


TCP_LISTEN = "0A"


def _address(hex_address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """/proc/net/tcp's `0100007F:1F90` (host-order 32-bit words) -> (127.0.0.1, 8080)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.IPv4Address(words) if len(raw) == 4 else ipaddress.IPv6Address(words)
    return address, int(port, 16)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]


def listeners(pids: set[int]) -> list[Listener]:
    """The listening sockets these processes hold: their fds' socket inodes, looked up in the
    socket tables of each one's network namespace (/proc/<pid>/net/{tcp,tcp6,udp,udp6})."""
    found: list[Listener] = []
    for pid in sorted(pids):
        try:
            inodes = _socket_inodes(pid)
            command = _command(pid)
            tables = {
                p: (Path(f"/proc/{pid}/net") / p).read_text()
                for p in ("tcp", "tcp6", "udp", "udp6")
            }
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
        for protocol, table in tables.items():
            for line in table.splitlines()[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if inode not in inodes:
                    continue
                if protocol.startswith("tcp") and state != TCP_LISTEN:
                    continue
                if protocol.startswith("udp") and _address(remote)[1] != 0:
                    continue  # connected UDP: only its peer can send to it
                address, port = _address(local)
                found.append(Listener(protocol, address, port, inode, pid, command))
    return found


def open_inodes() -> set[str]:
    """Every socket inode in this network namespace's TCP and UDP tables."""
    inodes = set()
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        for line in (Path("/proc/net") / protocol).read_text().splitlines()[1:]:
            inodes.add(line.split()[9])
    return inodes
