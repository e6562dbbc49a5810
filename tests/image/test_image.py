"""The operator image, built from the Dockerfile and run as the chart's pod spec runs it: UID
10001, read-only root filesystem, /tmp a tmpfs, no capabilities, the chart's own arguments, the
chart's ServiceAccount (a TokenRequest token mounted where a pod has it, in-cluster config), the
webhook certificate the chart generated, host network to reach the test control plane."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest
from chart.helm import REPO_ROOT
from chart.test_chart_install import (
    RELEASE_NAMESPACE,
    install,
    make_namespaces,
    run_pipeline,
)
from integration.k8s import MLJOB, create, get, wait_for
from integration.test_pipeline import mljob, ray, spark
from kubernetes import client

from mljob.admission import WEBHOOK_ID
from mljob.testing.image import Ports, chart_args, chart_env, measure, pod_files

from .conftest import run_container, run_once

pytestmark = pytest.mark.integration

SIZE_GOAL = 150_000_000  # bytes uncompressed: what users compare with Go operators' images


@pytest.fixture(scope="module")
def admin(control_plane):
    with control_plane.api_client() as api_client:
        yield api_client


INSPECT = r"""
import importlib.util, json, os, shutil, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
py = [os.path.join(d, f) for d, _, fs in os.walk("/opt/mljob") for f in fs if f.endswith(".py")]
import importlib.util as u
uncompiled = [p for p in py if not os.path.exists(u.cache_from_source(p))]
generated = [os.path.join(site, "kubernetes/client", d) for d in ("api", "models")]
import mljob, mljob.third_party as tp
try:
    open("/opt/mljob/probe", "w")
    root_writable = True
