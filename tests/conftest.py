"""Shared fixtures: one real control plane per test session, a fresh namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mljob.testing.binaries import BinaryError
from mljob.testing.controlplane import ControlPlane
from mljob.testing.processes import ProcessError

# The shared operator serves namespaces named t-*; tests that run their own operator (fault
# injection, peering) use other names so that exactly one operator acts on their objects.
SHARED_OPERATOR_PREFIX = "t-"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A real etcd + kube-apiserver + garbage collector with the upstream CRDs installed.

    A missing binary is a failure with instructions, never a skip."""
    plane = ControlPlane()
    try:
        plane.start()
    except (BinaryError, ProcessError) as error:
        pytest.fail(f"cannot start the test control plane: {error}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def api_client(control_plane: ControlPlane):
    with control_plane.api_client() as client:
        yield client


@pytest.fixture
def namespace(api_client) -> Iterator[str]:
    """A fresh namespace per test, so tests never see each other's objects."""
    from kubernetes import client

    name = f"{SHARED_OPERATOR_PREFIX}{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def operator_process(control_plane: ControlPlane, tmp_path_factory) -> Iterator:
    """The operator as its own process (`mljob operator`), shared by the tests
    that only need a running operator; fault tests start their own."""
    from mljob.testing.operator_process import OperatorProcess

    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(control_plane, log, namespaces=[f"{SHARED_OPERATOR_PREFIX}*"])
    try:
        process.start()
    except ProcessError as error:
        pytest.fail(f"cannot start the operator: {error}", pytrace=False)
    yield process
    process.stop()
    print(f"operator log: {log}")
