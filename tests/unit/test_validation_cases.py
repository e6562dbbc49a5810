"""validation's KubeRay rules on small cluster specs, one rule per case (what a merged template
can break: KubeRay v1.7 refuses such a RayCluster after the pipeline started)."""

from __future__ import annotations

from typing import Any

import pytest

from mljob.testing.corpus import BAD_MANIFESTS, mljob, serve_mljob, shared_cluster_mljob
from mljob.validation import ray_cluster_spec_errors, ray_image_version, ray_job_errors, validate

Obj = dict[str, Any]
RESTART = "spec.workerGroupSpecs[0].template.spec.restartPolicy"


def cluster(ray_version: str, worker_restart: str | None, **options: Any) -> Obj:
    image = {"name": "ray", "image": "registry.example.com/app:1"}
    worker_pod: Obj = {"containers": [image]}
    if worker_restart is not None:
        worker_pod["restartPolicy"] = worker_restart
    spec: Obj = {
        "rayVersion": ray_version,
        "enableInTreeAutoscaling": True,
        "headGroupSpec": {"template": {"spec": {"containers": [image]}}},
        "workerGroupSpecs": [{"groupName": "w", "template": {"spec": worker_pod}}],
    }
    if options:
        spec["autoscalerOptions"] = options
    return spec


def restart_errors(spec: Obj) -> list[str]:
    return [e for e in ray_cluster_spec_errors(spec, "spec") if "restartPolicy" in e]


V2_ERROR = f"{RESTART}: autoscaler v2 (elastic workers) needs Never or unset, got Always"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # autoscaler v2 asked for: a worker restarting Always is refused, whatever the Ray
        (cluster("2.40.0", "Always", version="v2"), [V2_ERROR]),
        # v2 by default from Ray 2.47 on
        (cluster("2.47.0", "Always"), [V2_ERROR]),
        (cluster("2.46.0", "Always"), []),
        # v1 asked for: no such rule, even on a newer Ray
        (cluster("2.60.0", "Always", version="v1"), []),
        # Never or unset pass
        (cluster("2.60.0", "Never"), []),
        (cluster("2.60.0", None), []),
        (cluster("2.60.0", ""), []),
    ],
)
def test_autoscaler_v2_needs_workers_that_never_restart(spec: Obj, expected: list[str]) -> None:
    assert restart_errors(spec) == expected


def test_without_autoscaling_the_restart_policy_is_free() -> None:
    spec = cluster("2.60.0", "Always")
    spec["enableInTreeAutoscaling"] = False
    spec["workerGroupSpecs"][0].update(minReplicas=1, maxReplicas=1)
    assert restart_errors(spec) == []


# --- KubeRay's RayJob rules (ValidateRayJobSpec) -------------------------------------------------
def ray_job(**spec: Any) -> Obj:
    pod = {"containers": [{"name": "ray", "image": "registry.example.com/app:1"}]}
    cluster_spec = {
        "headGroupSpec": {"template": {"spec": pod}},
        "workerGroupSpecs": [
            {"groupName": "w", "minReplicas": 1, "maxReplicas": 1, "template": {"spec": pod}}
        ],
    }
    return {"spec": {"entrypoint": "python a.py", "rayClusterSpec": cluster_spec, **spec}}


SHARED = {"ray.io/cluster": "churn-r1"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"ttlSecondsAfterFinished": 1},
            ["spec.ttlSecondsAfterFinished: needs shutdownAfterJobFinishes: true"],
        ),
        ({"ttlSecondsAfterFinished": 1, "shutdownAfterJobFinishes": True}, []),
        ({"ttlSecondsAfterFinished": 0}, []),
        (
            {"submissionMode": "SidecarMode", "submitterPodTemplate": {}},
            ["spec.submissionMode: SidecarMode excludes a shared cluster and submitter fields"],
        ),
        (
            {"submissionMode": "SidecarMode", "submitterConfig": {}},
            ["spec.submissionMode: SidecarMode excludes a shared cluster and submitter fields"],
        ),
        ({"submissionMode": "SidecarMode"}, []),
    ],
)
def test_ray_job_rules(spec: Obj, expected: list[str]) -> None:
    assert list(ray_job_errors(ray_job(**spec), "spec")) == expected


def test_sidecar_mode_takes_a_head_whose_restart_policy_is_empty() -> None:
    job = ray_job(submissionMode="SidecarMode")
    job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["restartPolicy"] = ""
    assert list(ray_job_errors(job, "spec")) == []


def test_a_group_with_ray_resources_in_both_places_is_refused() -> None:
    job = ray_job()
    worker = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    worker.update(resources={"GPU": "1"}, rayStartParams={"num-gpus": "1"})
    assert list(ray_job_errors(job, "spec")) == [
        "spec.rayClusterSpec.workerGroupSpecs[0]: set Ray resources in rayStartParams or "
        "resources, not both"
    ]


def test_without_autoscaling_a_worker_group_needs_ordered_replica_bounds() -> None:
    job = ray_job()
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(minReplicas=3, maxReplicas=1)
    assert list(ray_job_errors(job, "spec")) == [
        "spec.rayClusterSpec.workerGroupSpecs[0]: need 0 <= minReplicas <= maxReplicas"
    ]


