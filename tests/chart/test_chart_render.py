"""The Helm chart rendered by the real helm: lint, every install mode, the values schema, and the
CRD coming from crds/ (one source of truth)."""

from __future__ import annotations

import json
import tarfile
import tomllib

import pytest
import yaml

from .helm import CHART, REPO_ROOT, container, find, helm, one, render

LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
# Exactly what the operator does (operator/mljob/kube.py, handlers.py) plus kopf's own needs.
NAMESPACED_RULES = {
    # get/create/delete: a ScheduledMLJob's runs (created per firing, read back on a 409,
    # deleted by the history limits and concurrencyPolicy Replace)
    ("mljob.io", "mljobs"): {"list", "watch", "get", "create", "delete"},
    ("mljob.io", "mljobs/status"): {"patch"},
    ("mljob.io", "scheduledmljobs"): {"list", "watch"},
    ("mljob.io", "scheduledmljobs/status"): {"patch"},
    # get: a create's 409 reads the child back; patch: spec.suspend only (suspend/resume, the
    # shared RayCluster included)
    ("sparkoperator.k8s.io", "sparkapplications"): {
        "get",
        "list",
        "watch",
        "create",
        "delete",
        "patch",
    },
    ("ray.io", "rayjobs"): {"get", "list", "watch", "create", "delete", "patch"},
    ("ray.io", "rayclusters"): {"get", "list", "watch", "create", "delete", "patch"},
    ("ray.io", "rayservices"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "events"): {"create"},
}
CRD_RULES = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
NAMESPACE_RULES = {("", "namespaces"): {"list", "watch"}}


def rules_of(role: dict) -> dict[tuple[str, str], set[str]]:
    """A role's rules as {(apiGroup, resource): verbs}."""
    flat: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                flat.setdefault((group, resource), set()).update(rule["verbs"])
    return flat


def args_of(objects: list[dict]) -> list[str]:
    return container(objects)["args"]


def test_helm_lint_strict():
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


def test_chart_app_version_is_the_package_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_default_is_a_cluster_wide_standalone_deployment():
    objects = render()
    for o in objects:
        labels = o["metadata"]["labels"]
        assert all(key in labels for key in LABELS), o["metadata"]["name"]
    assert {o["kind"] for o in objects} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
        "Secret",  # the webhook's self-managed certificate
        "ValidatingWebhookConfiguration",
    }
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    operator = container(objects)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert operator["image"] == f"ghcr.io/mljob-operator/mljob-operator:{chart['appVersion']}"
    assert operator["args"] == [  # for the image's entrypoint, `mljob operator`
        "--liveness=http://0.0.0.0:8081/healthz",
        "--readiness=http://0.0.0.0:8082/readyz",
        "--metrics-port=8080",
        "--log-format=full",
        "--webhook-port=9443",
        "--webhook-cert=/etc/mljob/webhook/tls.crt",
        "--webhook-key=/etc/mljob/webhook/tls.key",
    ]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert operator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
    assert {p["name"]: p["containerPort"] for p in operator["ports"]} == {
        "metrics": 8080,
        "health": 8081,
        "ready": 8082,
        "webhook": 9443,
    }
    assert operator["resources"]["requests"] and operator["resources"]["limits"]

    roles = {r["metadata"]["name"]: rules_of(r) for r in find(objects, "ClusterRole")}
    assert roles == {
        "mljob-mljob-operator": NAMESPACED_RULES,
        "mljob-mljob-operator-cluster-reads": CRD_RULES,
        "mljob-mljob-operator-access-reviews": {
            ("authorization.k8s.io", "subjectaccessreviews"): {"create"}
        },
    }
    sa = one(objects, "ServiceAccount")
    for binding in find(objects, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "mljob-system"}
        ]
    service = next(
        o for o in find(objects, "Service") if o["metadata"]["name"].endswith("-metrics")
    )
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_security_context_is_restricted():
    objects = render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container(objects)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable path is /tmp, an emptyDir (the webhook certificate is mounted read-only).
    writable = [m for m in container(objects)["volumeMounts"] if not m.get("readOnly")]
    assert writable == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"]


