"""THE validation of an MLJob, shared by the operator, the admission webhook and the CLI.

`validate(mljob)` returns messages of the form `<field path>: <what to fix>`; an empty list means
valid. It covers what the CRD schema and CEL check (for offline use, where no API server runs)
and what they cannot: dependency cycles, child-name limits, and the rules the upstream
controllers enforce beyond their own schemas (a RayJob that breaks them would sit in
ValidationFailed; a SparkApplication with a denied sparkConf key would be refused by the Spark
operator's webhook). Those last rules run on the children the builders would create, so a raw
`template` cannot smuggle a rejected field past them; a child that passes them is then checked
against the real upstream CRD schema (mljob.schemas), as the API server would check it when the
operator creates it, so an unknown or ill-typed field is reported here, not mid-pipeline.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

from mljob import builders, schemas
from mljob import constants as c

Obj = dict[str, Any]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUANTITY = re.compile(
    r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(\d+(\.\d*)?|\.\d+)))?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# A declared output: relative, '/'-separated parts that are neither empty, '.' nor '..' (the same
# pattern is the CRD's); a trailing '/' is allowed (a folder, as Spark and Ray Data write).
_OUTPUT_PATH = re.compile(r"^(?!.{254})(?!/)(?:(?!\.\.?(?:/|$))[^/\x00]+/)*(?!\.\.?$)[^/\x00]+/?$")
# spark-submit in cluster mode uploads a file without a scheme, or with file:, from where it runs
# (the Spark operator's pod, which never holds the user's code) and refuses it without
# spark.kubernetes.file.upload.path (docs/e2e.md). The same pattern is the CRD's CEL rule.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FILE_SCHEME = re.compile(r"^[fF][iI][lL][eE]:")
SPARK_TYPES = ("Python", "Scala", "Java", "R")
# Denied by the Spark operator's validating webhook (v2.5.2, sparkconf_validator.go).
SPARK_DENIED_CONF = re.compile(
    r"^(spark\.master|spark\.kubernetes\.driver\.master"
    r"|spark\.kubernetes\.authenticate\.(driver|executor)\.serviceAccountName"
    r"|spark\.kubernetes\.authenticate(\.driver|\.executor)?\.oauthToken(File)?"
    r"|spark\.kubernetes(\.driver|\.executor)?\.container\.image)$"
)
# The fields of each object, as in crds/mljob.io_mljobs.yaml (a unit test keeps them in sync):
# anything else is a typo the API server would silently prune.
SPEC_FIELDS = frozenset(
    {
        "image", "dataPath", "env", "labels", "annotations", "rayCluster", "steps",
        "ttlSecondsAfterFinished", "suspend", "activeDeadlineSeconds", "onSpecChange",
    }
)  # fmt: skip
STEP_FIELDS = frozenset(
    {
        "name", "dependsOn", "retries", "backoffSeconds", "maxBackoffSeconds",
        "startDeadlineSeconds", "activeDeadlineSeconds", "spark", "ray", "serve",
        "cache", "cacheKey", "outputs",
    }
)  # fmt: skip
SPARK_FIELDS = frozenset(
    {
        "type", "mainApplicationFile", "mainClass", "arguments", "sparkVersion", "image",
        "driver", "executor", "sparkConf", "hadoopConf", "deps", "env", "serviceAccount",
        "volumes", "template",
    }
)  # fmt: skip
RAY_STEP_FIELDS = frozenset(
    {"entrypoint", "rayVersion", "image", "runtimeEnv", "head", "workers", "template"}
)
RAY_CLUSTER_FIELDS = frozenset(
    {"rayVersion", "image", "head", "workers", "template", "startPolicy"}
)
SERVE_STEP_FIELDS = frozenset(
    {
        "importPath", "routePrefix", "runtimeEnv", "deployments", "rayVersion", "image", "head",
        "workers", "template", "smoke",
    }
)  # fmt: skip
SERVE_DEPLOYMENT_FIELDS = frozenset({"name", "numReplicas", "numCpus", "numGpus"})
# A serve step's smoke request (sent by `mljob run --local`, docs/local-mode.md).
SERVE_SMOKE_FIELDS = frozenset({"path", "method", "json", "body"})
SMOKE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ENGINE_KEYS = ("spark", "ray", "serve")
_RUN_LIKE_SUFFIX = re.compile(r"-(r[0-9]+|a[0-9]+|ray)$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$")
SPARK_CONF_HINT = {
    "serviceAccountName": "use spark.serviceAccount",
    "container.image": "use spark.image or spec.image",
}


def validate(mljob: Any) -> list[str]:
    """Every problem of an MLJob as `<field path>: <what to fix>`; [] when it is valid.

    Memoized on what it reads (name, namespace, uid, spec): the operator plans on every child
    event, and building the would-be children to check the upstream rules dominates its CPU."""
    try:
        key = json.dumps(_validated_part(mljob), sort_keys=True)
    except (TypeError, ValueError):  # not JSON-shaped: validate it as it is
        return _validate(mljob)
    return list(_validate_json(key))


def _validated_part(mljob: Any) -> Any:
    if not isinstance(mljob, dict) or not isinstance(mljob.get("metadata"), dict):
        return mljob
    metadata = {k: mljob["metadata"].get(k) for k in ("name", "namespace", "uid")}
    return {"metadata": metadata, "spec": mljob.get("spec")}


@functools.lru_cache(maxsize=1024)
def _validate_json(key: str) -> tuple[str, ...]:
    return tuple(_validate(json.loads(key)))


def _validate(mljob: Any) -> list[str]:
    if not isinstance(mljob, dict):
        return ["(root): an MLJob must be a mapping"]
    errors = list(_check_metadata(mljob.get("metadata")))
    spec = mljob.get("spec")
    if not isinstance(spec, dict):
        return [*errors, "spec: required (a mapping with at least `steps`)"]
    errors += _check_pipeline_fields(spec)
    errors += _check_steps(spec)
    if not errors:  # the builders assume the shapes checked above
        errors += _check_generated_children(mljob)
    return errors


# --- metadata and pipeline-wide fields --------------------------------------------------------
def _check_metadata(metadata: Any) -> Iterator[str]:
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        yield "metadata.name: required"
        return
    if len(name) > c.MLJOB_NAME_MAX:
        yield (
            f"metadata.name: at most {c.MLJOB_NAME_MAX} characters (it is the value of the "
            f"{c.LABEL_NAME} label on every child), got {len(name)}"
        )
    if not _DNS1123_SUBDOMAIN.match(name):
        yield "metadata.name: must be lower-case alphanumerics, '-' or '.' (DNS-1123)"


def _check_pipeline_fields(spec: Obj) -> Iterator[str]:
    yield from _check_type(spec, "image", str, "spec")
    yield from _check_type(spec, "dataPath", str, "spec")
    yield from _check_env(spec.get("env"), "spec.env")
    yield from _check_labels(spec.get("labels"), "spec.labels")
    yield from _check_string_map(spec.get("annotations"), "spec.annotations")
    yield from _check_known(spec, SPEC_FIELDS, "spec")
    yield from _check_type(spec, "suspend", bool, "spec")
    yield from _check_int(spec, "ttlSecondsAfterFinished", "spec", 0, c.MAX_DEADLINE_SECONDS)
    yield from _check_int(spec, "activeDeadlineSeconds", "spec", 1, c.MAX_DEADLINE_SECONDS)
    policy = spec.get("onSpecChange")
    if policy is not None and policy not in c.SPEC_CHANGE_POLICIES:
        allowed = ", ".join(c.SPEC_CHANGE_POLICIES)
        yield f"spec.onSpecChange: must be one of {allowed}, got {policy!r}"
    shared = spec.get("rayCluster")
    if shared is not None:
        yield from _check_ray_cluster_fields(shared, spec, "spec.rayCluster")
        if isinstance(shared, dict):
            yield from _check_type(shared, "template", dict, "spec.rayCluster")
            yield from _check_known(shared, RAY_CLUSTER_FIELDS, "spec.rayCluster")
            start = shared.get("startPolicy")
            if start is not None and start not in c.START_POLICIES:
                allowed = ", ".join(c.START_POLICIES)
                yield f"spec.rayCluster.startPolicy: must be one of {allowed}, got {start!r}"
        labels = spec.get("labels") or {}
        if isinstance(labels, dict) and c.KUEUE_QUEUE_LABEL in labels:
            yield (
                f"spec.labels: {c.KUEUE_QUEUE_LABEL} cannot be used with spec.rayCluster: Kueue "
                "suspends RayJobs, and KubeRay refuses to suspend a RayJob on a shared cluster"
            )


def _check_env(env: Any, path: str) -> Iterator[str]:
    if env is None:
        return
    if not isinstance(env, list):
        yield f"{path}: must be a list of {{name, value}}"
        return
    seen: set[str] = set()
    for i, item in enumerate(env):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            yield f"{path}[{i}].name: required, letters, digits, '_', '-' or '.'"
            continue
        if name in c.RESERVED_ENV or name.startswith(c.ENV_INPUT_PREFIX):
            yield f"{path}[{i}].name: {name} is set by the operator; use another name"
        if name in seen:
            yield f"{path}[{i}].name: duplicate variable {name}"
        seen.add(name)
        if not isinstance(item.get("value", ""), str):
            yield f"{path}[{i}].value: must be a string (quote numbers and booleans)"


def _reserved_env(env_vars: Any) -> list[str]:
    """The names in a runtime env's env_vars that the operator sets (MLJOB_*, MLJOB_INPUT_*)."""
    names = [str(n) for n in env_vars or {}] if isinstance(env_vars, dict) else []
    return [n for n in names if n in c.RESERVED_ENV or n.startswith(c.ENV_INPUT_PREFIX)]


