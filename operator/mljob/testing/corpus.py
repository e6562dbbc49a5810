"""Sample MLJobs shared by the unit, CLI and integration tests: a valid pipeline and a
corpus of bad manifests, each with a fragment its validation message must contain."""

from __future__ import annotations

import copy
from typing import Any

UID = "6f1c1a8e-0000-4000-8000-000000000001"


def mljob(steps: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    """A valid MLJob (Spark prepare -> Ray train unless steps are given)."""
    return {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "MLJob",
        "metadata": {"name": "churn", "namespace": "team-a", "uid": UID, "generation": 1},
        "spec": {
            "image": "registry.example.com/churn:1.4",
            "dataPath": "s3a://lake/churn",
            "steps": steps if steps is not None else [spark_step("prepare"), ray_step("train")],
            **spec,
        },
    }


def spark_step(name: str, **extra: Any) -> dict[str, Any]:
    spark = {"mainApplicationFile": "local:///app/etl.py", "sparkVersion": "4.0.1"}
    return {"name": name, "spark": spark, **extra}


def ray_step(name: str, **extra: Any) -> dict[str, Any]:
    ray = {"entrypoint": "python /app/train.py", "rayVersion": "2.49.0"}
    return {"name": name, "ray": ray, **extra}


def _with(path: str, value: Any, base: dict | None = None) -> dict[str, Any]:
    """A copy of the valid MLJob with one field set; path like 'spec.steps.0.spark.type'."""
    obj = copy.deepcopy(base or mljob())
    *parents, last = path.split(".")
    target: Any = obj
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is _DELETE:
        del target[int(last) if isinstance(target, list) else last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return obj


_DELETE = object()

# (id, manifest, fragment expected in one of the messages)
BAD_MANIFESTS: list[tuple[str, Any, str]] = [
    ("not-a-mapping", ["x"], "(root)"),
    ("no-name", _with("metadata.name", _DELETE), "metadata.name: required"),
    ("long-name", _with("metadata.name", "a" * 64), "metadata.name: at most 63"),
    ("bad-name", _with("metadata.name", "Churn_1"), "metadata.name: must be lower-case"),
    ("no-spec", _with("spec", _DELETE), "spec: required"),
    ("no-steps", _with("spec.steps", []), "spec.steps: required"),
    ("too-many-steps", mljob([spark_step(f"s{i}") for i in range(51)]), "at most 50 steps"),
    ("both-kinds", _with("spec.steps.0.ray", {"entrypoint": "x"}), "exactly one of `spark`"),
    ("no-kind", _with("spec.steps.0.spark", _DELETE), "spec.steps[0]: set exactly one"),
    ("dup-names", mljob([spark_step("a"), spark_step("a")]), "duplicate step name 'a'"),
    ("step-name-upper", mljob([spark_step("Prep")]), "spec.steps[0].name: 'Prep'"),
    ("step-name-long", mljob([spark_step("s" * 31)]), "at most 30"),
    ("unknown-dep", mljob([spark_step("a", dependsOn=["zz"])]), "unknown step 'zz'"),
    ("self-dep", mljob([spark_step("a", dependsOn=["a"])]), "cannot depend on itself"),
    (
        "cycle",
        mljob([spark_step("a", dependsOn=["c"]), spark_step("b"), spark_step("c")]),
        "dependency cycle a -> c -> b -> a",
    ),
    ("deps-not-list", mljob([spark_step("a", dependsOn="b")]), "must be a list of step names"),
    ("retries-high", _with("spec.steps.0.retries", 11), "retries: must be between 0 and 10"),
    ("retries-bool", _with("spec.steps.0.retries", True), "retries: must be an integer"),
    (
        "spark-no-file",
        _with("spec.steps.0.spark.mainApplicationFile", _DELETE),
        "mainApplicationFile: required",
    ),
    (
        "spark-no-version",
        _with("spec.steps.0.spark.sparkVersion", _DELETE),
        "spark.sparkVersion: required",
    ),
    ("spark-type", _with("spec.steps.0.spark.type", "PySpark"), "spark.type: must be one of"),
    ("spark-no-image", _with("spec.image", _DELETE), "spec.steps[0].spark.image: required"),
    (
        "spark-cores-zero",
        _with("spec.steps.0.spark.driver", {"cores": 0}),
        "driver.cores: must be >= 1",
    ),
    (
        "spark-conf-number",
        _with("spec.steps.0.spark.sparkConf", {"a": 1}),
        "sparkConf.a: must be a string",
    ),
    (
        "spark-denied-conf",
        _with("spec.steps.0.spark.sparkConf", {"spark.kubernetes.container.image": "x"}),
        "denied by the Spark operator; use spark.image",
    ),
    (
        "spark-other-namespace",
        _with("spec.steps.0.spark.sparkConf", {"spark.kubernetes.namespace": "kube-system"}),
        "children live in the MLJob's namespace",
    ),
    (
        "spark-template-drops-required",
        _with("spec.steps.0.spark.template", {"driver": None}),
        "template: removes driver",
    ),
    ("ray-no-entrypoint", _with("spec.steps.1.ray.entrypoint", ""), "ray.entrypoint: required"),
    ("ray-no-version", _with("spec.steps.1.ray.rayVersion", _DELETE), "ray.rayVersion: required"),
    (
        "ray-bad-cpu",
        _with("spec.steps.1.ray.head", {"cpu": "four"}),
        "head.cpu: not a Kubernetes quantity",
    ),
    (
        "ray-gpu-negative",
        _with("spec.steps.1.ray.workers", {"gpu": -1}),
        "workers.gpu: must be >= 0",
    ),
    (
        "ray-replicas-range",
        _with("spec.steps.1.ray.workers", {"replicas": 5, "maxReplicas": 2}),
        "minReplicas <= replicas <= maxReplicas",
    ),
    (
        "ray-ttl-without-shutdown",
        _with(
            "spec.steps.1.ray.template",
            {"shutdownAfterJobFinishes": False, "ttlSecondsAfterFinished": 60},
        ),
        "ttlSecondsAfterFinished: needs shutdownAfterJobFinishes",
    ),
    (
        "ray-interactive",
        _with("spec.steps.1.ray.template", {"submissionMode": "InteractiveMode"}),
        "InteractiveMode waits for a human",
    ),
    (
        "ray-deadline-zero",
        _with("spec.steps.1.ray.template", {"activeDeadlineSeconds": 0}),
        "activeDeadlineSeconds: must be > 0",
    ),
    (
        "ray-no-containers",
        _with(
            "spec.steps.1.ray.template",
            {"rayClusterSpec": {"headGroupSpec": {"template": {"spec": {"containers": []}}}}},
        ),
        "headGroupSpec.template.spec.containers: at least one container",
    ),
    (
        "ray-start-labels",
        _with(
            "spec.steps.1.ray.template",
            {"rayClusterSpec": {"headGroupSpec": {"rayStartParams": {"labels": "a=b"}}}},
        ),
        "rayStartParams.labels: not allowed",
    ),
    (
        "ray-reserved-runtime-env",
        _with("spec.steps.1.ray.runtimeEnv", {"env_vars": {"MLJOB_STEP": "x"}}),
        "runtimeEnv.env_vars.MLJOB_STEP: set by the operator",
    ),
    (
        "shared-backoff",
        _with(
            "spec.steps.1.ray",
            {"entrypoint": "python t.py", "template": {"backoffLimit": 2}},
            _with("spec.rayCluster", {"rayVersion": "2.49.0"}),
        ),
        "KubeRay refuses retries on a shared cluster",
    ),
    (
        "shared-with-step-workers",
        _with("spec.rayCluster", {"rayVersion": "2.49.0"}),
        "ray.rayVersion: not used when spec.rayCluster is set",
    ),
    (
        "shared-kueue",
        _with(
            "spec.labels",
            {"kueue.x-k8s.io/queue-name": "q"},
            _with("spec.rayCluster", {"rayVersion": "2.49.0"}),
        ),
        "cannot be used with spec.rayCluster",
    ),
    ("shared-no-version", _with("spec.rayCluster", {}), "spec.rayCluster.rayVersion: required"),
    (
        "env-reserved",
        _with("spec.env", [{"name": "MLJOB_RUN", "value": "9"}]),
        "MLJOB_RUN is set by the operator",
    ),
    ("env-dup", _with("spec.env", [{"name": "A"}, {"name": "A"}]), "duplicate variable A"),
    ("env-number", _with("spec.env", [{"name": "A", "value": 3}]), "value: must be a string"),
    ("label-reserved", _with("spec.labels", {"mljob.io/name": "x"}), "prefix is reserved"),
    ("label-value-long", _with("spec.labels", {"a": "v" * 64}), "at most 63"),
    ("suspend-string", _with("spec.suspend", "yes"), "spec.suspend: must be true or false"),
    ("ttl-negative", _with("spec.ttlSecondsAfterFinished", -1), "must be between 0 and"),
    ("unicode-step", mljob([spark_step("préparer")]), "spec.steps[0].name"),
    # --- lifecycle fields (issue 4) ---
    ("deadline-zero", _with("spec.steps.0.startDeadlineSeconds", 0), "must be between 1 and"),
    (
        "step-deadline-huge",
        _with("spec.steps.1.activeDeadlineSeconds", 10**12),
        "activeDeadlineSeconds: must be between 1 and 31536000",
    ),
    ("pipeline-deadline-string", _with("spec.activeDeadlineSeconds", "1h"), "must be an integer"),
    ("ttl-huge", _with("spec.ttlSecondsAfterFinished", 2**63), "must be between 0 and 31536000"),
    ("retries-huge", _with("spec.steps.0.retries", 10**9), "retries: must be between 0 and 10"),
    ("backoff-negative", _with("spec.steps.0.backoffSeconds", -5), "backoffSeconds: must be"),
    ("backoff-float", _with("spec.steps.0.maxBackoffSeconds", 1.5), "must be an integer"),
    ("on-spec-change", _with("spec.onSpecChange", "Restart"), "onSpecChange: must be one of"),
    # --- wrong types and shapes ---
    ("spec-list", _with("spec", ["steps"]), "spec: required"),
    ("steps-mapping", _with("spec.steps", {"prepare": {}}), "spec.steps: required"),
    ("step-string", _with("spec.steps.0", "prepare"), "spec.steps[0]: must be a mapping"),
    ("spark-list", _with("spec.steps.0.spark", ["x"]), "spec.steps[0].spark: must be a mapping"),
    (
        "ray-string",
        _with("spec.steps.1.ray", "python t.py"),
        "spec.steps[1].ray: must be a mapping",
    ),
    ("name-number", _with("metadata.name", 42), "metadata.name: required"),
    ("step-name-missing", _with("spec.steps.0.name", _DELETE), "spec.steps[0].name: required"),
    ("image-number", _with("spec.image", 1.4), "spec.image: must be a string"),
    ("env-not-list", _with("spec.env", {"A": "1"}), "spec.env: must be a list"),
    ("labels-list", _with("spec.labels", ["a"]), "spec.labels: must be a map of strings"),
    # --- unknown fields (typos the API server would silently prune) ---
    ("unknown-spec-field", _with("spec.stpes", []), "spec.stpes: unknown field"),
    ("unknown-step-field", _with("spec.steps.0.retry", 3), "spec.steps[0].retry: unknown field"),
    (
        "unknown-spark-field",
        _with("spec.steps.0.spark.mainApplicationFlie", "x"),
        "spark.mainApplicationFlie: unknown field",
    ),
    ("unknown-ray-field", _with("spec.steps.1.ray.replicas", 3), "ray.replicas: unknown field"),
    # --- names that overflow child name limits, hostile text ---
    ("unicode-name", _with("metadata.name", "chürn"), "metadata.name: must be lower-case"),
    ("emoji-step", mljob([spark_step("prep-🚀")]), "spec.steps[0].name"),
    ("step-name-leading-dash", mljob([spark_step("-prep")]), "spec.steps[0].name"),
    (
        "step-other-namespace",
        _with("spec.steps.0.namespace", "kube-system"),
        "spec.steps[0].namespace: unknown field",
    ),
    (
        "ray-empty-cluster-selector",
        _with(
            "spec.steps.1.ray.template",
            {"clusterSelector": {"ray.io/cluster": ""}, "rayClusterSpec": None},
        ),
        "needs rayClusterSpec or clusterSelector",
    ),
    (
        "long-dependency-list",
        mljob([spark_step("a"), spark_step("b", dependsOn=["a"] * 21)]),
        "dependsOn: at most 20 entries",
    ),
    (
        "huge-entrypoint-ok-but-no-version",
        _with("spec.steps.1.ray", {"entrypoint": "x" * (1 << 20)}),
        "rayVersion: required",
    ),
]
