"""Shared fixtures: one real control plane per test session, a fresh namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mljob.testing.binaries import BinaryError
from mljob.testing.controlplane import ControlPlane
from mljob.testing.processes import ProcessError

# The shared operator serves namespaces named t-*; tests that run their own operator (fault
# injection, peering) use other names so that exactly one operator acts on their objects.
SHARED_OPERATOR_PREFIX = "t-"


# --- parallel runs (`make test`: pytest -n 2, pytest-xdist) -----------------------------------
# A test file is one unit of work, so its module fixtures (an example run, a built wheel) run
# once; the end-to-end tier is one unit, so one worker starts its world once. Each worker that
# runs integration tests starts its own control plane and shared operator (session fixtures).
# Units are handed out in collection order, the slowest tiers first, so that neither worker is
# left alone with a long one at the end.
SLOWEST_FIRST = ("tests/e2e/", "tests/local/", "tests/chart/", "tests/image/", "tests/integration/")


def unit_of_work(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "tests/e2e/" if path.startswith("tests/e2e/") else path


def _rank(item: pytest.Item) -> int:
    unit = unit_of_work(item.nodeid)
    return next((i for i, p in enumerate(SLOWEST_FIRST) if unit.startswith(p)), len(SLOWEST_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: the order within a tier is kept


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByUnitOfWork(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    config.option.loadscopereorder = False  # keep the order above, not largest-count first
    return ByUnitOfWork(config, log)


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
        with control_plane.api_client() as client:
            _wait_until_it_serves_new_namespaces(client)
    except ProcessError as error:
        pytest.fail(f"cannot start the operator: {error}", pytrace=False)
    yield process
    process.stop()
    print(f"operator log: {log}")


def _wait_until_it_serves_new_namespaces(api_client, timeout: float = 90) -> None:
    """kopf answers /healthz before its namespace watch runs, and a namespace created in that
    moment is never served. Create probe namespaces until the operator reconciles an MLJob in
    one (its status is written): from then on it serves every new namespace."""
    import time

    from kubernetes import client

    from mljob.testing.corpus import mljob, spark_step

    core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    deadline = time.monotonic() + timeout
    while True:
        name = f"{SHARED_OPERATOR_PREFIX}probe-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": name}})
        probe = mljob([spark_step("probe")])
        probe["metadata"] = {"name": "probe"}
        custom.create_namespaced_custom_object("mljob.io", "v1alpha1", name, "mljobs", probe)
        seen_by = time.monotonic() + 10
        while time.monotonic() < seen_by:
            body = custom.get_namespaced_custom_object(
                "mljob.io", "v1alpha1", name, "mljobs", "probe"
            )
            if body.get("status"):
                core.delete_namespace(name)
                return
            time.sleep(0.05)
        core.delete_namespace(name)
        if time.monotonic() > deadline:
            raise ProcessError(f"the operator served no new namespace within {timeout}s")


@pytest.fixture(scope="session")
def gitops_verdict() -> Path:
    """The gitops-verdict helper (kstatus and Argo CD's gopher-lua, mljob.testing.gitops), built
    from the Go module proxy once. Missing Go is a failure with instructions, never a skip."""
    from mljob.testing.gitops import ensure_gitops_verdict

    try:
        return ensure_gitops_verdict()
    except BinaryError as error:
        pytest.fail(f"cannot build the GitOps verdict helper: {error}", pytrace=False)