def _check_string_map(value: Any, path: str) -> Iterator[str]:
    if value is None:
        return
    if not isinstance(value, dict):
        yield f"{path}: must be a map of strings"
        return
    for key, item in value.items():
        if not isinstance(item, str):
            yield f"{path}.{key}: must be a string (quote numbers and booleans)"


def _check_labels(labels: Any, path: str) -> Iterator[str]:
    yield from _check_string_map(labels, path)
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        if str(key).startswith(c.RESERVED_LABEL_PREFIX):
            yield f"{path}.{key}: the {c.RESERVED_LABEL_PREFIX} prefix is reserved for the operator"
        if isinstance(value, str) and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            yield f"{path}.{key}: a label value is at most 63 alphanumerics, '-', '_' or '.'"


# --- steps ---------------------------------------------------------------------------------------
def _check_steps(spec: Obj) -> Iterator[str]:
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        yield "spec.steps: required, a list of at least one step"
        return
    if len(steps) > c.MAX_STEPS:
        yield f"spec.steps: at most {c.MAX_STEPS} steps, got {len(steps)}"
    names = [s.get("name") if isinstance(s, dict) else None for s in steps]
    for i, step in enumerate(steps):
        path = f"spec.steps[{i}]"
        if not isinstance(step, dict):
            yield f"{path}: must be a mapping"
            continue
        yield from _check_step(step, path, names[:i], spec)
    if all(isinstance(s, dict) for s in steps):
        yield from _check_dependencies(steps, names)


