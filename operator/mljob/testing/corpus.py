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


def shared_cluster_mljob(**ray_cluster: Any) -> dict[str, Any]:
    """A valid MLJob whose two Ray steps share one RayCluster (spec.rayCluster)."""
    steps = [
        spark_step("prepare"),
        {"name": "train", "ray": {"entrypoint": "python /app/train.py"}},
        {"name": "evaluate", "ray": {"entrypoint": "python /app/evaluate.py"}},
    ]
    return mljob(steps, rayCluster={"rayVersion": "2.49.0", **ray_cluster})


def template_heavy_mljob() -> dict[str, Any]:
    """A valid MLJob whose templates set many upstream fields of all three child kinds (pod
    templates, int-or-string quantities, maps, enums, nested lists): the schema check must
    accept it, and so must the real API server (tests/integration/test_render.py)."""
    job = shared_cluster_mljob(
        head={"cpu": "1"},
        workers={"replicas": 2, "maxReplicas": 4},
        template={
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {"upscalingMode": "Conservative", "idleTimeoutSeconds": 60},
            "headGroupSpec": {
                "serviceType": "ClusterIP",
                "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                "template": {
                    "metadata": {"annotations": {"example.com/owner": "team-a"}},
                    "spec": {
                        "nodeSelector": {"disk": "ssd"},
                        "tolerations": [{"key": "gpu", "operator": "Exists"}],
                        "containers": [
                            {
                                "name": "ray-head",
                                "image": "registry.example.com/churn:1.4",
                                "ports": [{"containerPort": 6379, "name": "gcs"}],
                                "resources": {"limits": {"cpu": 2, "memory": "4Gi"}},
                            }
                        ],
                    },
                },
            },
        },
    )
    prepare, train, evaluate = job["spec"]["steps"]
    prepare["spark"]["template"] = {
        "timeToLiveSeconds": 3600,
        "pythonVersion": "3",
        "dynamicAllocation": {"enabled": False},
        "driver": {
            "labels": {"tier": "driver"},
            "template": {"spec": {"nodeSelector": {"disk": "ssd"}}},  # preserve-unknown-fields
        },
        "executor": {"coreRequest": "500m", "memoryOverhead": "512m"},
    }
    train["ray"]["template"] = {
        "entrypointNumCpus": 0.5,
        "metadata": {"purpose": "training"},
        "submitterConfig": {"backoffLimit": 1},
        "submitterPodTemplate": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "submitter", "image": "rayproject/ray:2.49.0"}],
            }
        },
    }
    evaluate["ray"]["template"] = {"entrypointResources": '{"custom": 1}'}
    return job


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
        "spark-file-no-scheme",
        _with("spec.steps.0.spark.mainApplicationFile", "/app/etl.py"),
        "spark.mainApplicationFile: '/app/etl.py' has no scheme",
    ),
    (
        "spark-file-file-scheme",
        _with("spec.steps.0.spark.mainApplicationFile", "file:///app/etl.py"),
        "use local:///path for a file in the image",
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
        "ray-reserved-checkpoint-path",
        _with("spec.steps.1.ray.runtimeEnv", {"env_vars": {"MLJOB_CHECKPOINT_PATH": "/x"}}),
        "runtimeEnv.env_vars.MLJOB_CHECKPOINT_PATH: set by the operator",
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
    # --- children the upstream CRD schemas refuse (issue 15): caught before anything is created
    (
        "shared-cluster-template-unknown-field",
        shared_cluster_mljob(template={"headGroupSpec": {"bogusField": 1}}),
        "spec.rayCluster.template: RayCluster spec.headGroupSpec.bogusField: unknown field",
    ),
    (
        "shared-cluster-template-nested-spec",
        shared_cluster_mljob(template={"spec": {"headGroupSpec": {"bogusField": 1}}}),
        "spec.rayCluster.template: RayCluster spec.spec: unknown field",
    ),
    (
        "ray-template-unknown-field",
        _with(
            "spec.steps.1.ray.template",
            {"rayClusterSpec": {"headGroupSpec": {"bogusField": 1}}},
        ),
        "spec.steps[1].ray.template: RayJob spec.rayClusterSpec.headGroupSpec.bogusField: "
        "unknown field",
    ),
    (
        "ray-template-wrong-type",
        _with("spec.steps.1.ray.template", {"shutdownAfterJobFinishes": "yes"}),
        "spec.steps[1].ray.template: RayJob spec.shutdownAfterJobFinishes: must be true or false",
    ),
    # A template that is not a mapping: one message (validate() once named it twice).
    (
        "ray-template-not-a-mapping",
        _with("spec.steps.1.ray.template", "shutdownAfterJobFinishes: true"),
        "spec.steps[1].ray.template: must be a mapping, got str",
    ),
    (
        "shared-cluster-ray-step-template-not-a-mapping",
        _with("spec.steps.1.ray.template", [{"backoffLimit": 2}], shared_cluster_mljob()),
        "spec.steps[1].ray.template: must be a mapping, got list",
    ),
    (
        "ray-template-enum",
        _with(
            "spec.steps.1.ray.template",
            {"rayClusterSpec": {"autoscalerOptions": {"upscalingMode": "Fast"}}},
        ),
        "autoscalerOptions.upscalingMode: must be one of Default, Aggressive, Conservative",
    ),
    (
        "ray-template-start-param-number",
        _with(
            "spec.steps.1.ray.template",
            {"rayClusterSpec": {"headGroupSpec": {"rayStartParams": {"num-cpus": 2}}}},
        ),
        "RayJob spec.rayClusterSpec.headGroupSpec.rayStartParams.num-cpus: must be a string",
    ),
    (
        "spark-template-unknown-field",
        _with("spec.steps.0.spark.template", {"driver": {"memoryy": "8g"}}),
        "spec.steps[0].spark.template: SparkApplication spec.driver.memoryy: unknown field",
    ),
    (
        "spark-template-wrong-type",
        _with("spec.steps.0.spark.template", {"timeToLiveSeconds": "1h"}),
        "SparkApplication spec.timeToLiveSeconds: must be an integer, got str",
    ),
    (
        "spark-template-enum",
        _with("spec.steps.0.spark.template", {"mode": "local"}),
        "SparkApplication spec.mode: must be one of cluster, client, got 'local'",
    ),
    (
        "spark-volume-unknown-field",
        _with("spec.steps.0.spark.volumes", [{"name": "data", "hostPth": {"path": "/d"}}]),
        "spec.steps[0].spark: SparkApplication spec.volumes[0].hostPth: unknown field",
    ),
    # --- elastic workers (issue 12): the autoscaler's bounds and options ---
    (
        "ray-elastic-replicas-out-of-bounds",
        _with("spec.steps.1.ray.workers", {"replicas": 5, "minReplicas": 1, "maxReplicas": 4}),
        "spec.steps[1].ray.workers: need minReplicas <= replicas <= maxReplicas, got 1 <= 5 <= 4",
    ),
    (
        "shared-cluster-elastic-min-above-max",
        shared_cluster_mljob(workers={"minReplicas": 3, "maxReplicas": 2, "replicas": 2}),
        "spec.rayCluster.workers: need minReplicas <= replicas <= maxReplicas, got 3 <= 2 <= 2",
    ),
    (
        "ray-elastic-upscaling-mode",
        _with(
            "spec.steps.1.ray.workers",
            {"replicas": 1, "maxReplicas": 4, "upscalingMode": "Fast"},
        ),
        "spec.steps[1].ray.workers.upscalingMode: must be one of Default, Conservative, "
        "Aggressive, got 'Fast'",
    ),
    (
        "ray-idle-timeout-without-elastic",
        _with("spec.steps.1.ray.workers", {"replicas": 2, "idleTimeoutSeconds": 30}),
        "spec.steps[1].ray.workers.idleTimeoutSeconds: only used by elastic workers",
    ),
    (
        "ray-elastic-restart-policy",
        _with(
            "spec.steps.1.ray",
            {
                "entrypoint": "python /app/train.py",
                "rayVersion": "2.49.0",
                "workers": {"replicas": 1, "maxReplicas": 3},
                "template": {
                    "rayClusterSpec": {
                        "headGroupSpec": {"template": {"spec": {"restartPolicy": "Always"}}}
                    }
                },
            },
        ),
        "headGroupSpec.template.spec.restartPolicy: autoscaler v2 (elastic workers) needs Never",
    ),
    # --- versions that do not match (issue 12): rayVersion against the Ray image tags ---
    (
        "ray-version-vs-image",
        _with("spec.steps.1.ray.image", "rayproject/ray:2.52.1-py311"),
        "spec.steps[1].ray.rayClusterSpec.rayVersion: 2.49.0 does not match "
        "rayproject/ray:2.52.1-py311, the image of the head (Ray 2.52)",
    ),
    (
        "ray-version-vs-worker-image",
        _with(
            "spec.steps.1.ray",
            {
                "entrypoint": "python /app/train.py",
                "rayVersion": "2.49.0",
                "image": "rayproject/ray:2.49.0",
                "workers": {"replicas": 1},
                "template": {
                    "rayClusterSpec": {
                        "workerGroupSpecs": [
                            {
                                "groupName": "workers",
                                "replicas": 1,
                                "minReplicas": 1,
                                "maxReplicas": 1,
                                "rayStartParams": {},
                                "template": {
                                    "spec": {
                                        "containers": [
                                            {"name": "w", "image": "rayproject/ray:2.50.0-gpu"}
                                        ]
                                    }
                                },
                            }
                        ]
                    }
                },
            },
        ),
        "does not match rayproject/ray:2.50.0-gpu, the image of the worker group workers",
    ),
    (
        "shared-cluster-version-vs-image",
        shared_cluster_mljob(image="quay.io/rayproject/ray-ml:2.41.0-py310-gpu"),
        "spec.rayCluster.rayVersion: 2.49.0 does not match quay.io/rayproject/ray-ml:2.41.0",
    ),
    (
        "ray-python-head-vs-workers",
        shared_cluster_mljob(
            image="rayproject/ray:2.49.0-py311",
            workers={"replicas": 1},
            template={
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": 1,
                        "minReplicas": 1,
                        "maxReplicas": 1,
                        "rayStartParams": {},
                        "template": {
                            "spec": {
                                "containers": [
                                    {"name": "w", "image": "rayproject/ray:2.49.0-py312-gpu"}
                                ]
                            }
                        },
                    }
                ]
            },
        ),
        "the head's image rayproject/ray:2.49.0-py311 (py311) and the worker group workers's "
        "rayproject/ray:2.49.0-py312-gpu (py312) have different Python versions",
    ),
]


def serve_mljob(**smoke: Any) -> dict[str, Any]:
    """A valid MLJob ending in a serve step; keyword arguments make its smoke request."""
    serve = {"importPath": "serve_model:app", "routePrefix": "/churn", "rayVersion": "2.49.0"}
    if smoke:
        serve["smoke"] = smoke
    return mljob([spark_step("prepare"), ray_step("train"), {"name": "serve", "serve": serve}])


# A serve step's smoke request (`mljob run --local` sends it; docs/local-mode.md).
BAD_MANIFESTS += [
    (
        "smoke-not-mapping",
        _with("spec.steps.2.serve.smoke", "/predict", serve_mljob()),
        "spec.steps[2].serve.smoke: must be a mapping",
    ),
    (
        "smoke-unknown-field",
        serve_mljob(path="/", headers={"X": "1"}),
        "serve.smoke.headers: unknown field",
    ),
    (
        "smoke-relative-path",
        serve_mljob(path="predict"),
        "serve.smoke.path: must start with '/' (it is under the routePrefix), got 'predict'",
    ),
    (
        "smoke-bad-method",
        serve_mljob(method="post", json={"a": 1}),
        "serve.smoke.method: must be one of GET, POST, PUT, PATCH, DELETE, got 'post'",
    ),
    ("smoke-json-list", serve_mljob(json=[1, 2]), "serve.smoke.json: must be a mapping, got list"),
    ("smoke-body-number", serve_mljob(body=3), "serve.smoke.body: must be a string, got int"),
    (
        "smoke-json-and-body",
        serve_mljob(json={"a": 1}, body="a=1"),
        "serve.smoke: set json (sent as application/json) or body (text), not both",
    ),
    (
        "smoke-get-with-body",
        serve_mljob(method="GET", json={"a": 1}),
        "serve.smoke.method: a GET request sends no json or body",
    ),
]

# The cache and declared outputs (issue 13; docs/lifecycle.md).
BAD_MANIFESTS += [
    (
        "cache-not-bool",
        _with("spec.steps.0.cache", "yes"),
        "spec.steps[0].cache: must be true or false, got str",
    ),
    (
        "cache-key-number",
        _with("spec.steps.0.cacheKey", 20260102),
        "spec.steps[0].cacheKey: must be a string of at most 253 characters",
    ),
    (
        "cache-key-too-long",
        _with("spec.steps.0.cacheKey", "d" * 254),
        "spec.steps[0].cacheKey: must be a string of at most 253 characters",
    ),
    (
        "outputs-not-list",
        _with("spec.steps.0.outputs", "features/"),
        "spec.steps[0].outputs: must be a list of at most 20 relative paths",
    ),
    (
        "output-absolute",
        _with("spec.steps.0.outputs", ["features/", "/etc/passwd"]),
        "spec.steps[0].outputs[1]: '/etc/passwd' must be a relative path",
    ),
    (
        "output-dot-dot",
        _with("spec.steps.0.outputs", ["../other-run/model.json"]),
        "spec.steps[0].outputs[0]: '../other-run/model.json' must be a relative path",
    ),
    (
        "output-duplicate",
        _with("spec.steps.0.outputs", ["model.json", "model.json"]),
        "spec.steps[0].outputs[1]: duplicate output 'model.json'",
    ),
    (
        "env-input-reserved",
        _with("spec.env", [{"name": "MLJOB_INPUT_PREPARE", "value": "s3a://elsewhere"}]),
        "spec.env[0].name: MLJOB_INPUT_PREPARE is set by the operator",
    ),
    (
        "cache-serve-step",
        _with("spec.steps.2.cache", True, serve_mljob()),
        "spec.steps[2].cache: a serve step is never cached",
    ),
    (
        "env-output-reserved",
        _with("spec.steps.1.ray.runtimeEnv", {"env_vars": {"MLJOB_OUTPUT_PATH": "/tmp"}}),
        "runtimeEnv.env_vars.MLJOB_OUTPUT_PATH: set by the operator",
    ),
]

