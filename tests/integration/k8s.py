"""Small helpers for integration tests: typed access to the children's APIs and waiting on
conditions (never sleeping as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client

T = TypeVar("T")

SPARK = ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
RAYJOB = ("ray.io", "v1", "rayjobs")
RAYCLUSTER = ("ray.io", "v1", "rayclusters")
MLJOB = ("mljob.io", "v1alpha1", "mljobs")


def create(api_client, resource: tuple[str, str, str], namespace: str, body: dict) -> dict:
    """Create with strict field validation, so an unknown field is an error, not pruned."""
    group, version, plural = resource
    return client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        group, version, namespace, plural, body, field_validation="Strict"
    )


def get(api_client, resource: tuple[str, str, str], namespace: str, name: str) -> dict:
    group, version, plural = resource
    return client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        group, version, namespace, plural, name
    )


def patch_status(
    api_client, resource: tuple[str, str, str], namespace: str, name: str, status: dict
) -> dict:
    """Play the child's own operator: merge-patch its /status subresource."""
    group, version, plural = resource
    return client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        group, version, namespace, plural, name, {"status": status}
    )


def wait_for(
    probe: Callable[[], T | None], what: str, timeout: float = 30, interval: float = 0.05
) -> T:
    """Return probe()'s first truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except client.ApiException as error:
            last = f"{error.status} {error.reason}"
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def zero_quota(api_client, namespace: str, resource: str) -> None:
    """A ResourceQuota of zero `resource` objects (e.g. "rayclusters.ray.io"): the API server
    then refuses their creation (403), as an admission policy might."""
    core = client.CoreV1Api(api_client)
    name = f"no-{resource.split('.')[0]}"
    limit = {f"count/{resource}": "0"}
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name=name), spec=client.V1ResourceQuotaSpec(hard=limit)
    )
    core.create_namespaced_resource_quota(namespace, quota)
    # No quota controller runs here: write the usage it would compute, so admission enforces it.
    usage = {"hard": limit, "used": {f"count/{resource}": "0"}}
    core.patch_namespaced_resource_quota_status(name, namespace, {"status": usage})
