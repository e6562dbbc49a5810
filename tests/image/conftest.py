"""The operator image, built once per session from the repository's Dockerfile (cached by a hash
of what the build reads: a second session with nothing changed builds nothing), and a way to run
it as the chart's pod spec does. Missing tools are installed when root, otherwise the tests fail
with the command to run: never skipped."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from mljob.testing import image as image_module
from mljob.testing.image import Container, Image, ImageError, ensure_image


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


@contextlib.contextmanager
def run_container(image: Image, args: list[str], **options) -> Iterator[Container]:
    """mljob.testing.image.run_container; a container that cannot start fails the test."""
    try:
        with image_module.run_container(image, args, **options) as container:
            yield container
    except ImageError as error:
        pytest.fail(f"cannot run the operator image: {error}", pytrace=False)


def run_once(image: Image, *command: str) -> str:
    try:
        return image_module.run_once(image, *command)
    except ImageError as error:
        raise AssertionError(str(error)) from None
