"""The end-to-end world, once per session (operator/mljob/testing/e2e.py, docs/e2e.md): the
real KubeRay and Spark operator on kwok nodes, one real local Ray head, and the mljob operator
serving the namespaces e2e-*. A missing binary or tool fails every test here with the reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mljob.testing.binaries import BinaryError
from mljob.testing.processes import ProcessError

E2E_PREFIX = "e2e-"


@pytest.fixture(scope="session")
def e2e_world(tmp_path_factory) -> Iterator:
    from mljob.testing.e2e import E2EWorld

    workdir = tmp_path_factory.mktemp("e2e-world")
    world = E2EWorld(workdir=workdir)
    problem = None
    try:
        world.start()
    except (BinaryError, ProcessError) as error:
        world.stop()
        problem = str(error)
    if problem:
        pytest.fail(f"cannot start the end-to-end world: {problem}", pytrace=False)
    print(f"end-to-end world started in {world.startup_seconds:.1f}s; logs in {workdir}")
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture(scope="session")
def e2e_operator(e2e_world) -> Iterator:
    from mljob.testing.operator_process import OperatorProcess

    assert e2e_world.workdir is not None
    # Cluster-wide (this world has no other operator): once, serving the glob "e2e-*", the
    # operator never saw the MLJob of a namespace created just after it started.
    process = OperatorProcess(e2e_world.plane, e2e_world.workdir / "mljob-operator.log")
    try:
        process.start()
    except ProcessError as error:
        pytest.fail(f"cannot start the operator: {error}", pytrace=False)
    yield process
    process.stop()


@pytest.fixture
def api(e2e_world, e2e_operator):
    with e2e_world.plane.api_client() as client:
        yield client


@pytest.fixture
def ns(api, e2e_world) -> Iterator[str]:
    from kubernetes import client

    name = f"{E2E_PREFIX}{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    e2e_world.check_alive()  # a controller that died mid-test fails the test, with its log