# --- Ray image tags ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("rayproject/ray:2.49.0-py311-gpu", ((2, 49), "py311")),
        ("registry.example.com/mirror/ray-ml:2.47.1", ((2, 47), "")),
        ("ray:2.49.0", ((2, 49), "")),
        ("registry.example.com/ray/app:2.49.0", None),  # the repository is app, not ray
        ("rayproject/ray:latest", None),
    ],
)
def test_a_ray_images_tag_says_its_version(image: str, expected: Any) -> None:
    assert ray_image_version(image) == expected


# --- a step's fields of the wrong type: one message naming the field and what it must be ------
def step_field(engine: str, key: str, value: Any) -> list[str]:
    job = mljob()
    step = job["spec"]["steps"][0 if engine == "spark" else 1][engine]
    if value is None:
        step.pop(key)
    else:
        step[key] = value
    return validate(job)


SPARK = "spec.steps[0].spark"
RAY = "spec.steps[1].ray"


@pytest.mark.parametrize(
    ("engine", "key", "value", "expected"),
    [
        (
            "spark",
            "mainApplicationFile",
            None,
            f"{SPARK}.mainApplicationFile: required (e.g. local:///app/etl.py)",
        ),
        ("spark", "arguments", "--rows 5", f"{SPARK}.arguments: must be a list of strings"),
        (
            "spark",
            "hadoopConf",
            {"a": 1},
            f"{SPARK}.hadoopConf.a: must be a string (quote numbers and booleans)",
        ),
        ("spark", "env", {"A": "b"}, f"{SPARK}.env: must be a list of {{name, value}}"),
        ("spark", "deps", {"files": "a.py"}, f"{SPARK}.deps.files: must be a list of strings"),
        (
            "spark",
            "deps",
            {"packages": "x:y:1"},
            f"{SPARK}.deps.packages: must be a list of strings",
        ),
        ("spark", "driver", {"memory": 2}, f"{SPARK}.driver.memory: must be a string, got int"),
        ("spark", "executor", {"memory": 2}, f"{SPARK}.executor.memory: must be a string, got int"),
        (
            "spark",
            "driver",
            {"coreLimit": 1},
            f"{SPARK}.driver.coreLimit: must be a string, got int",
        ),
        ("ray", "entrypoint", None, f"{RAY}.entrypoint: required (e.g. python /app/train.py)"),
        ("ray", "runtimeEnv", "pip: [x]", f"{RAY}.runtimeEnv: must be a mapping, got str"),
        (
            "ray",
            "workers",
            {"replicas": "two"},
            f"{RAY}.workers.replicas: must be an integer, got 'two'",
        ),
    ],
)
def test_a_field_of_the_wrong_type_is_one_message(
    engine: str, key: str, value: Any, expected: str
) -> None:
    assert step_field(engine, key, value) == [expected]


@pytest.mark.parametrize("template", ["x", [{"backoffLimit": 2}]], ids=["str", "list"])
@pytest.mark.parametrize("where", ["own-cluster", "shared-cluster"])
def test_a_ray_template_that_is_not_a_mapping_is_one_message(where: str, template: Any) -> None:
    """Named once whether the step has its own cluster or runs on spec.rayCluster (the own-cluster
    case was once reported twice: by the step's check and by its cluster fields' check)."""
    job = mljob() if where == "own-cluster" else shared_cluster_mljob()
    job["spec"]["steps"][1]["ray"]["template"] = template
    got = type(template).__name__
    assert validate(job) == [f"{RAY}.template: must be a mapping, got {got}"]


@pytest.mark.parametrize("template", ["x", [{"backoffLimit": 2}]], ids=["str", "list"])
def test_a_serve_or_shared_cluster_template_that_is_not_a_mapping_is_one_message(
    template: Any,
) -> None:
    got = type(template).__name__
    serve = serve_mljob()
    serve["spec"]["steps"][2]["serve"]["template"] = template
    assert validate(serve) == [f"spec.steps[2].serve.template: must be a mapping, got {got}"]
    shared = shared_cluster_mljob(template=template)
    assert validate(shared) == [f"spec.rayCluster.template: must be a mapping, got {got}"]


def test_the_corpus_template_cases_are_one_message_each() -> None:
    cases = {case: (manifest, fragment) for case, manifest, fragment in BAD_MANIFESTS}
    for case in ("ray-template-not-a-mapping", "shared-cluster-ray-step-template-not-a-mapping"):
        manifest, fragment = cases[case]
        assert validate(manifest) == [fragment], case


@pytest.mark.parametrize("key", ["rayVersion", "image", "head", "workers"])
def test_a_ray_step_on_the_shared_cluster_names_the_cluster_fields_it_cannot_use(key: str) -> None:
    job = shared_cluster_mljob()
    job["spec"]["steps"][1]["ray"][key] = {"cpu": "1"} if key in ("head", "workers") else "x"
    expected = (
        f"spec.steps[1].ray.{key}: not used when spec.rayCluster is set (the step runs on the "
        f"shared cluster); remove it or set spec.rayCluster.{key}"
    )
    assert expected in validate(job)