except OSError:
    root_writable = False
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "python": sys.version.split()[0],
    "root_writable": root_writable, "tmp_writable": os.access("/tmp", os.W_OK),
    "importable": {m: importlib.util.find_spec(m) is not None
                   for m in ("pyspark", "ray", "pip", "setuptools", "pytest", "hypothesis",
                             "kopf", "kubernetes", "jsonschema", "prometheus_client", "yaml")},
    "binaries": {b: shutil.which(b) for b in ("apt", "apt-get", "dpkg", "perl", "pip", "sh")},
    "site_packages": sorted(os.listdir(site)),
    "paths": {p: os.path.exists(p) for p in ("/src", "/wheels", "/root/.cache", "/tests",
                                              site + "/tests", site + "/kubernetes/aio")},
    "uncompiled": uncompiled,
    "generated_sources": [f for d in generated for f in os.listdir(d) if f.endswith(".py")],
    "generated_bytecode": sum(f.endswith(".pyc") for d in generated for f in os.listdir(d)),
    "third_party": [str(p) for p in tp.crd_paths() if p.is_file()],
    "mljob_crds": os.listdir(os.path.join(os.path.dirname(mljob.__file__), "crds")),
}))
"""


def test_image_size_and_contents(operator_image, tmp_path):
    size = measure(operator_image)
    print(
        f"\nimage {operator_image.ref}: {size.uncompressed / 1e6:.1f} MB uncompressed, "
        f"{size.compressed / 1e6:.1f} MB compressed (gzip layers), {size.layers} layers"
    )
    assert size.uncompressed < SIZE_GOAL, f"{size.uncompressed / 1e6:.1f} MB"
    assert size.layers <= 3

    facts = json.loads(run_once(operator_image, "python3", "-c", INSPECT))
    assert (facts["uid"], facts["gid"]) == (10001, 10001)
    assert not facts["root_writable"] and facts["tmp_writable"]
    assert facts["python"].startswith("3.11.")
    importable = facts["importable"]
    for absent in ("pyspark", "ray", "pip", "setuptools", "pytest", "hypothesis"):
        assert not importable[absent], f"{absent} is in the image"
    assert all(importable[m] for m in ("kopf", "kubernetes", "jsonschema", "prometheus_client"))
    # No package manager, perl or pip in the runtime (a shell stays, for the Dockerfile's RUN and
    # for `kubectl exec` debugging).
    assert {b: p for b, p in facts["binaries"].items() if p} == {"sh": "/usr/bin/sh"}
    assert not any(facts["paths"].values()), facts["paths"]  # no sources, wheels, caches, tests
    # Bytecode compiled at build (the root filesystem is read-only at runtime): every module has
    # its .pyc; the generated kubernetes API/model modules are bytecode only.
    assert facts["uncompiled"] == []
    assert facts["generated_sources"] == [] and facts["generated_bytecode"] > 500
    # validate() needs the vendored upstream CRDs; the MLJob CRD came through the crds symlink.
    assert len(facts["third_party"]) == 6
    assert "mljob.io_mljobs.yaml" in facts["mljob_crds"]

    # The operator's validation runs in the image: the shipped example is valid.
    example = REPO_ROOT / "examples" / "churn" / "mljob.yaml"
    flags = ["run", "--rm", "--read-only", "--user", "10001:10001", "--network", "none"]
    flags += ["--volume", f"{example}:/work/mljob.yaml:ro", "--entrypoint", "mljob"]
    result = operator_image.engine.podman(
        *flags, operator_image.ref, "validate", "/work/mljob.yaml", check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def wait_http(port: int, path: str, status: int, timeout: float, running) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert running(), "the operator container exited"
        code, body = http_get(port, path)
        if code == status:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{path} did not answer {status} within {timeout}s (last: {code} {body})")


def admission_review(port: int, ca: bytes, server_name: str, namespace: str, body: dict) -> dict:
    """POST an AdmissionReview as the API server would: TLS checked against the chart's CA for
    the chart's webhook Service name."""
    context = ssl.create_default_context(cadata=ca.decode())
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "image-test",
            "kind": {"group": "mljob.io", "version": "v1alpha1", "kind": "MLJob"},
            "resource": {"group": "mljob.io", "version": "v1alpha1", "resource": "mljobs"},
            "requestKind": {"group": "mljob.io", "version": "v1alpha1", "kind": "MLJob"},
            "requestResource": {"group": "mljob.io", "version": "v1alpha1", "resource": "mljobs"},
            "name": body["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:admin", "groups": ["system:masters"]},
            "object": {**body, "metadata": {**body["metadata"], "namespace": namespace}},
            "oldObject": None,
            "dryRun": False,
            "options": None,
        },
    }
    data = json.dumps(review).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # noqa: SIM117
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            request = (
                f"POST /{WEBHOOK_ID} HTTP/1.1\r\nHost: {server_name}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            tls.sendall(request + data)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    return json.loads(payload)["response"]


def test_the_image_runs_a_pipeline_and_the_webhook_as_the_chart_does(
    operator_image, control_plane, admin, tmp_path
):
    make_namespaces(admin, "img-team")
    values = {"webhook.enabled": "true", "watchNamespaces": "{img-team}"}
    objects = install(control_plane, "img", values)
    # No kubelet, so the webhook Service has no endpoints: with failurePolicy Fail the API server
    # would refuse every MLJob. The webhook is called directly below, over TLS, as it would.
    client.AdmissionregistrationV1Api(admin).delete_validating_webhook_configuration(
        "img-mljob-operator"
    )
    mounts = pod_files(admin, control_plane.pki.ca_cert, objects, RELEASE_NAMESPACE, tmp_path)
    ports = Ports()
    (workload,) = [o for o in objects if o["kind"] == "Deployment"]
    grace = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]

    with run_container(
        operator_image,
        chart_args(objects, ports),
        env=chart_env(objects, control_plane.apiserver_port),
        mounts=mounts,
    ) as operator:
        wait_http(ports.health, "/healthz", 200, 90, operator.running)
        wait_http(ports.ready, "/readyz", 200, 90, operator.running)
        done = run_pipeline(admin, "img-team", start_timeout=60)
        assert [s["phase"] for s in done["status"]["steps"]] == ["Succeeded", "Succeeded"]

        code, metrics = http_get(ports.metrics, "/metrics")
        assert code == 200
        assert 'mljob_operator_runs_finished_total{outcome="Succeeded"} 1.0' in metrics, metrics

        # The webhook, served from the container with the certificate the chart generated.
        ca = (tmp_path / "webhook" / "ca.crt").read_bytes()
        service = f"img-mljob-operator-webhook.{RELEASE_NAMESPACE}.svc"
        cycle = mljob("cycle", spark("a", dependsOn=["b"]), spark("b", dependsOn=["a"]))
        denied = admission_review(ports.webhook, ca, service, "img-team", cycle)
        assert denied["allowed"] is False and "cycle" in denied["status"]["message"], denied
        fine = admission_review(ports.webhook, ca, service, "img-team", mljob("ok", ray("fit")))
        assert fine["allowed"] is True, fine

        # A clean stop on SIGTERM, within the chart's grace period.
        code, seconds = operator.signal_and_wait("TERM", grace)
        assert code == 0, operator.logs()[-3000:]
        assert seconds < grace
        log = operator.logs()
    print(f"SIGTERM -> exit in {seconds:.1f}s (grace {grace}s)")
    assert not [line for line in log.splitlines() if "forbidden" in line.lower()], log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_readiness_means_serving_in_the_namespaced_rbac_mode(
    operator_image, control_plane, admin, tmp_path
):
    """The chart's namespaced mode; the operator is also asked to serve a namespace its Roles do
    not cover. kopf answers /healthz, but /readyz says what it waits for; once the Role is
    there, it turns ready and the MLJob in that namespace is served."""
    make_namespaces(admin, "rdy-team", "rdy-late")
    objects = install(control_plane, "rdy", {"watchNamespaces": "{rdy-team}"})
    mounts = pod_files(admin, control_plane.pki.ca_cert, objects, RELEASE_NAMESPACE, tmp_path)
    ports = Ports()
    args = chart_args(objects, ports, extra=("--namespace=rdy-late",))
    create(admin, MLJOB, "rdy-late", mljob("late", ray("fit")))

    with run_container(
        operator_image, args, env=chart_env(objects, control_plane.apiserver_port), mounts=mounts
    ) as operator:
        wait_http(ports.health, "/healthz", 200, 90, operator.running)
        for _ in range(6):  # live, not ready: it may not list anything in rdy-late
            code, body = http_get(ports.ready, "/readyz")
            assert code in (0, 503), body
            time.sleep(1)
        assert code == 503
        waiting = json.loads(body)["waiting"]
        assert any("rdy-late" in reason and "403" in reason for reason in waiting), waiting

        # The chart's Role for the namespace, as a namespaced install listing it would create.
        (role,) = [o for o in objects if o["kind"] == "Role"]
        (binding,) = [o for o in objects if o["kind"] == "RoleBinding"]
        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.create_namespaced_role(
            "rdy-late", {**role, "metadata": {"name": role["metadata"]["name"]}}
        )
        rbac.create_namespaced_role_binding(
            "rdy-late", {**binding, "metadata": {"name": binding["metadata"]["name"]}}
        )
        wait_http(ports.ready, "/readyz", 200, 90, operator.running)
        # Ready means serving: the MLJob there gets its first child.
        wait_for(
            lambda: (get(admin, MLJOB, "rdy-late", "late").get("status") or {}).get("phase"),
            "the MLJob in the namespace that became served",
            timeout=60,
        )