def test_no_rule_anywhere_grants_secrets_or_wildcards():
    for values in ({}, {"watchNamespaces": "{a,b}", "replicaCount": "2"}, {"replicaCount": "3"}):
        for role in find(render(values), "ClusterRole") + find(render(values), "Role"):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
                assert not {"secrets", "configmaps", "pods"} & set(rule["resources"])
                assert not {"update", "deletecollection", "escalate", "bind", "impersonate"} & set(
                    rule["verbs"]
                )


def test_namespaced_install_has_roles_only_in_the_listed_namespaces():
    objects = render({"watchNamespaces": "{team-a,team-b}"})
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(rules_of(r) == NAMESPACED_RULES for r in roles)
    bindings = find(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    # The only cluster-scoped grants: reading CRDs and Namespaces (optional), and asking for
    # SubjectAccessReviews (the webhook).
    reviews, reads = sorted(find(objects, "ClusterRole"), key=lambda r: r["metadata"]["name"])
    assert rules_of(reads) == CRD_RULES | NAMESPACE_RULES
    assert rules_of(reviews) == {("authorization.k8s.io", "subjectaccessreviews"): {"create"}}
    assert args_of(objects)[:2] == ["--namespace=team-a", "--namespace=team-b"]

    roles_only = render(
        {
            "watchNamespaces": "{team-a}",
            "rbac.clusterScopedReads": "false",
            "webhook.enabled": "false",
        }
    )
    assert not find(roles_only, "ClusterRole")
    assert not find(roles_only, "ClusterRoleBinding")


def test_two_replicas_are_a_statefulset_with_peering_and_distinct_priorities():
    objects = render({"replicaCount": "2"})
    assert not find(objects, "Deployment")
    statefulset = one(objects, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 2
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    args = args_of(objects)
    assert "--standalone" not in args
    assert "--peering=mljob-mljob-operator" in args
    # The priority comes from the pod's ordinal: distinct for every replica.
    assert "--priority=$(POD_INDEX)" in args
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    peering = one(objects, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "mljob-mljob-operator"
    role = rules_of(
        next(
            r for r in find(objects, "ClusterRole") if "cluster-reads" not in r["metadata"]["name"]
        )
    )
    assert role[("kopf.dev", "clusterkopfpeerings")] == {"list", "watch"}
    assert role[("kopf.dev", "clusterkopfpeerings/status")] == {"patch"}


def test_two_replicas_namespaced_use_a_kopfpeering_per_namespace():
    objects = render({"replicaCount": "2", "watchNamespaces": "{a,b}", "peering.name": "p"})
    peerings = find(objects, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("a", "p"),
        ("b", "p"),
    ]
    assert not find(objects, "ClusterKopfPeering")
    for role in find(objects, "Role"):
        rules = rules_of(role)
        assert rules[("kopf.dev", "kopfpeerings/status")] == {"patch"}
        assert ("kopf.dev", "clusterkopfpeerings") not in rules


def test_shards_are_one_workload_each_with_its_own_peering():
    from mljob.sharding import Shard

    objects = render({"shards": "3", "replicaCount": "2"})
    workloads = find(objects, "StatefulSet")
    assert [w["metadata"]["name"] for w in workloads] == [
        f"mljob-mljob-operator-shard-{i}" for i in range(3)
    ]
    peerings = sorted(p["metadata"]["name"] for p in find(objects, "ClusterKopfPeering"))
    for i, workload in enumerate(workloads):
        pod = workload["spec"]["template"]
        assert workload["spec"]["replicas"] == 2
        assert workload["spec"]["selector"]["matchLabels"]["mljob.io/shard"] == str(i)
        assert pod["metadata"]["labels"]["mljob.io/shard"] == str(i)
        (operator,) = pod["spec"]["containers"]
        args = operator["args"]
        assert [f"--shard={i}", "--shards=3"] == [a for a in args if a.startswith("--shard")]
        assert "--peering=mljob-mljob-operator" in args and "--priority=$(POD_INDEX)" in args
        # the peering the operator joins (mljob.sharding) is one the chart creates
        assert Shard(i, 3).peering_name("mljob-mljob-operator") == peerings[i]
    # Each shard's selector picks its own pods only.
    for workload in workloads:
        selector = workload["spec"]["selector"]["matchLabels"].items()
        picked = [
            w for w in workloads if selector <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert picked == [workload]


def test_shards_with_one_replica_each_run_standalone():
    objects = render({"shards": "2", "watchNamespaces": "{a}"})
    deployments = find(objects, "Deployment")
    assert [d["metadata"]["name"] for d in deployments] == [
        "mljob-mljob-operator-shard-0",
        "mljob-mljob-operator-shard-1",
    ]
    for i, deployment in enumerate(deployments):
        (operator,) = deployment["spec"]["template"]["spec"]["containers"]
        assert f"--shard={i}" in operator["args"] and "--shards=2" in operator["args"]
        assert not [a for a in operator["args"] if a.startswith("--peering")]
    assert not find(objects, "KopfPeering") and not find(objects, "StatefulSet")


def test_namespaced_shards_get_a_kopfpeering_per_shard_and_namespace():
    objects = render({"shards": "2", "replicaCount": "2", "watchNamespaces": "{a,b}"})
    assert sorted(
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in find(objects, "KopfPeering")
    ) == [(ns, f"mljob-mljob-operator-shard-{i}") for ns in ("a", "b") for i in range(2)]


def test_pod_disruption_budget_per_shard():
    objects = render({"podDisruptionBudget.enabled": "true", "replicaCount": "2", "shards": "2"})
    budgets = find(objects, "PodDisruptionBudget")
    workloads = find(objects, "StatefulSet")
    assert len(budgets) == 2
    for budget, workload in zip(budgets, workloads, strict=True):
        labels = workload["spec"]["template"]["metadata"]["labels"].items()
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels
        other = next(w for w in workloads if w is not workload)
        assert not budget["spec"]["selector"]["matchLabels"].items() <= (
            other["spec"]["template"]["metadata"]["labels"].items()
        )


def test_service_monitor_selects_the_metrics_service():
    objects = render(
        {"metrics.serviceMonitor.enabled": "true", "metrics.serviceMonitor.labels.release": "prom"}
    )
    monitor = one(objects, "ServiceMonitor")
    selected = [
        s["metadata"]["name"]
        for s in find(objects, "Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert selected == ["mljob-mljob-operator-metrics"]  # not the webhook's Service
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert not find(render(), "ServiceMonitor")


def test_pod_disruption_budget_needs_two_replicas():
    objects = render({"podDisruptionBudget.enabled": "true", "replicaCount": "2"})
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert (
        pdb["spec"]["selector"]["matchLabels"].items()
        <= one(objects, "StatefulSet")["spec"]["template"]["metadata"]["labels"].items()
    )
    refused = helm(
        "template", "x", str(CHART), "--set", "podDisruptionBudget.enabled=true", check=False
    )
    assert refused.returncode != 0 and "block every node drain" in refused.stderr


def test_image_tag_and_digest_overrides():
    assert container(render({"image.tag": "1.2.3"}))["image"].endswith(":1.2.3")
    digest = "sha256:" + "a" * 64
    assert container(render({"image.digest": digest}))["image"].endswith("@" + digest)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "replicaCount=two"], "/replicaCount"),
        (["--set", "replicaCount=0"], "/replicaCount"),
        (["--set", "shards=0"], "/shards"),
        (["--set", "shards=many"], "/shards"),
        (["--set", "replicaSount=2"], "additional properties 'replicaSount'"),
        (["--set", "image.tagg=1"], "additional properties 'tagg'"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "watchNamespaces=team-a"], "/watchNamespaces"),
        (["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0"),
        (["--set", "rbac.create=yes"], "/rbac/create"),
        (["--set", "operator.logFormat=xml"], "/operator/logFormat"),
        (["--set", "ports.metrics=70000"], "/ports/metrics"),
        (["--set", "metrics.serviceMonitor.interval=often"], "/metrics/serviceMonitor/interval"),
        (["--set", "image.digest=latest"], "/image/digest"),
        (["--set", "webhook.enabled=yes"], "/webhook/enabled"),
        (["--set", "webhook.failurePolicy=Maybe"], "/webhook/failurePolicy"),
        (["--set", "webhook.certManager.issuerRef.kind=Vault"], "/webhook/certManager/issuerRef"),
        (["--set-json", 'resources={"requests":{"cpu":"1"},"limitz":{}}'], "limitz"),
    ],
)
def test_values_schema_rejects_wrong_values(values, message):
    result = helm("template", "x", str(CHART), *values, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_values_file_and_schema_agree():
    """Every key of values.yaml is described by the schema (additionalProperties is false)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value, node, path):
        if node.get("additionalProperties") is False:
            for key, child in value.items():
                assert key in node["properties"], f"values.yaml key {path}.{key} not in schema"
                walk(child, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "")


def test_crds_come_from_the_repository_crds_folder(tmp_path):
    """One source of truth: charts/mljob-operator/crds is a symlink to crds/, and both
    `helm template --include-crds` and the packaged chart carry the files unchanged."""
    link = CHART / "crds"
    assert link.is_symlink() and link.resolve() == (REPO_ROOT / "crds").resolve()
    repo_crds = {p.name: p.read_text() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    assert "mljob.io_mljobs.yaml" in repo_crds

    rendered = render(extra=["--include-crds"])
    names = {o["metadata"]["name"] for o in find(rendered, "CustomResourceDefinition")}
    expected = {
        doc["metadata"]["name"]
        for text in repo_crds.values()
        for doc in yaml.safe_load_all(text)
        if doc
    }
    assert names == expected
    # The MLJob CRD, and kopf's peering CRDs for replicaCount > 1 (the chart creates peerings).
    assert {"mljobs.mljob.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= names

    helm("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("mljob-operator-*.tgz")
    with tarfile.open(package) as tar:
        packaged = {
            member.name.rsplit("/", 1)[1]: tar.extractfile(member).read().decode()
            for member in tar.getmembers()
            if member.name.startswith("mljob-operator/crds/")
        }
    assert packaged == repo_crds


def test_webhook_self_managed_certificate_is_consistent():
    objects = render()
    secret = one(objects, "Secret")
    hook, schedule_hook = one(objects, "ValidatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert hook["clientConfig"]["service"] == {
        "name": "mljob-mljob-operator-webhook",
        "namespace": "mljob-system",
        "path": "/validate-mljob",
        "port": 443,
    }
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["rules"][0]["resources"] == ["mljobs"]
    # ScheduledMLJobs: the same service and certificate, their own path (admission.py).
    assert schedule_hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert schedule_hook["clientConfig"]["service"]["path"] == "/validate-scheduledmljob"
    assert schedule_hook["rules"][0]["resources"] == ["scheduledmljobs"]
    mounts = container(objects)["volumeMounts"]
    assert {
        "name": "webhook-certificate",
        "mountPath": "/etc/mljob/webhook",
        "readOnly": True,
    } in mounts


def test_webhook_with_cert_manager_lets_it_inject_the_ca():
    objects = render({"webhook.certManager.enabled": "true"})
    assert not find(objects, "Secret")
    certificate = one(objects, "Certificate")
    assert certificate["spec"]["secretName"] == "mljob-mljob-operator-webhook-tls"
    assert certificate["spec"]["issuerRef"] == {
        "kind": "Issuer",
        "name": "mljob-mljob-operator-webhook",
    }
    assert one(objects, "Issuer")["spec"] == {"selfSigned": {}}
    webhook = one(objects, "ValidatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "mljob-system/mljob-mljob-operator-webhook"
    )
    assert not any("caBundle" in hook["clientConfig"] for hook in webhook["webhooks"])
    own_ca = render(
        {
            "webhook.certManager.enabled": "true",
            "webhook.certManager.issuerRef.kind": "ClusterIssuer",
            "webhook.certManager.issuerRef.name": "corp-ca",
        }
    )
    assert not find(own_ca, "Issuer")
    assert one(own_ca, "Certificate")["spec"]["issuerRef"] == {
        "kind": "ClusterIssuer",
        "name": "corp-ca",
    }


def test_webhook_off_removes_every_webhook_object():
    objects = render({"webhook.enabled": "false"})
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Secret", "ValidatingWebhookConfiguration", "Certificate"}
    assert not any(a.startswith("--webhook") for a in container(objects)["args"])


def test_grafana_dashboard_configmap_holds_the_dashboard_on_its_metrics():
    objects = render({"metrics.grafanaDashboard.enabled": "true"})
    configmap = one(objects, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["mljob-operator.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "mljob-operator.json").read_text())
    queries = json.dumps(dashboard)
    for metric in ("mljob_operator_mljobs", "mljob_operator_step_transition_seconds"):
        assert metric in queries
    assert not find(render(), "ConfigMap")