def _check_step(step: Obj, path: str, earlier_names: list[Any], spec: Obj) -> Iterator[str]:
    name = step.get("name")
    if not isinstance(name, str) or not name:
        yield f"{path}.name: required"
    elif len(name) > c.STEP_NAME_MAX or not _DNS1123_LABEL.match(name):
        yield (
            f"{path}.name: {name!r} must be at most {c.STEP_NAME_MAX} lower-case alphanumerics "
            "or '-', starting and ending with an alphanumeric"
        )
    elif name in earlier_names:
        yield f"{path}.name: duplicate step name {name!r}; step names must be unique"
    yield from _check_known(step, STEP_FIELDS, path)
    yield from _check_int(step, "retries", path, 0, c.MAX_RETRIES)
    for key in ("backoffSeconds", "maxBackoffSeconds"):
        yield from _check_int(step, key, path, 0, c.MAX_BACKOFF_SECONDS)
    for key in ("startDeadlineSeconds", "activeDeadlineSeconds"):
        yield from _check_int(step, key, path, 1, c.MAX_DEADLINE_SECONDS)
    yield from _check_cache_fields(step, path)
    engines = [key for key in ENGINE_KEYS if key in step]
    if len(engines) != 1:
        yield f"{path}: set exactly one of `spark`, `ray` or `serve`"
    elif engines == ["spark"]:
        yield from _check_spark(step["spark"], f"{path}.spark", spec)
    elif engines == ["ray"]:
        yield from _check_ray_step(step["ray"], f"{path}.ray", spec)
    else:
        yield from _check_serve(step["serve"], f"{path}.serve", spec)
        if isinstance(name, str) and _RUN_LIKE_SUFFIX.search(name):
            # The RayService is `<mljob>-<step>` (naming.py): a name ending like a run's child
            # (`-r1`, `-a2`) or a shared cluster (`-ray`) could share KubeRay's `-head-svc`.
            yield f"{path}.name: a serve step's name must not end in -r<N>, -a<N> or -ray: {name!r}"


def _check_cache_fields(step: Obj, path: str) -> Iterator[str]:
    """cache (bool), cacheKey (a string, part of the fingerprint) and outputs (paths relative to
    the step's output location, checked locally after the step; docs/lifecycle.md)."""
    yield from _check_type(step, "cache", bool, path)
    if step.get("cache") is True and "serve" in step:
        yield f"{path}.cache: a serve step is never cached (its RayService is what serves)"
    key = step.get("cacheKey")
    if key is not None and (not isinstance(key, str) or len(key) > c.MAX_CACHE_KEY):
        yield f"{path}.cacheKey: must be a string of at most {c.MAX_CACHE_KEY} characters"
    outputs = step.get("outputs")
    if outputs is None:
        return
    if not isinstance(outputs, list) or len(outputs) > c.MAX_OUTPUTS:
        yield f"{path}.outputs: must be a list of at most {c.MAX_OUTPUTS} relative paths"
        return
    for i, output in enumerate(outputs):
        if not isinstance(output, str) or not _OUTPUT_PATH.match(output):
            yield (
                f"{path}.outputs[{i}]: {output!r} must be a relative path under the step's "
                "output location (no leading '/', no '..', no empty part, at most 253 characters)"
            )
        elif outputs.index(output) < i:
            yield f"{path}.outputs[{i}]: duplicate output {output!r}"


def _check_dependencies(steps: list[Obj], names: list[Any]) -> Iterator[str]:
    known = {n for n in names if isinstance(n, str)}
    for i, step in enumerate(steps):
        deps = step.get("dependsOn")
        path = f"spec.steps[{i}].dependsOn"
        if deps is None:
            continue
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            yield f"{path}: must be a list of step names"
            continue
        if len(deps) > c.MAX_DEPENDS_ON:
            yield f"{path}: at most {c.MAX_DEPENDS_ON} entries"
        for dep in deps:
            if dep == step.get("name"):
                yield f"{path}: a step cannot depend on itself ({dep!r})"
            elif dep not in known:
                yield f"{path}: unknown step {dep!r} (known: {', '.join(sorted(known))})"
    if len(known) != len(names):  # missing or duplicate names are reported already
        return
    cycle = find_cycle(steps)
    if cycle:
        yield f"spec.steps: dependency cycle {' -> '.join(cycle)}; remove one of these dependsOn"


