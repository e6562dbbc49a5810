"""The end-to-end world, once per session (operator/mljob/testing/e2e.py, docs/e2e.md): the
real KubeRay and Spark operator on kwok nodes, one real local Ray head, and the mljob operator
serving the namespaces e2e-*. A missing binary or tool fails every test here with the reason."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

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
    """The mljob operator from the shipped image (mljob.testing.image, built or cached), run as
    the chart's Deployment runs it: `helm install` of the chart (cluster-wide, no webhook: no
    kubelet runs its Service's endpoints), its ServiceAccount's token, UID 10001, read-only root,
    /tmp a tmpfs, the chart's arguments; host network, given only the API server on loopback.
    Its log: <world's workdir>/operator/mljob-operator.log."""
    from chart.test_chart_install import RELEASE_NAMESPACE, install

    from mljob.testing.image import ImageError, OperatorContainer, ensure_image

    assert e2e_world.workdir is not None and e2e_world.plane is not None
    problem, operator = None, None
    try:
        image = ensure_image()
        objects = install(e2e_world.plane, "e2e", {})
        operator = OperatorContainer(
            image, objects, e2e_world.plane, RELEASE_NAMESPACE, e2e_world.workdir / "operator"
        )
        operator.start()
    except ImageError as error:
        problem = str(error)
        if operator is not None:
            operator.stop()  # its log stays
    if problem or operator is None:
        pytest.fail(f"cannot run the operator image: {problem}", pytrace=False)
    print(f"operator {image.ref} ({'built' if image.built else 'cached'}) running")
    yield operator
    operator.stop()


# --- concurrent scenarios -------------------------------------------------------------------
# Most scenarios only wait on the controllers. Those marked `e2e_concurrent` run their bodies in
# threads, all started when the first of them is reached, each in its own namespace with its own
# API client; pytest then reports each one's own outcome (its exception and traceback) in order.
CONCURRENCY = 6
CONCURRENT_ARGS = frozenset({"api", "ns", "e2e_world", "e2e_operator"})
_outcomes: dict[str, Future] = {}


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e_concurrent: an end-to-end scenario whose body runs concurrently with the other "
        f"such ones (it may take only {', '.join(sorted(CONCURRENT_ARGS))})",
    )


def _run_scenario(item, world, operator) -> None:
    from kubernetes import client

    with world.plane.api_client() as api:
        name = f"{E2E_PREFIX}{uuid.uuid4().hex[:8]}"
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
        values = {"api": api, "ns": name, "e2e_world": world, "e2e_operator": operator}
        parameters = inspect.signature(item.function).parameters
        item.function(**{arg: values[arg] for arg in parameters})
    world.check_alive()  # a controller that died mid-test fails the test, with its log
    operator.check_alive()


@pytest.fixture(scope="session")
def e2e_concurrent_scenarios(request, e2e_world, e2e_operator) -> Iterator[None]:
    items = [i for i in request.session.items if i.get_closest_marker("e2e_concurrent")]
    for item in items:
        unsupported = set(inspect.signature(item.function).parameters) - CONCURRENT_ARGS
        assert not unsupported, f"{item.nodeid}: {unsupported} in a concurrent scenario"
    pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="e2e")
    for item in items:
        _outcomes[item.nodeid] = pool.submit(_run_scenario, item, e2e_world, e2e_operator)
    yield
    # Each scenario's waits have their own timeouts: a stopped session still ends.
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(autouse=True)
def _start_concurrent_scenarios(request) -> None:
    if request.node.get_closest_marker("e2e_concurrent"):
        request.getfixturevalue("e2e_concurrent_scenarios")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """A concurrent scenario's outcome: wait for its thread, re-raise what it raised."""
    future = _outcomes.get(pyfuncitem.nodeid)
    if future is None:
        return None
    future.result()
    return True


@pytest.fixture
def api(e2e_world, e2e_operator):
    with e2e_world.plane.api_client() as client:
        yield client


@pytest.fixture
def ns(api, e2e_world, e2e_operator) -> Iterator[str]:
    from kubernetes import client

    name = f"{E2E_PREFIX}{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    e2e_world.check_alive()  # a controller that died mid-test fails the test, with its log
    e2e_operator.check_alive()
