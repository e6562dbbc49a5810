"""Building MLJobs for the end-to-end tier and reading what the real controllers did."""

from __future__ import annotations

import copy
import json
import shlex
import sys
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

# Shared with the integration tests; re-exported for the scenarios.
from integration.k8s import MLJOB as MLJOB
from integration.k8s import RAYCLUSTER as RAYCLUSTER
from integration.k8s import RAYJOB as RAYJOB
from integration.k8s import SPARK as SPARK
from integration.k8s import create as create
from integration.k8s import get as get
from integration.k8s import wait_for as integration_wait_for
from integration.test_pipeline import mljob as mljob
from kubernetes import client

T = TypeVar("T")


# The Ray head runs entrypoints with this machine's venv first on PATH: `python` has Ray.
PYTHON = "python"
HTTP_MODE = {"submissionMode": "HTTPMode"}
# Extra seconds for a wait that includes a spark-submit: the concurrent scenarios' submissions
# queue on the Spark operator's workers (mljob.testing.e2e.SPARK_OPERATOR_WORKERS) and two cores,
# so a scenario's budget covers the others' JVMs too. It only delays a failure.
SUBMIT_QUEUE = 180


def spark(name: str, template: dict | None = None, **extra: Any) -> dict:
    step: dict = {
        "type": "Python",
        "mainApplicationFile": "local:///app/prepare.py",
        "sparkVersion": "4.0.1",
    }
    if template:
        step["template"] = copy.deepcopy(template)
    return {"name": name, "spark": step, **extra}


def ray(name: str, code: str, template: dict | None = None, shared: bool = False, **extra: Any):
    """A Ray step whose entrypoint runs `code` with python on the real Ray head; HTTPMode."""
    step: dict = {
        "entrypoint": f"{PYTHON} -c {shlex.quote(code)}",
        "template": {**HTTP_MODE, **(template or {})},
    }
    if not shared:
        step["rayVersion"] = "2.49.0"
    return {"name": name, "ray": step, **extra}


def patch_spec(api, namespace: str, name: str, spec: dict) -> dict:
    group, version, plural = MLJOB
    return client.CustomObjectsApi(api).patch_namespaced_custom_object(
        group, version, namespace, plural, name, {"spec": spec}
    )


def items(api, resource: tuple[str, str, str], namespace: str) -> list[dict]:
    group, version, plural = resource
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        group, version, namespace, plural
    )
    return listed["items"]


def pods(api, namespace: str) -> list:
    return client.CoreV1Api(api).list_namespaced_pod(namespace).items


def wait_for(
    probe: Callable[[], T | None], what: str, timeout: float = 120, interval: float = 0.25
) -> T:
    """The integration tests' wait, with the slower pace of real controllers."""
    return integration_wait_for(probe, what, timeout, interval)


def status(api, namespace: str, name: str) -> dict:
    return get(api, MLJOB, namespace, name).get("status") or {}


def wait_phase(api, namespace: str, name: str, phase: str, timeout: float = 180) -> dict:
    def reached():
        job = get(api, MLJOB, namespace, name)
        current = (job.get("status") or {}).get("phase")
        if current == phase:
            return job
        if current in ("Succeeded", "Failed") and phase in ("Succeeded", "Failed"):
            raise AssertionError(
                f"MLJob {name} ended {current}, not {phase}: "
                f"{json.dumps(job.get('status'), indent=1)[:3000]}"
            )
        return None

    return wait_for(reached, f"MLJob {name} to reach {phase}", timeout)


def step(job: dict, name: str) -> dict:
    return next(s for s in job["status"]["steps"] if s["name"] == name)


def condition(job: dict, kind: str) -> dict:
    return next(c for c in job["status"]["conditions"] if c["type"] == kind)


def events(api, namespace: str, kind: str | None = None, name: str | None = None) -> list:
    selectors = []
    if kind:
        selectors.append(f"involvedObject.kind={kind}")
    if name:
        selectors.append(f"involvedObject.name={name}")
    listed = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=",".join(selectors) or None
    )
    return listed.items


def reasons(api, namespace: str, kind: str, name: str) -> list[str]:
    return [e.reason for e in events(api, namespace, kind, name)]


def ray_job_info(world, job_id: str) -> dict:
    """What the real Ray head says about a job (through the proxy, which adds the token)."""
    url = f"http://{world.address}:8265/api/jobs/{job_id}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def ray_job_logs(world, job_id: str) -> str:
    url = f"http://{world.address}:8265/api/jobs/{job_id}/logs"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["logs"]


def python() -> str:
    return sys.executable