def dependencies(steps: list[Obj]) -> dict[str, list[str]]:
    """Effective dependencies: `dependsOn` when given (even []), else the previous step in list."""
    deps: dict[str, list[str]] = {}
    for i, step in enumerate(steps):
        if "dependsOn" in step:
            deps[step["name"]] = list(step["dependsOn"] or [])
        else:
            deps[step["name"]] = [steps[i - 1]["name"]] if i else []
    return deps


def find_cycle(steps: list[Obj]) -> list[str]:
    """A dependency cycle as [a, b, ..., a], or [] (iterative DFS, so deep chains are fine)."""
    graph = dependencies(steps)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in graph:
        if root in state:
            continue
        path: list[str] = [root]
        stack = [iter(graph.get(root, []))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return []


# --- Spark ---------------------------------------------------------------------------------------
def _check_spark(spark: Any, path: str, spec: Obj) -> Iterator[str]:
    if not isinstance(spark, dict):
        yield f"{path}: must be a mapping"
        return
    yield from _check_known(spark, SPARK_FIELDS, path)
    if spark.get("type", "Python") not in SPARK_TYPES:
        yield f"{path}.type: must be one of {', '.join(SPARK_TYPES)}, got {spark.get('type')!r}"
    yield from _require_string(spark, "mainApplicationFile", path, "e.g. local:///app/etl.py")
    yield from _check_application_file(spark.get("mainApplicationFile"), path)
    yield from _require_string(spark, "sparkVersion", path, 'quoted, e.g. "4.0.1"')
    yield from _require_image(spark, path, spec)
    for key in ("mainClass", "serviceAccount"):
        yield from _check_type(spark, key, str, path)
    yield from _check_string_list(spark.get("arguments"), f"{path}.arguments")
    yield from _check_string_map(spark.get("sparkConf"), f"{path}.sparkConf")
    yield from _check_string_map(spark.get("hadoopConf"), f"{path}.hadoopConf")
    yield from _check_env(spark.get("env"), f"{path}.env")
    deps = spark.get("deps") or {}
    for key in ("jars", "files", "pyFiles", "packages"):
        yield from _check_string_list(deps.get(key), f"{path}.deps.{key}")
    driver, executor = spark.get("driver") or {}, spark.get("executor") or {}
    for role, pod in (("driver", driver), ("executor", executor)):
        yield from _check_int(pod, "cores", f"{path}.{role}", 1, None)
        yield from _check_type(pod, "memory", str, f"{path}.{role}")
    yield from _check_type(driver, "coreLimit", str, f"{path}.driver")
    yield from _check_int(executor, "instances", f"{path}.executor", 1, None)
    yield from _check_type(spark, "volumes", list, path)
    yield from _check_type(spark, "template", dict, path)


def _check_application_file(value: Any, path: str) -> Iterator[str]:
    """A scheme spark-submit can reach from a cluster: local:// (in the image) or a remote one.
    Local mode needs it too: its path rule maps local:///app/... to the project's files."""
    if not isinstance(value, str) or not value:
        return
    if not _SCHEME.match(value) or _FILE_SCHEME.match(value):
        yield (
            f"{path}.mainApplicationFile: {value!r} has no scheme spark-submit can use on a "
            "cluster (it would upload it from the Spark operator's pod); use local:///path for "
            "a file in the image, or s3a://bucket/path for one in storage"
        )


def spark_application_errors(app: Obj, path: str) -> Iterator[str]:
    """Rules the Spark operator's webhook adds to its schema (v2.5.2
    `internal/webhook/sparkapplication_validator.go`)."""
    spec = app["spec"]
    for key in spec.get("sparkConf") or {}:
        if SPARK_DENIED_CONF.match(key):
            hint = next((h for k, h in SPARK_CONF_HINT.items() if k in key), "the operator sets it")
            yield f"{path}.sparkConf.{key}: denied by the Spark operator; {hint}"
        if key == "spark.kubernetes.namespace" and spec["sparkConf"][key] != app["metadata"].get(
            "namespace"
        ):
            yield f"{path}.sparkConf.{key}: children live in the MLJob's namespace; remove it"
    uses_pod_template = any("template" in (spec.get(r) or {}) for r in ("driver", "executor"))
    if uses_pod_template and _version_tuple(spec.get("sparkVersion", "")) < (3, 0, 0):
        yield f"{path}.sparkVersion: pod templates need Spark >= 3.0.0"
    for field in ("type", "sparkVersion", "mainApplicationFile", "driver", "executor"):
        if field not in spec:
            yield f"{path}.template: removes {field}, which SparkApplication requires"


# --- Ray -----------------------------------------------------------------------------------------
def _check_ray_step(ray: Any, path: str, spec: Obj) -> Iterator[str]:
    if not isinstance(ray, dict):
        yield f"{path}: must be a mapping"
        return
    yield from _check_known(ray, RAY_STEP_FIELDS, path)
    yield from _require_string(ray, "entrypoint", path, "e.g. python /app/train.py")
    yield from _check_type(ray, "runtimeEnv", dict, path)
    yield from _check_type(ray, "template", dict, path)
    env_vars = (
        (ray.get("runtimeEnv") or {}).get("env_vars")
        if isinstance(ray.get("runtimeEnv"), dict)
        else None
    )
    yield from _check_string_map(env_vars, f"{path}.runtimeEnv.env_vars")
    for name in _reserved_env(env_vars):
        yield f"{path}.runtimeEnv.env_vars.{name}: set by the operator; use another name"
    if spec.get("rayCluster") is None:
        yield from _check_ray_cluster_fields(ray, spec, path)
        return
    for key in ("rayVersion", "image", "head", "workers"):
        if key in ray:
            yield (
                f"{path}.{key}: not used when spec.rayCluster is set (the step runs on the "
                f"shared cluster); remove it or set spec.rayCluster.{key}"
            )


def _check_serve(serve: Any, path: str, spec: Obj) -> Iterator[str]:
    """A serve step: one Ray Serve application on its own RayService cluster (never on
    spec.rayCluster, whose life ends with the run)."""
    if not isinstance(serve, dict):
        yield f"{path}: must be a mapping"
        return
    yield from _check_known(serve, SERVE_STEP_FIELDS, path)
    yield from _require_string(serve, "importPath", path, "module:attribute, e.g. serve_app:app")
    import_path = serve.get("importPath")
    if isinstance(import_path, str) and import_path.strip() and not _IMPORT_PATH.match(import_path):
        yield f"{path}.importPath: must be module:attribute (e.g. serve_app:app): {import_path!r}"
    route = serve.get("routePrefix")
    if route is not None and (not isinstance(route, str) or not route.startswith("/")):
        yield f"{path}.routePrefix: must start with '/', got {route!r}"
    yield from _check_type(serve, "runtimeEnv", dict, path)
    runtime_env = serve.get("runtimeEnv")
    env_vars = runtime_env.get("env_vars") if isinstance(runtime_env, dict) else None
    yield from _check_string_map(env_vars, f"{path}.runtimeEnv.env_vars")
    for name in _reserved_env(env_vars):
        yield f"{path}.runtimeEnv.env_vars.{name}: set by the operator; use another name"
    deployments = serve.get("deployments")
    if deployments is not None and not isinstance(deployments, list):
        yield f"{path}.deployments: must be a list of {{name, numReplicas, numCpus, numGpus}}"
    seen: set[str] = set()
    for i, deployment in enumerate(deployments if isinstance(deployments, list) else []):
        where = f"{path}.deployments[{i}]"
        if not isinstance(deployment, dict):
            yield f"{where}: must be a mapping"
            continue
        yield from _check_known(deployment, SERVE_DEPLOYMENT_FIELDS, where)
        yield from _require_string(deployment, "name", where, "the @serve.deployment's name")
        if deployment.get("name") in seen:
            yield f"{where}.name: duplicate deployment {deployment['name']!r}"
        seen.add(str(deployment.get("name")))
        yield from _check_int(deployment, "numReplicas", where, 1, None)
        for key in ("numCpus", "numGpus"):
            value = deployment.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                yield f"{where}.{key}: must be a number >= 0, got {value!r}"
    if "smoke" in serve:
        yield from _check_smoke(serve["smoke"], f"{path}.smoke")
    yield from _check_ray_cluster_fields(serve, spec, path)
    yield from _check_type(serve, "template", dict, path)


def _check_smoke(smoke: Any, path: str) -> Iterator[str]:
    """{path, method, json | body}: one HTTP request to the application, under its route prefix."""
    if not isinstance(smoke, dict):
        yield f"{path}: must be a mapping {{path, method, json or body}}"
        return
    yield from _check_known(smoke, SERVE_SMOKE_FIELDS, path)
    where = smoke.get("path")
    if where is not None and (not isinstance(where, str) or not where.startswith("/")):
        yield f"{path}.path: must start with '/' (it is under the routePrefix), got {where!r}"
    method = smoke.get("method")
    if method is not None and method not in SMOKE_METHODS:
        yield f"{path}.method: must be one of {', '.join(SMOKE_METHODS)}, got {method!r}"
    yield from _check_type(smoke, "json", dict, path)
    yield from _check_type(smoke, "body", str, path)
    if "json" in smoke and "body" in smoke:
        yield f"{path}: set json (sent as application/json) or body (text), not both"
    if method == "GET" and ("json" in smoke or "body" in smoke):
        yield f"{path}.method: a GET request sends no json or body; use POST or drop them"


def _check_ray_cluster_fields(ray: Any, spec: Obj, path: str) -> Iterator[str]:
    """{rayVersion, image, head, workers} of a Ray step with its own cluster, a serve step or
    spec.rayCluster. Not `template`: each caller checks it once (a Ray step for both of its
    cases, so a template that is not a mapping is reported once)."""
    if not isinstance(ray, dict):
        yield f"{path}: must be a mapping"
        return
    yield from _require_string(ray, "rayVersion", path, 'quoted, e.g. "2.49.0"')
    yield from _require_image(ray, path, spec)
    for group in ("head", "workers"):
        yield from _check_group(ray.get(group), f"{path}.{group}")
    workers = ray.get("workers")
    if isinstance(workers, dict):
        for key in ("replicas", "minReplicas", "maxReplicas"):
            yield from _check_int(workers, key, f"{path}.workers", 0, None)
        replicas = workers.get("replicas", 1)
        low, high = workers.get("minReplicas", replicas), workers.get("maxReplicas", replicas)
        numbers = all(isinstance(x, int) and not isinstance(x, bool) for x in (low, replicas, high))
        if numbers and not low <= replicas <= high:
            yield (
                f"{path}.workers: need minReplicas <= replicas <= maxReplicas, got {low} <= "
                f"{replicas} <= {high} (minReplicas and maxReplicas default to replicas; "
                "replicas is the starting size of elastic workers)"
            )
        elastic = numbers and builders.elastic(workers)
        yield from _check_autoscaling(workers, f"{path}.workers", elastic)


def _check_autoscaling(workers: Obj, path: str, elastic: bool) -> Iterator[str]:
    """The curated autoscaler options of elastic workers (minReplicas < maxReplicas)."""
    mode = workers.get("upscalingMode")
    if mode is not None and mode not in builders.RAY_UPSCALING_MODES:
        modes = ", ".join(builders.RAY_UPSCALING_MODES)
        yield f"{path}.upscalingMode: must be one of {modes}, got {mode!r}"
    yield from _check_int(workers, "idleTimeoutSeconds", path, 0, c.MAX_DEADLINE_SECONDS)
    for key in ("upscalingMode", "idleTimeoutSeconds"):
        if key in workers and not elastic:
            yield (
                f"{path}.{key}: only used by elastic workers; set minReplicas < maxReplicas "
                "to enable the autoscaler, or remove it"
            )


def _check_group(group: Any, path: str) -> Iterator[str]:
    if group is None:
        return
    if not isinstance(group, dict):
        yield f"{path}: must be a mapping"
        return
    for key in ("cpu", "memory"):
        value = group.get(key)
        if value is not None and (isinstance(value, bool) or not _QUANTITY.match(str(value))):
            yield f'{path}.{key}: not a Kubernetes quantity (e.g. "4", 500m, 16Gi): {value!r}'
    yield from _check_int(group, "gpu", path, 0, None)


def ray_job_errors(job: Obj, path: str) -> Iterator[str]:
    """KubeRay's ValidateRayJobSpec rules (v1.7.0
    `ray-operator/controllers/ray/utils/validation.go`) on the RayJob we would create."""
    spec = job["spec"]
    selector = spec.get("clusterSelector") or {}
    shutdown = spec.get("shutdownAfterJobFinishes", False)
    mode = spec.get("submissionMode", "K8sJobMode")
    if not spec.get("rayClusterSpec") and not selector.get(c.RAY_CLUSTER_SELECTOR_KEY):
        yield f"{path}: the RayJob needs rayClusterSpec or clusterSelector[ray.io/cluster]"
    if spec.get("suspend") and (not shutdown or selector):
        yield f"{path}.suspend: needs shutdownAfterJobFinishes and no shared cluster"
    if (spec.get("ttlSecondsAfterFinished") or 0) > 0 and not shutdown:
        yield f"{path}.ttlSecondsAfterFinished: needs shutdownAfterJobFinishes: true"
    for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if key in spec and not (isinstance(spec[key], int) and spec[key] > 0):
            yield f"{path}.{key}: must be > 0"
    backoff = spec.get("backoffLimit", 0)
    if not isinstance(backoff, int) or backoff < 0:
        yield f"{path}.backoffLimit: must be >= 0"
    elif backoff > 0 and selector:
        yield f"{path}.backoffLimit: KubeRay refuses retries on a shared cluster; use step retries"
    if mode == "InteractiveMode":
        yield f"{path}.submissionMode: InteractiveMode waits for a human; MLJob cannot drive it"
    if mode == "SidecarMode" and (
        selector or "submitterPodTemplate" in spec or "submitterConfig" in spec
    ):
        yield f"{path}.submissionMode: SidecarMode excludes a shared cluster and submitter fields"
    if (spec.get("deletionStrategy") or {}).get("deletionRules") and shutdown:
        yield f"{path}.deletionStrategy: deletionRules exclude shutdownAfterJobFinishes"
    if mode == "SidecarMode":
        head = (spec.get("rayClusterSpec") or {}).get("headGroupSpec") or {}
        restart = ((head.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if restart not in (None, "", "Never"):
            yield f"{path}.submissionMode: SidecarMode needs the head's restartPolicy Never"
    if spec.get("rayClusterSpec"):
        if (spec["rayClusterSpec"].get("authOptions") or {}).get("enableK8sTokenAuth"):
            yield f"{path}.rayClusterSpec.authOptions.enableK8sTokenAuth: not on a RayJob"
        yield from ray_cluster_spec_errors(spec["rayClusterSpec"], f"{path}.rayClusterSpec")


def ray_service_errors(service: Obj, path: str) -> Iterator[str]:
    """The RayService needs its cluster (a template may null it), then its cluster's rules."""
    spec = service["spec"]
    if not spec.get("rayClusterConfig"):
        yield f"{path}.template: removes rayClusterConfig, which RayService requires"
        return
    upgrade = (spec.get("upgradeStrategy") or {}).get("type")
    if upgrade != builders.RAY_SERVICE_UPGRADE:
        # A later run updates the RayService in place; only a NewCluster upgrade tells when the
        # new version serves (KubeRay promotes the new cluster); None would change the live
        # cluster's applications in place, with no signal of which version answers.
        yield (
            f"{path}.template: upgradeStrategy.type must stay {builders.RAY_SERVICE_UPGRADE} "
            f"(a new run's model is rolled out on a new cluster), got {upgrade!r}"
        )
    yield from ray_cluster_spec_errors(spec["rayClusterConfig"], f"{path}.rayClusterConfig")


def ray_cluster_spec_errors(spec: Obj, path: str) -> Iterator[str]:
    """KubeRay's ValidateRayClusterSpec rules that a merged template can break."""
    groups = [("headGroupSpec", spec.get("headGroupSpec") or {})]
    groups += [
        (f"workerGroupSpecs[{i}]", g) for i, g in enumerate(spec.get("workerGroupSpecs") or [])
    ]
    autoscaling = spec.get("enableInTreeAutoscaling", False)
    for name, group in groups:
        containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            yield f"{path}.{name}.template.spec.containers: at least one container"
        params = group.get("rayStartParams") or {}
        if "labels" in params:
            yield f"{path}.{name}.rayStartParams.labels: not allowed; use the group's labels"
        if group.get("resources") and {"num-cpus", "num-gpus", "resources"} & set(params):
            yield f"{path}.{name}: set Ray resources in rayStartParams or resources, not both"
        if name.startswith("worker") and not autoscaling:
            low, high = group.get("minReplicas"), group.get("maxReplicas")
            if not isinstance(low, int) or not isinstance(high, int) or not 0 <= low <= high:
                yield f"{path}.{name}: need 0 <= minReplicas <= maxReplicas"
    if autoscaling:
        yield from _autoscaler_v2_errors(spec, groups, path)
    yield from _auth_options_errors(spec, path)
    yield from ray_image_version_errors(spec, path)


# KubeRay v1.7 uses autoscaler v2 when autoscalerOptions.version is v2, or unset with Ray >= 2.47;
# v2 needs every group's restartPolicy Never or unset (its validation refuses the cluster).
RAY_AUTOSCALER_V2_DEFAULT_SINCE = (2, 47, 0)


def _autoscaler_v2_errors(spec: Obj, groups: list[tuple[str, Obj]], path: str) -> Iterator[str]:
    options = spec.get("autoscalerOptions") or {}
    version = options.get("version")
    ray_version = spec.get("rayVersion")
    v2 = version == "v2" or (
        version is None
        and isinstance(ray_version, str)
        and _version_tuple(ray_version) >= RAY_AUTOSCALER_V2_DEFAULT_SINCE
    )
    if not v2:
        return
    for name, group in groups:
        restart = ((group.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if restart not in (None, "", "Never"):
            yield (
                f"{path}.{name}.template.spec.restartPolicy: autoscaler v2 (elastic workers) "
                f"needs Never or unset, got {restart}"
            )


# Ray images whose tag says the Ray version: `rayproject/ray:2.49.0-py311-gpu` and the like
# (any registry; repositories ray, ray-ml, ray-llm). Other images (a project's own) say nothing.
RAY_IMAGE_REPOSITORIES = frozenset({"ray", "ray-ml", "ray-llm"})
_RAY_IMAGE_TAG = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-(py3\d+))?(?:-[0-9A-Za-z.]+)*$")


def ray_image_version(image: Any) -> tuple[tuple[int, int], str] | None:
    """((major, minor), python tag or "") of a Ray image whose tag says them, else None:
    `rayproject/ray:2.49.0-py311-gpu` -> ((2, 49), "py311"); `my/app:1.0`, `ray:latest` -> None."""
    if not isinstance(image, str):
        return None
    name = image.split("@", 1)[0]
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:  # no tag, or the colon was a registry port
        return None
    if repository.rsplit("/", 1)[-1] not in RAY_IMAGE_REPOSITORIES:
        return None
    match = _RAY_IMAGE_TAG.match(tag)
    if match is None:
        return None
    return (int(match[1]), int(match[2])), match[4] or ""


def ray_image_version_errors(spec: Obj, path: str) -> Iterator[str]:
    """rayVersion against the Ray version of each group's image (head, workers), to the minor
    version, and the head's Python against the workers' where the tags say them: a mismatch is
    the classic Ray failure (the workers cannot join, or unpickling fails mid-job)."""
    version = spec.get("rayVersion")
    wanted = _version_tuple(version)[:2] if isinstance(version, str) and version else None
    groups = [("head", spec.get("headGroupSpec") or {})]
    groups += [
        (f"worker group {g.get('groupName') or i}", g)
        for i, g in enumerate(spec.get("workerGroupSpecs") or [])
    ]
    head_python: tuple[str, str] | None = None
    for role, group in groups:
        containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or []
        image = (
            containers[0].get("image") if containers and isinstance(containers[0], dict) else None
        )
        parsed = ray_image_version(image)
        if parsed is None:
            continue
        (major, minor), python = parsed
        if wanted is not None and len(wanted) == 2 and (major, minor) != wanted:
            yield (
                f"{path}.rayVersion: {version} does not match {image}, the image of the {role} "
                f"(Ray {major}.{minor}); Ray versions must match to the minor version"
            )
        if not python:
            continue
        if head_python is None and role == "head":
            head_python = (python, str(image))
        elif head_python is not None and python != head_python[0]:
            yield (
                f"{path}: the head's image {head_python[1]} ({head_python[0]}) and the {role}'s "
                f"{image} ({python}) have different Python versions; use one Python everywhere"
            )


# KubeRay v1.6.1 `ValidateRayClusterSpec`: a RayJob breaking these ends ValidationFailed; a
# RayCluster breaking them gets only an InvalidRayClusterSpec Event and no status, for ever.
RAY_TOKEN_AUTH_MIN = (2, 52, 0)
RAY_K8S_TOKEN_AUTH_MIN = (2, 55, 0)


def _auth_options_errors(spec: Obj, path: str) -> Iterator[str]:
    auth = spec.get("authOptions")
    if not isinstance(auth, dict):
        return
    version = spec.get("rayVersion")
    k8s_auth = bool(auth.get("enableK8sTokenAuth"))
    if auth.get("mode") == "token":
        if not isinstance(version, str) or not version:
            yield f"{path}.authOptions.mode: token needs rayVersion >= 2.52.0 set"
        elif _version_tuple(version) < RAY_TOKEN_AUTH_MIN:
            yield f"{path}.authOptions.mode: token needs Ray >= 2.52.0 (rayVersion is {version})"
        elif k8s_auth and _version_tuple(version) < RAY_K8S_TOKEN_AUTH_MIN:
            yield f"{path}.authOptions.enableK8sTokenAuth: needs Ray >= 2.55.0 (not {version})"
        if k8s_auth and auth.get("secretName"):
            yield f"{path}.authOptions: enableK8sTokenAuth and secretName exclude each other"
    elif k8s_auth:
        yield f"{path}.authOptions.enableK8sTokenAuth: needs authOptions.mode: token"


def _check_generated_children(mljob: Obj) -> Iterator[str]:
    """The upstream controllers' rules, then (for a child that passes them) the upstream CRD
    schema: the API server would refuse an unknown or ill-typed field only after the pipeline
    started (the children are created with strict field validation)."""
    spec = mljob["spec"]
    for i, step in enumerate(spec["steps"]):
        path = f"spec.steps[{i}]"
        child = builders.build_step_child(mljob, step, run=1, attempt=1)
        key = next(k for k in ENGINE_KEYS if k in step)
        rules = {
            "spark": spark_application_errors,
            "ray": ray_job_errors,
            "serve": ray_service_errors,
        }[key]
        errors = list(rules(child, f"{path}.{key}"))
        yield from errors or child_schema_errors(child, f"{path}.{key}", step[key].get("template"))
    if spec.get("rayCluster"):
        cluster = builders.build_ray_cluster(mljob, run=1)
        errors = list(ray_cluster_spec_errors(cluster["spec"], "spec.rayCluster"))
        template = spec["rayCluster"].get("template")
        yield from errors or child_schema_errors(cluster, "spec.rayCluster", template)


def child_schema_errors(child: Obj, path: str, template: Any) -> Iterator[str]:
    """A child's upstream schema errors as `<MLJob field>: <Kind> <child field>: <problem>`.

    The MLJob field is `<path>.template` when the offending child field comes from the template
    (the usual case), else `path`, the step or rayCluster whose curated fields built it."""
    for error in schemas.child_errors(child):
        inner = error.path[1:] if error.path[:1] == ("spec",) else ()
        where = f"{path}.template" if _from_template(template, inner, error.keyword) else path
        yield f"{where}: {child['kind']} {error}"


def _from_template(template: Any, path: tuple[str | int, ...], keyword: str) -> bool:
    """Whether the template wrote the field at `path` of the spec, or (for a missing required
    field) the object that lacks it."""
    if not template or not path:
        return False
    if keyword == "required" and len(path) > 1 and _in_template(template, path[:-1]):
        return True
    return _in_template(template, path)


def _in_template(template: Any, path: tuple[str | int, ...]) -> bool:
    """Whether a merge patch sets (or deletes, with null) the field at `path` of the spec."""
    node = template
    for part in path:
        if isinstance(node, list):
            return True  # a template list replaces the whole list
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# --- small type helpers ---------------------------------------------------------------------------
def _check_known(obj: Obj, known: frozenset[str], path: str) -> Iterator[str]:
    for key in obj:
        if key not in known:
            yield f"{path}.{key}: unknown field (known: {', '.join(sorted(known))})"


def _check_type(obj: Obj, key: str, kind: type, path: str) -> Iterator[str]:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        yield f"{path}.{key}: must be {_TYPE_NAMES[kind]}, got {type(value).__name__}"


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


def _check_int(obj: Obj, key: str, path: str, low: int, high: int | None) -> Iterator[str]:
    value = obj.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        yield f"{path}.{key}: must be an integer, got {value!r}"
    elif value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        yield f"{path}.{key}: must be {bound}, got {value}"


def _check_string_list(value: Any, path: str) -> Iterator[str]:
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(x, str) for x in value)
    ):
        yield f"{path}: must be a list of strings"


def _require_string(obj: Obj, key: str, path: str, example: str) -> Iterator[str]:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        yield f"{path}.{key}: required ({example})"


def _require_image(obj: Obj, path: str, spec: Obj) -> Iterator[str]:
    image = obj.get("image") or spec.get("image")
    if not isinstance(image, str) or not image:
        yield f"{path}.image: required here or as spec.image"


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version)[:3]
    return tuple(int(p) for p in parts) if parts else (0,)
