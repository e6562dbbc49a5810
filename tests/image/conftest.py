"""The operator image, built once per session from the repository's Dockerfile (cached by a hash
of what the build reads: a second session with nothing changed builds nothing), and a way to run
it as the chart's pod spec does. Missing tools are installed when root, otherwise the tests fail
with the command to run: never skipped."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mljob.testing.image import Image, ImageError, ensure_image


@pytest.fixture(scope="session")
def operator_image() -> Image:
    started = time.monotonic()
    try:
        image = ensure_image()
    except ImageError as error:
        pytest.fail(f"cannot build the operator image: {error}", pytrace=False)
    print(
        f"\noperator image {image.ref}: {'built' if image.built else 'cached'}, "
        f"{time.monotonic() - started:.0f}s"
    )
    return image


@dataclass
class Container:
    """One `podman run -d` of the image, removed at the end."""

    image: Image
    name: str

    def logs(self) -> str:
        result = self.image.engine.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        result = self.image.engine.podman(
            "inspect", "--format", "{{.State.Running}}", self.name, check=False
        )
        return result.stdout.strip() == "true"

    def signal_and_wait(self, signal: str, timeout: float) -> tuple[int, float]:
        """Send a signal, wait for the exit; (exit code, seconds)."""
        started = time.monotonic()
        self.image.engine.podman("kill", "--signal", signal, self.name)
        result = self.image.engine.podman("wait", self.name, timeout=timeout + 5)
        return int(result.stdout.strip().splitlines()[-1]), time.monotonic() - started

    def remove(self) -> None:
        self.image.engine.podman("rm", "--force", "--time", "0", self.name, check=False)


def chart_security_flags() -> list[str]:
    """The chart's pod and container securityContext, as podman flags: UID/GID 10001, read-only
    root filesystem, /tmp an in-memory emptyDir (sizeLimit 64Mi), no capabilities, no
    privilege escalation. Host network: the test control plane listens on loopback."""
    return [
        "--user",
        "10001:10001",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,size=64m,mode=1777",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--network",
        "host",
    ]


@contextlib.contextmanager
def run_container(
    image: Image,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    mounts: dict[Path, str] | None = None,
    entrypoint: str | None = None,
) -> Iterator[Container]:
    name = f"mljob-test-{uuid.uuid4().hex[:10]}"
    flags = ["run", "--detach", "--name", name, *chart_security_flags()]
    for key, value in (env or {}).items():
        flags += ["--env", f"{key}={value}"]
    for source, target in (mounts or {}).items():
        flags += ["--volume", f"{source}:{target}:ro"]
    if entrypoint:
        flags += ["--entrypoint", entrypoint]
    try:
        image.engine.podman(*flags, image.ref, *args)
    except ImageError as error:
        pytest.fail(f"cannot run the operator image: {error}", pytrace=False)
    container = Container(image, name)
    try:
        yield container
    finally:
        print(f"--- container {name} log ---\n{container.logs()[-4000:]}")
        container.remove()


def run_once(image: Image, *command: str) -> str:
    """Run a command in the image as the chart does (entrypoint replaced); its output."""
    flags = ["run", "--rm", *chart_security_flags(), "--entrypoint", command[0]]
    result = image.engine.podman(*flags, image.ref, *command[1:], check=False, timeout=120)
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout
