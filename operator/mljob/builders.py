"""Pure builders: an MLJob step -> the full child object (SparkApplication, RayJob, RayCluster).

Field names follow the real upstream CRDs (sparkoperator.k8s.io/v1beta2 at v2.5.2, ray.io/v1 at
KubeRay v1.7). Children are never patched after creation (a SparkApplication restarts on any spec
edit), so everything is decided here, once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from mljob import constants as c
from mljob import naming

Obj = dict[str, Any]

SPARK_DEFAULT_TYPE = "Python"
SPARK_DEFAULT_CORES = 1
SPARK_DEFAULT_MEMORY = "1g"
SPARK_DEFAULT_INSTANCES = 1
RAY_DEFAULT_CPU = "1"
RAY_DEFAULT_MEMORY = "2Gi"
RAY_HEAD_CONTAINER = "ray-head"
RAY_WORKER_CONTAINER = "ray-worker"
RAY_WORKER_GROUP = "workers"
# Elastic workers (minReplicas < maxReplicas): KubeRay's autoscaler defaults, said explicitly.
RAY_DEFAULT_UPSCALING_MODE = "Default"
RAY_DEFAULT_IDLE_TIMEOUT_SECONDS = 60
RAY_UPSCALING_MODES = ("Default", "Conservative", "Aggressive")


# --- shared pieces ---------------------------------------------------------------------------
def step_kind(step: Obj) -> str:
    from mljob import kinds  # kinds.py imports this module: the table is read at call time

    return kinds.of_step(step).kind


def _api_version(kind: str) -> str:
    from mljob import kinds

    return kinds.BY_KIND[kind].api_version


def step_child_name(mljob: Obj, step: Obj, run: int, attempt: int) -> str:
    return naming.step_child_name(
        mljob["metadata"]["name"], step["name"], run, attempt, step_kind(step)
    )


def data_path(mljob: Obj, run: int) -> str:
    """The run's hand-off folder: `<spec.dataPath>/<mljob name>/run-<run>` ("" without dataPath)."""
    root = (mljob.get("spec") or {}).get("dataPath") or ""
    return f"{root.rstrip('/')}/{mljob['metadata']['name']}/run-{run}" if root else ""


def mljob_env(mljob: Obj, run: int, step_name: str | None) -> dict[str, str]:
    """The MLJOB_* variables every container and Ray entrypoint gets."""
    env = {
        c.ENV_NAME: mljob["metadata"]["name"],
        c.ENV_RUN: str(run),
        c.ENV_DATA_PATH: data_path(mljob, run),
    }
    if step_name is not None:
        env[c.ENV_STEP] = step_name
        inputs = step_inputs(mljob, step_name, run)
        env.update(io_env(lambda r: data_path(mljob, r), run, step_name, inputs))
    return env


# --- the hand-off contract (cluster and local: mljob.local.plan.step_env uses io_env too) ------
def input_env_name(step_name: str) -> str:
    """MLJOB_INPUT_<STEP>: the step name upper-cased, '-' as '_'. Step names are DNS-1123
    labels (no '_', no upper case), so two steps never map to one variable."""
    return c.ENV_INPUT_PREFIX + step_name.upper().replace("-", "_")


def io_env(
    run_path: Callable[[int], str], run: int, step_name: str, inputs: Mapping[str, int]
) -> dict[str, str]:
    """MLJOB_OUTPUT_PATH = <run_path(run)>/<step>, and per dependency MLJOB_INPUT_<DEP> =
    <run_path(r)>/<dep> with r the run holding its outputs (an earlier one for a cache hit).
    `run_path(r)` is run r's data folder ("" without spec.dataPath: every path is "" then)."""

    def location(r: int, name: str) -> str:
        root = run_path(r)
        return f"{root.rstrip('/')}/{name}" if root else ""

    env = {c.ENV_OUTPUT_PATH: location(run, step_name)}
    env.update({input_env_name(d): location(r, d) for d, r in sorted(inputs.items())})
    return env


def step_inputs(mljob: Obj, step_name: str, run: int) -> dict[str, int]:
    """Per dependency of the step, the run whose outputs it reads: status.steps[] of this run
    says which dependency was a cache hit (cachedFromRun); the others' are this run's."""
    from mljob import fingerprint  # it imports validation, which imports this module
    from mljob.validation import dependencies

    steps = (mljob.get("spec") or {}).get("steps") or []
    status = mljob.get("status") or {}
    entries = status.get("steps") or [] if status.get("run") == run else []
    cached = {e["name"]: e.get("cachedFromRun") for e in entries}
    return fingerprint.input_runs(dependencies(steps).get(step_name, []), cached, run)


def env_list_to_dict(env: list[Obj] | None) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in env or []}


def effective_env(
    mljob: Obj, run: int, step_name: str | None, step_env: dict[str, Any] | None = None
) -> dict[str, str]:
    """Pipeline env, then the step's env, then MLJOB_* (reserved: validation forbids overriding)."""
    env = env_list_to_dict(mljob["spec"].get("env"))
    env.update({k: str(v) for k, v in (step_env or {}).items()})
    env.update(mljob_env(mljob, run, step_name))
    return env


def owner_reference(mljob: Obj) -> Obj:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": mljob["metadata"]["name"],
        "uid": mljob["metadata"].get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_labels(mljob: Obj, run: int, step_name: str | None) -> dict[str, str]:
    labels = dict(mljob["spec"].get("labels") or {})
    labels[c.LABEL_NAME] = mljob["metadata"]["name"]
    labels[c.LABEL_RUN] = str(run)
    if step_name is not None:
        labels[c.LABEL_STEP] = step_name
    return labels


def _metadata(mljob: Obj, name: str, run: int, step_name: str | None) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": mljob["metadata"].get("namespace", "default"),
        "labels": child_labels(mljob, run, step_name),
        "ownerReferences": [owner_reference(mljob)],
    }
    annotations = mljob["spec"].get("annotations")
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def merge_patch(base: Obj, patch: Obj) -> Obj:
    """RFC 7386 merge patch: maps merge recursively, lists and scalars replace, null deletes."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _drop_empty(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if v not in (None, "", [], {})}


# --- SparkApplication --------------------------------------------------------------------------
def build_spark_application(mljob: Obj, step: Obj, run: int, attempt: int) -> Obj:
    spark = step["spark"]
    env = effective_env(mljob, run, step["name"], env_list_to_dict(spark.get("env")))
    spec = _drop_empty(
        {
            "type": spark.get("type", SPARK_DEFAULT_TYPE),
            # Set explicitly: without the Spark operator's webhook nothing defaults these.
            "mode": "cluster",
            "restartPolicy": {"type": "Never"},  # retries are the MLJob's job, per step
            "sparkVersion": spark.get("sparkVersion"),
            "image": spark.get("image") or mljob["spec"].get("image"),
            "mainApplicationFile": spark.get("mainApplicationFile"),
            "mainClass": spark.get("mainClass"),
            "arguments": list(spark.get("arguments") or []),
            "sparkConf": {**(spark.get("sparkConf") or {}), **_spark_env_conf(env)},
            "hadoopConf": dict(spark.get("hadoopConf") or {}),
            "deps": _drop_empty(dict(spark.get("deps") or {})),
            "volumes": copy.deepcopy(spark.get("volumes") or []),
            "driver": _spark_pod(mljob, spark, spark.get("driver") or {}, is_driver=True),
            "executor": _spark_pod(mljob, spark, spark.get("executor") or {}, is_driver=False),
        }
    )
    return {
        "apiVersion": _api_version(c.SPARK_KIND),
        "kind": c.SPARK_KIND,
        "metadata": _metadata(mljob, step_child_name(mljob, step, run, attempt), run, step["name"]),
        "spec": merge_patch(spec, spark.get("template") or {}),
    }


def _spark_env_conf(env: dict[str, str]) -> dict[str, str]:
    # Native Spark conf, not driver.env/executor.env: those are applied only by the Spark
    # operator's pod webhook, which is optional (v2.5.2 `internal/webhook/sparkpod_defaulter.go`).
    conf = {f"spark.kubernetes.driverEnv.{k}": v for k, v in env.items()}
    conf.update({f"spark.executorEnv.{k}": v for k, v in env.items()})
    return conf


def _spark_pod(mljob: Obj, spark: Obj, pod: Obj, *, is_driver: bool) -> Obj:
    # Pod labels come from the SparkApplication's metadata labels (the operator copies them);
    # annotations do not, so they go here (spark.kubernetes.*.annotation.* conf, no webhook).
    spec: Obj = {
        "cores": pod.get("cores", SPARK_DEFAULT_CORES),
        "memory": pod.get("memory", SPARK_DEFAULT_MEMORY),
        "coreLimit": pod.get("coreLimit"),
        "serviceAccount": spark.get("serviceAccount"),
        "annotations": dict(mljob["spec"].get("annotations") or {}),
    }
    if not is_driver:
        spec["instances"] = pod.get("instances", SPARK_DEFAULT_INSTANCES)
    return _drop_empty(spec)


# --- Ray ---------------------------------------------------------------------------------------
def build_ray_job(mljob: Obj, step: Obj, run: int, attempt: int) -> Obj:
    ray = step["ray"]
    spec: Obj = {
        "entrypoint": ray["entrypoint"],
        "runtimeEnvYAML": _runtime_env_yaml(mljob, run, step),
    }
    if step.get("activeDeadlineSeconds"):
        # A second line of defence (the planner is the source of truth): KubeRay fails the job
        # itself (DeadlineExceeded) even while this operator is down.
        spec["activeDeadlineSeconds"] = step["activeDeadlineSeconds"]
    if mljob["spec"].get("rayCluster"):
        spec["clusterSelector"] = {
            c.RAY_CLUSTER_SELECTOR_KEY: naming.ray_cluster_name(mljob["metadata"]["name"], run)
        }
    else:
        # The RayJob owns its cluster: delete it when the job ends (also required by KubeRay
        # for suspend, which Kueue drives).
        spec["shutdownAfterJobFinishes"] = True
        spec["rayClusterSpec"] = _ray_cluster_spec(mljob, ray, run, step["name"])
    return {
        "apiVersion": _api_version(c.RAY_JOB_KIND),
        "kind": c.RAY_JOB_KIND,
        "metadata": _metadata(mljob, step_child_name(mljob, step, run, attempt), run, step["name"]),
        "spec": merge_patch(spec, ray.get("template") or {}),
    }


def build_ray_cluster(mljob: Obj, run: int) -> Obj:
    """The run's shared RayCluster (spec.rayCluster), used by Ray steps through clusterSelector."""
    shared = mljob["spec"]["rayCluster"]
    name = naming.ray_cluster_name(mljob["metadata"]["name"], run)
    return {
        "apiVersion": _api_version(c.RAY_CLUSTER_KIND),
        "kind": c.RAY_CLUSTER_KIND,
        "metadata": _metadata(mljob, name, run, None),
        "spec": merge_patch(
            _ray_cluster_spec(mljob, shared, run, None), shared.get("template") or {}
        ),
    }


def build_ray_service(mljob: Obj, step: Obj, run: int, attempt: int) -> Obj:
    """A serve step's RayService: one Serve application (serveConfigV2) on its own cluster.
    Its name is the same for every run and attempt: a later run replaces its spec and labels
    (planner.Update). Each run's cluster spec differs (MLJOB_RUN in its env, the run label on
    its pods), so KubeRay rolls every new run out on a new cluster and promotes it once it
    serves; upgradeStrategy NewCluster is said explicitly, so that neither KubeRay's
    ENABLE_ZERO_DOWNTIME=false nor a default change turns that into an in-place change."""
    serve = step["serve"]
    spec: Obj = {
        "serveConfigV2": serve_config_yaml(mljob, run, step),
        "rayClusterConfig": _ray_cluster_spec(mljob, serve, run, step["name"]),
        "upgradeStrategy": {"type": RAY_SERVICE_UPGRADE},
    }
    meta = _metadata(mljob, step_child_name(mljob, step, run, attempt), run, step["name"])
    # Which attempt of the run made it: a retry of a failed first deployment waits for the
    # failed one to be gone, and adopts only its own after a lost status write.
    meta["labels"][c.LABEL_ATTEMPT] = str(attempt)
    return {
        "apiVersion": _api_version(c.RAY_SERVICE_KIND),
        "kind": c.RAY_SERVICE_KIND,
        "metadata": meta,
        "spec": merge_patch(spec, serve.get("template") or {}),
    }


RAY_SERVICE_UPGRADE = "NewCluster"


SERVE_DEFAULT_ROUTE = "/"


def serve_config_yaml(mljob: Obj, run: int, step: Obj) -> str:
    """Ray Serve's config file (the `serve deploy` schema) with the step's one application,
    named after the step; its runtime env carries the MLJOB_* variables like a Ray step's."""
    serve = step["serve"]
    runtime_env = copy.deepcopy(serve.get("runtimeEnv") or {})
    runtime_env["env_vars"] = effective_env(mljob, run, step["name"], runtime_env.get("env_vars"))
    app: Obj = {
        "name": step["name"],
        "import_path": serve["importPath"],
        "route_prefix": serve.get("routePrefix", SERVE_DEFAULT_ROUTE),
        "runtime_env": runtime_env,
    }
    deployments = [_serve_deployment(d) for d in serve.get("deployments") or []]
    if deployments:
        app["deployments"] = deployments
    return yaml.safe_dump({"applications": [app]}, sort_keys=False)


def _serve_deployment(deployment: Obj) -> Obj:
    out: Obj = {"name": deployment["name"]}
    if "numReplicas" in deployment:
        out["num_replicas"] = deployment["numReplicas"]
    options = {
        key: deployment[field]
        for field, key in (("numCpus", "num_cpus"), ("numGpus", "num_gpus"))
        if field in deployment
    }
    if options:
        out["ray_actor_options"] = options
    return out


def _runtime_env_yaml(mljob: Obj, run: int, step: Obj) -> str:
    runtime_env = copy.deepcopy(step["ray"].get("runtimeEnv") or {})
    env = effective_env(mljob, run, step["name"], runtime_env.get("env_vars"))
    env[c.ENV_CHECKPOINT_PATH] = checkpoint_path(data_path(mljob, run), step["name"])
    runtime_env["env_vars"] = env
    return yaml.safe_dump(runtime_env, sort_keys=True)


CHECKPOINTS_FOLDER = "_checkpoints"  # leading underscore: Spark and Ray Data readers skip it


def checkpoint_path(run_data_path: str, step_name: str) -> str:
    """A Ray step's MLJOB_CHECKPOINT_PATH: `<the run's data path>/_checkpoints/<step>`. The
    attempt is not part of it, so a retry finds what the failed attempt saved; the run is (its
    data path is `.../run-<n>`), so a new run starts afresh. "" without a data path (nothing
    shared to resume from). The one rule for the RayJob's runtimeEnv and for local runs
    (mljob.local.plan.step_env passes the local run folder)."""
    if not run_data_path:
        return ""
    return f"{run_data_path.rstrip('/')}/{CHECKPOINTS_FOLDER}/{step_name}"


def _ray_cluster_spec(mljob: Obj, ray: Obj, run: int, step_name: str | None) -> Obj:
    """RayClusterSpec from {rayVersion, image, head, workers}: a step's or spec.rayCluster."""
    image = ray.get("image") or mljob["spec"].get("image")
    env = effective_env(mljob, run, step_name)
    pod_meta = _pod_metadata(mljob, run, step_name)
    head = ray.get("head") or {}
    spec: Obj = {
        "rayVersion": ray.get("rayVersion"),
        "headGroupSpec": {
            "rayStartParams": {},
            "template": _ray_pod(RAY_HEAD_CONTAINER, image, env, head, pod_meta),
        },
    }
    workers = ray.get("workers")
    if workers:
        replicas = workers.get("replicas", 1)
        low = workers.get("minReplicas", replicas)
        high = workers.get("maxReplicas", replicas)
        spec["workerGroupSpecs"] = [
            {
                "groupName": RAY_WORKER_GROUP,
                "replicas": replicas,
                "minReplicas": low,
                "maxReplicas": high,
                "rayStartParams": {},
                "template": _ray_pod(RAY_WORKER_CONTAINER, image, env, workers, pod_meta),
            }
        ]
        if elastic(workers):
            # Elastic workers: KubeRay's in-tree autoscaler (a sidecar on the head) scales the
            # group between minReplicas and maxReplicas with the demand of tasks and actors;
            # `replicas` is only the starting size then (the autoscaler writes it).
            spec["enableInTreeAutoscaling"] = True
            spec["autoscalerOptions"] = {
                "upscalingMode": workers.get("upscalingMode", RAY_DEFAULT_UPSCALING_MODE),
                "idleTimeoutSeconds": workers.get(
                    "idleTimeoutSeconds", RAY_DEFAULT_IDLE_TIMEOUT_SECONDS
                ),
            }
    return spec


def elastic(workers: Obj | None) -> bool:
    """Whether a worker group scales (minReplicas < maxReplicas, defaults = replicas)."""
    if not workers:
        return False
    replicas: int = workers.get("replicas", 1)
    low: int = workers.get("minReplicas", replicas)
    high: int = workers.get("maxReplicas", replicas)
    return low < high


def _pod_metadata(mljob: Obj, run: int, step_name: str | None) -> Obj:
    meta: Obj = {"labels": child_labels(mljob, run, step_name)}
    if mljob["spec"].get("annotations"):
        meta["annotations"] = dict(mljob["spec"]["annotations"])
    return meta


def _ray_pod(
    container: str, image: str | None, env: dict[str, str], group: Obj, pod_meta: Obj
) -> Obj:
    return {
        "metadata": copy.deepcopy(pod_meta),
        "spec": {
            "containers": [
                {
                    "name": container,  # KubeRay treats containers[0] as the Ray container
                    "image": image,
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": ray_resources(group),
                }
            ]
        },
    }


def ray_resources(group: Obj) -> Obj:
    """Requests = limits (KubeRay derives --num-cpus/--memory/--num-gpus from the limits)."""
    amounts: Obj = {
        "cpu": str(group.get("cpu", RAY_DEFAULT_CPU)),
        "memory": str(group.get("memory", RAY_DEFAULT_MEMORY)),
    }
    if group.get("gpu"):
        amounts[c.GPU_RESOURCE] = str(group["gpu"])
    return {"requests": dict(amounts), "limits": dict(amounts)}


# --- dispatch ----------------------------------------------------------------------------------
def build_step_child(mljob: Obj, step: Obj, run: int, attempt: int) -> Obj:
    """The child of a step, by its kind's builder in kinds.py."""
    from mljob import kinds  # kinds.py imports this module: the table is read at call time

    return kinds.build_step_child(mljob, step, run, attempt)