# --- bad files (issue 15) ----------------------------------------------------------------------
# What a command that reads an MLJob file may be handed instead of one MLJob: (id, the file's
# bytes, fragment its one-line error must contain; the message always starts with the path).
# Paths that are not readable files (missing, a directory, a FIFO, no permission) are in the tests.
_FILE_HEAD = b"apiVersion: mljob.io/v1alpha1\nkind: MLJob\n"
GOOD_FILE = _FILE_HEAD + b"metadata: {name: churn}\nspec: {steps: []}\n"
_LAUGHS = b"".join(
    b"l%d: &l%d [%s]\n" % (i, i, b",".join([b"*l%d" % (i - 1)] * 10)) for i in range(1, 8)
)
BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty", b"", ": empty file; expected one MLJob"),
    ("only-comments", b"# churn\n\n---\n", "no YAML document (only blank lines or comments)"),
    ("latin-1", _FILE_HEAD + b"metadata: {name: caf\xe9}\n", ":3:21: not UTF-8 text (byte 0xe9)"),
    ("gzip", b"\x1f\x8b\x08\x00\x00\x00", ":1:2: not UTF-8 text (byte 0x8b)"),
    ("utf-16", "kind: MLJob\n".encode("utf-16"), "UTF-16 text (byte-order mark); save it as UTF-8"),
    ("huge", GOOD_FILE + b"#" * (2 << 20), "larger than 1.5 MiB, the most etcd stores"),
    ("unclosed", _FILE_HEAD + b"metadata: {name: churn\n", ":4:1: not valid YAML: expected ','"),
    ("tab-indent", _FILE_HEAD + b"spec:\n\tsteps: []\n", ":4:1: not valid YAML: found character"),
    ("nul-byte", b"kind: ML\x00Job\n", ":1:9: not valid YAML: character #x0000 not allowed"),
    ("python-tag", b"!!python/object/apply:os.system [id]\n", ":1:1: not valid YAML: could not"),
    ("two-documents", GOOD_FILE + b"---\n" + GOOD_FILE, ": 2 YAML documents; expected exactly one"),
    ("list", b"- kind: MLJob\n", "the document is a list, not a mapping; expected an MLJob"),
    ("string", b"churn\n", "the document is a string, not a mapping"),
    (
        "config-map",
        b"apiVersion: v1\nkind: ConfigMap\n",
        "apiVersion is 'v1', expected mljob.io/v1alpha1; kind is 'ConfigMap', expected MLJob",
    ),
    ("no-kind", b"apiVersion: mljob.io/v1alpha1\nmetadata: {}\n", "no kind, expected kind: MLJob"),
    ("old-version", b"apiVersion: mljob.io/v1\nkind: MLJob\n", "apiVersion is 'mljob.io/v1'"),
    ("too-deep", _FILE_HEAD + b"spec: " + b"[" * 150 + b"]" * 150, "nested more than 100 levels"),
    ("deeper-than-python", b"[" * 100_000, "nested more than 100 levels"),
    ("alias-cycle", _FILE_HEAD + b"spec: &s {steps: *s}\n", "a YAML alias refers to itself"),
    ("billion-laughs", _FILE_HEAD + b"l0: &l0 [x]\n" + _LAUGHS, "aliases expand to more than"),
]

# A serve step's RayService: its stable name and KubeRay's upgrade (docs/lifecycle.md).
BAD_MANIFESTS += [
    (
        "serve-name-like-a-run",
        _with("spec.steps.2.name", "serve-r2", serve_mljob()),
        "spec.steps[2].name: a serve step's name must not end in -r<N>, -a<N> or -ray: 'serve-r2'",
    ),
    (
        "serve-upgrade-none",
        _with("spec.steps.2.serve.template", {"upgradeStrategy": {"type": "None"}}, serve_mljob()),
        "serve.template: upgradeStrategy.type must stay NewCluster (a new run's model is rolled "
        "out on a new cluster), got 'None'",
    ),
]
