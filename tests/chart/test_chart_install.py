"""`helm install` into a real control plane, then the operator runs as the chart's ServiceAccount
(a real token from the TokenRequest API, not the admin) with the chart's own arguments and
completes a pipeline: the RBAC is sufficient. The same identity is refused what it must not do:
the RBAC is not excessive.

This module starts its own control plane, so no other operator acts on its MLJobs: a pipeline
that completes was driven by the chart's identity alone."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from integration.k8s import MLJOB, RAYJOB, SPARK, create, get, patch_status, wait_for
from integration.test_admission import (
    MLJOB_WRITER,
    as_user,
    create_error,
    grant,
    message,
    webhook_answer,
    webhook_configuration,
)
from integration.test_pipeline import mljob, ray, spark
from kubernetes import client

from mljob.testing.binaries import ensure_binaries
from mljob.testing.certs import issue_serving_files
from mljob.testing.controlplane import ControlPlane
from mljob.testing.processes import ManagedProcess, ProcessError, free_port

from .helm import CHART, REPO_ROOT, container, helm, helm_path, render, set_args

pytestmark = pytest.mark.integration

RELEASE_NAMESPACE = "mljob-system"


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    helm_path()  # fails with instructions when helm is missing
    control_plane = ControlPlane(binaries=ensure_binaries(with_helm=True))
    try:
        control_plane.start()
    except ProcessError as error:
        pytest.fail(f"cannot start the test control plane: {error}", pytrace=False)
    yield control_plane
    control_plane.stop()


@pytest.fixture(scope="module")
def admin(plane: ControlPlane):
    with plane.api_client() as api_client:
        yield api_client


def make_namespaces(admin, *names: str) -> None:
    core = client.CoreV1Api(admin)
    for name in names:
        with contextlib.suppress(client.ApiException):
            core.create_namespace({"metadata": {"name": name}})


def install(plane: ControlPlane, release: str, values: dict[str, str]) -> list[dict]:
    """`helm install` (no --wait: there is no kubelet to run the pods); returns the objects
    the same values render to. The webhook is off unless asked for: with no kubelet its Service
    has no endpoints, and failurePolicy Fail would refuse every MLJob."""
    values = {"webhook.enabled": "false", **values}
    helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        *set_args(values),
        env=plane.env(),
    )
    return render(values, release=release, namespace=RELEASE_NAMESPACE)


def service_account_kubeconfig(plane: ControlPlane, admin, objects, path: Path) -> Path:
    """A kubeconfig holding a real token of the chart's ServiceAccount (TokenRequest API)."""
    (sa,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    token = client.CoreV1Api(admin).create_namespaced_service_account_token(
        sa["metadata"]["name"], RELEASE_NAMESPACE, {"spec": {"expirationSeconds": 3600}}
    )
    admin_config = yaml.safe_load(plane.kubeconfig.read_text())
    user = {"name": "operator", "user": {"token": token.status.token}}
    config = {
        **admin_config,
        "users": [user],
        "contexts": [{"name": "sa", "context": {"cluster": "mljob-test", "user": "operator"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


class ChartOperator:
    """The operator process started exactly as the chart's container: the rendered args and
    env, with the pod-only values (downward API, the health port) filled in locally."""

    def __init__(
        self,
        objects: list[dict],
        kubeconfig: Path,
        log: Path,
        pod_index: int = 0,
        overrides: dict[str, str] | None = None,
    ):
        spec = container(objects)
        self.port = free_port()
        self.ready_port = free_port()
        env = {"KUBECONFIG": str(kubeconfig), "POD_ID": f"operator-{pod_index}"}
        for item in spec["env"]:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif item["name"] == "POD_INDEX":
                env["POD_INDEX"] = str(pod_index)
        # Pods have their own network namespace; processes on one host need their own ports.
        overrides = {
            "--liveness": f"http://127.0.0.1:{self.port}/healthz",
            "--readiness": f"http://127.0.0.1:{self.ready_port}/readyz",
            "--metrics-port": str(free_port()),
            **(overrides or {}),
        }
        args = []
        for arg in spec["args"]:
            flag = arg.split("=", 1)[0]
            if flag in overrides:
                arg = f"{flag}={overrides[flag]}"
            args.append(arg.replace("$(POD_INDEX)", str(pod_index)))
        self.args = args
        self.log = log
        self.process = ManagedProcess(
            "operator",
            [sys.executable, "-m", "mljob.cli", "operator", *args],  # the image's entrypoint
            log,
            {**os.environ, **env},
        ).start()

    def wait_ready(self) -> None:
        self.process.wait_http_ok(f"http://127.0.0.1:{self.port}/healthz", timeout=60)

    def stop(self) -> None:
        self.process.stop()


@contextlib.contextmanager
def operators(objects, kubeconfig: Path, tmp_path: Path, replicas: int = 1):
    started = [
        ChartOperator(objects, kubeconfig, tmp_path / f"operator-{i}.log", i)
        for i in range(replicas)
    ]
    try:
        for operator in started:
            operator.wait_ready()
        yield started
    finally:
        for operator in started:
            operator.stop()


def run_pipeline(admin, namespace: str, name: str = "churn", start_timeout: float = 30) -> dict:
    """Create a Spark -> Ray MLJob, play the Spark operator and KubeRay, wait for Succeeded."""
    create(admin, MLJOB, namespace, mljob(name, spark("prepare"), ray("train")))
    app = wait_for(
        lambda: only_child(admin, SPARK, namespace), "the SparkApplication", start_timeout
    )
    for state in ("SUBMITTED", "RUNNING", "COMPLETED"):
        status = {"applicationState": {"state": state}, "driverInfo": {}}
        patch_status(admin, SPARK, namespace, app["metadata"]["name"], status)
    job = wait_for(lambda: only_child(admin, RAYJOB, namespace), "the RayJob")
    patch_status(
        admin,
        RAYJOB,
        namespace,
        job["metadata"]["name"],
        {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"},
    )

    def succeeded():
        mljob = get(admin, MLJOB, namespace, name)
        return mljob if mljob.get("status", {}).get("phase") == "Succeeded" else None

    done = wait_for(succeeded, f"MLJob {namespace}/{name} to succeed")
    wait_for(
        lambda: (
            client.CoreV1Api(admin)
            .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
            .items
        ),
        "the operator's Events on the MLJob",
    )
    return done


def only_child(admin, resource, namespace: str) -> dict | None:
    group, version, plural = resource
    items = client.CustomObjectsApi(admin).list_namespaced_custom_object(
        group, version, namespace, plural
    )["items"]
    assert len(items) <= 1, f"duplicate {plural}: {[i['metadata']['name'] for i in items]}"
    return items[0] if items else None


def can_i(plane: ControlPlane, kubeconfig: Path, *args: str) -> bool:
    """`kubectl auth can-i` as the ServiceAccount (its own SelfSubjectAccessReview)."""
    assert plane.binaries is not None
    resource, _, subresource = args[1].partition("/")
    if subresource == "status":
        args = (args[0], resource, f"--subresource={subresource}", *args[2:])
    result = subprocess.run(
        [str(plane.binaries.kubectl), "--kubeconfig", str(kubeconfig), "auth", "can-i", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def forbidden_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "forbidden" in line.lower()]


def test_cluster_wide_install_runs_a_pipeline_with_least_privilege(plane, admin, tmp_path):
    make_namespaces(admin, "cw-team")
    objects = install(plane, "cw", {})
    kubeconfig = service_account_kubeconfig(plane, admin, objects, tmp_path / "sa.kubeconfig")

    with operators(objects, kubeconfig, tmp_path) as (operator,):
        done = run_pipeline(admin, "cw-team")
    assert [s["phase"] for s in done["status"]["steps"]] == ["Succeeded", "Succeeded"]
    assert not forbidden_lines(operator.log), "the operator hit a 403"

    # Sufficient ...
    for verb, resource in [
        ("watch", "mljobs.mljob.io"),
        ("patch", "mljobs.mljob.io/status"),
        ("watch", "scheduledmljobs.mljob.io"),
        ("patch", "scheduledmljobs.mljob.io/status"),
        ("create", "mljobs.mljob.io"),  # a ScheduledMLJob's runs ...
        ("delete", "mljobs.mljob.io"),  # ... pruned to the history limits
        ("create", "rayclusters.ray.io"),
        ("delete", "sparkapplications.sparkoperator.k8s.io"),
    ]:
        assert can_i(plane, kubeconfig, verb, resource, "-n", "anywhere")
    # ... and no more.
    for args in [
        ("get", "secrets", "-n", "cw-team"),
        ("get", "secrets", "-n", RELEASE_NAMESPACE),
        ("list", "configmaps", "-n", "cw-team"),
        ("create", "pods", "-n", "cw-team"),
        ("update", "mljobs.mljob.io", "-n", "cw-team"),
        ("patch", "mljobs.mljob.io", "-n", "cw-team"),
        ("patch", "scheduledmljobs.mljob.io", "-n", "cw-team"),
        ("delete", "scheduledmljobs.mljob.io", "-n", "cw-team"),
        ("patch", "rayclusters.ray.io/status", "-n", "cw-team"),
        ("patch", "rayjobs.ray.io/status", "-n", "cw-team"),
        ("patch", "sparkapplications.sparkoperator.k8s.io/status", "-n", "cw-team"),
        ("list", "namespaces"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "clusterkopfpeerings.kopf.dev"),
    ]:
        assert not can_i(plane, kubeconfig, *args), f"the operator may {' '.join(args)}"
    # The documented CRD upgrade (docs/install.md) works on CRDs created by someone else.
    applied = plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"), check=False
    )
    assert applied.returncode == 0, applied.stderr
    helm("uninstall", "cw", "--namespace", RELEASE_NAMESPACE, env=plane.env())


def test_namespaced_install_acts_only_in_its_namespaces(plane, admin, tmp_path):
    make_namespaces(admin, "ns-a", "ns-b", "ns-outside")
    objects = install(plane, "scoped", {"watchNamespaces": "{ns-a,ns-b}"})
    kubeconfig = service_account_kubeconfig(plane, admin, objects, tmp_path / "sa.kubeconfig")

    with operators(objects, kubeconfig, tmp_path) as (operator,):
        run_pipeline(admin, "ns-b")
        # An MLJob outside the listed namespaces is not the operator's business.
        create(admin, MLJOB, "ns-outside", mljob("outside", ray("fit")))
        run_pipeline(admin, "ns-a")  # meanwhile, the outside MLJob could have been picked up
    # never written: only the CRD's status default shows
    assert get(admin, MLJOB, "ns-outside", "outside").get("status") == {"observedGeneration": 0}
    assert only_child(admin, RAYJOB, "ns-outside") is None
    assert not forbidden_lines(operator.log), "the operator hit a 403"

    for namespace in ("ns-a", "ns-b"):
        assert can_i(plane, kubeconfig, "list", "mljobs.mljob.io", "-n", namespace)
        assert can_i(plane, kubeconfig, "create", "rayjobs.ray.io", "-n", namespace)
    for args in [
        ("list", "mljobs.mljob.io", "-n", "ns-outside"),
        ("create", "rayjobs.ray.io", "-n", "ns-outside"),
        ("create", "events", "-n", "ns-outside"),
        ("list", "mljobs.mljob.io", "--all-namespaces"),
        ("get", "secrets", "-n", "ns-a"),
        ("get", "namespaces/ns-a"),  # names only (list/watch), not even a get
        ("delete", "namespaces/ns-a"),
    ]:
        assert not can_i(plane, kubeconfig, *args), f"the operator may {' '.join(args)}"
    helm("uninstall", "scoped", "--namespace", RELEASE_NAMESPACE, env=plane.env())


def test_namespaced_install_works_without_any_cluster_scoped_right(plane, admin, tmp_path):
    """rbac.clusterScopedReads=false: Roles only. kopf does not need the CRD and Namespace
    reads: after retrying them (about a minute) it falls back to its initial resource scan
    and to the listed namespaces, and the pipeline completes."""
    make_namespaces(admin, "solo")
    values = {"watchNamespaces": "{solo}", "rbac.clusterScopedReads": "false"}
    objects = install(plane, "solo", values)
    assert not [o for o in objects if o["kind"].startswith("Cluster")]
    kubeconfig = service_account_kubeconfig(plane, admin, objects, tmp_path / "sa.kubeconfig")

    with operators(objects, kubeconfig, tmp_path) as (operator,):
        run_pipeline(admin, "solo", start_timeout=180)
    log = operator.log.read_text()
    assert "Not enough permissions to list namespaces" in log
    assert "Not enough permissions to watch for resources" in log
    for line in forbidden_lines(operator.log):
        assert "namespaces" in line or "customresourcedefinitions" in line, line
    assert not can_i(plane, kubeconfig, "list", "namespaces")
    assert not can_i(plane, kubeconfig, "list", "customresourcedefinitions.apiextensions.k8s.io")
    helm("uninstall", "solo", "--namespace", RELEASE_NAMESPACE, env=plane.env())


def test_two_replicas_peer_through_the_charts_peering_object(plane, admin, tmp_path):
    """replicaCount 2: both pods run as the ServiceAccount with their own priorities, both
    keep-alives are recorded, the pipeline completes once (no duplicate child)."""
    make_namespaces(admin, "ha-team")
    objects = install(plane, "ha", {"replicaCount": "2"})
    kubeconfig = service_account_kubeconfig(plane, admin, objects, tmp_path / "sa.kubeconfig")

    with operators(objects, kubeconfig, tmp_path, replicas=2) as (standby, active):
        # Both pods write keep-alives (the peering RBAC works), with distinct priorities.
        def peers():
            peering = client.CustomObjectsApi(admin).get_cluster_custom_object(
                "kopf.dev", "v1", "clusterkopfpeerings", "ha-mljob-operator"
            )
            found = {p: i["priority"] for p, i in (peering.get("status") or {}).items()}
            return found if len(found) == 2 else None

        assert wait_for(peers, "both keep-alives") == {"operator-0": 0, "operator-1": 1}
        run_pipeline(admin, "ha-team")  # only_child() fails on any duplicate child
    # Started together, the standby may handle an event in flight or queued right after it
    # paused (kopf pauses its watches, not a handler already running): which replica creates
    # a child is a race, but each child is created once, by one of them. Deterministic names
    # and "409 means it exists" make that so; only_child() saw no duplicate object either.
    logs = standby.log.read_text() + active.log.read_text()
    for child in ("SparkApplication churn-prepare-r1", "RayJob churn-train-r1"):
        assert logs.count(f"ha-team/churn: created {child}") == 1, child
    for operator in (standby, active):
        assert not forbidden_lines(operator.log), operator.log.read_text()[-2000:]
    helm("uninstall", "ha", "--namespace", RELEASE_NAMESPACE, env=plane.env())


def test_webhook_install_serves_the_webhook_with_the_charts_identity(plane, admin, tmp_path):
    """Self-managed certificate: one Secret, its CA in the webhook configuration, kept across
    upgrades; the operator, as the chart's ServiceAccount, serves the webhook and may ask the
    API server whether a user may create the children (SubjectAccessReview)."""
    make_namespaces(admin, "wh-team")
    values = {"webhook.enabled": "true", "watchNamespaces": "{wh-team}"}
    objects = install(plane, "wh", values)
    core = client.CoreV1Api(admin)
    secret = core.read_namespaced_secret("wh-mljob-operator-webhook-tls", RELEASE_NAMESPACE)
    registrations = client.AdmissionregistrationV1Api(admin)
    hook, schedule_hook = registrations.read_validating_webhook_configuration(
        "wh-mljob-operator"
    ).webhooks
    assert schedule_hook.client_config.ca_bundle == secret.data["ca.crt"]
    assert schedule_hook.namespace_selector.match_expressions[0].values == ["wh-team"]
    assert hook.client_config.ca_bundle == secret.data["ca.crt"]
    assert hook.failure_policy == "Fail"
    assert hook.namespace_selector.match_expressions[0].values == ["wh-team"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret.data["ca.crt"]))
    serving = x509.load_pem_x509_certificate(base64.b64decode(secret.data["tls.crt"]))
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "wh-mljob-operator-webhook.mljob-system.svc" in names.get_values_for_type(x509.DNSName)

    helm("upgrade", "wh", str(CHART), "-n", RELEASE_NAMESPACE, *set_args(values), env=plane.env())
    kept = core.read_namespaced_secret("wh-mljob-operator-webhook-tls", RELEASE_NAMESPACE)
    assert kept.data == secret.data, "an upgrade must keep the webhook certificate"

    kubeconfig = service_account_kubeconfig(plane, admin, objects, tmp_path / "sa.kubeconfig")
    assert can_i(plane, kubeconfig, "create", "subjectaccessreviews.authorization.k8s.io")
    assert not can_i(plane, kubeconfig, "get", "secrets", "-n", RELEASE_NAMESPACE)

    # No kubelet, no Service endpoints: point a webhook configuration straight at the operator,
    # run with the chart's arguments and a certificate for 127.0.0.1.
    registrations.delete_validating_webhook_configuration("wh-mljob-operator")
    cert, key = issue_serving_files(plane.pki, tmp_path, ["127.0.0.1"])
    port = free_port()
    overrides = {
        "--webhook-port": str(port),
        "--webhook-cert": str(cert),
        "--webhook-key": str(key),
    }
    operator = ChartOperator(objects, kubeconfig, tmp_path / "operator.log", overrides=overrides)
    try:
        operator.wait_ready()
        registrations.create_validating_webhook_configuration(
            webhook_configuration("wh-local", "wh-team", port, plane.pki.ca_cert.read_bytes())
        )
        webhook_answer(admin, "wh-team")
        grant(admin, "wh-team", "carol", [MLJOB_WRITER])
        with as_user(plane, "carol") as carol:
            denied = create_error(carol, "wh-team", mljob("train", ray("fit")))
        assert "user 'carol' may not create rayjobs.ray.io" in message(denied)
        assert not forbidden_lines(operator.log)
    finally:
        operator.stop()
        registrations.delete_validating_webhook_configuration("wh-local")
