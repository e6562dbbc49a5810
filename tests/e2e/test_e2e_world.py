"""The end-to-end world itself: KubeRay's private resolver, the Ray head's token, kwok's delays."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from mljob.testing.kwok_stages import READY_DELAY_ANNOTATION

from .helpers import wait_for

pytestmark = pytest.mark.e2e


def test_only_kuberay_sees_the_test_resolver(e2e_world):
    kuberay = e2e_world.process("kuberay")
    # Its own mount namespace: its /etc/resolv.conf names the responder; the machine's does not.
    inside = Path(f"/proc/{kuberay.pid}/root/etc/resolv.conf").read_text()
    assert f"nameserver {e2e_world.address}" in inside
    assert e2e_world.address not in Path("/etc/resolv.conf").read_text()
    assert e2e_world.address.startswith("127.")


def test_the_ray_dashboard_wants_its_token(e2e_world):
    url = f"http://127.0.0.1:{e2e_world.ray_dashboard_port}/api/jobs/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401
    with urllib.request.urlopen(f"http://{e2e_world.address}:8265/api/jobs/", timeout=10) as ok:
        assert ok.status == 200  # through the proxy, which adds it


def test_a_ready_delay_annotation_delays_a_pod(api, ns):
    """What a benchmark uses to imitate a slow Ray head start."""
    core = client.CoreV1Api(api)
    pod = {
        "metadata": {"name": "slow", "annotations": {READY_DELAY_ANNOTATION: "3s"}},
        "spec": {"containers": [{"name": "c", "image": "example.com/x:1"}]},
    }
    core.create_namespaced_pod(ns, pod)
    scheduled = wait_for(lambda: core.read_namespaced_pod("slow", ns).spec.node_name, "binding")
    assert scheduled.startswith("kwok-")
    bound = time.monotonic()
    wait_for(lambda: core.read_namespaced_pod("slow", ns).status.phase == "Running", "Running")
    assert time.monotonic() - bound >= 2.5


def test_the_operator_runs_from_the_image_as_the_chart_says_and_dials_only_loopback(
    e2e_operator,
):
    """After the scenarios (this file runs last): the operator is the image's, as the chart's
    user, with the chart's ServiceAccount; every TCP connection it holds leads to loopback."""
    from mljob.testing.image import SA_MOUNT, is_loopback

    engine, name = e2e_operator.image.engine, e2e_operator.container.name
    config = engine.podman("inspect", "--format", "{{.Config.User}} {{.ImageName}}", name)
    assert config.stdout.split() == ["10001:10001", e2e_operator.image.ref]
    mounts = engine.podman("inspect", "--format", "{{range .Mounts}}{{.Destination}} {{end}}", name)
    assert SA_MOUNT in mounts.stdout.split()
    peers = wait_for(e2e_operator.peers, "the operator's connections to the API server")
    apiserver = ("127.0.0.1", e2e_operator.plane.apiserver_port)
    assert apiserver in peers, peers
    assert all(is_loopback(address) for address, _ in peers), peers
