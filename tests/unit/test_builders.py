import yaml

from mljob import builders, schemas
from mljob import constants as c
from mljob.testing.corpus import UID, mljob, ray_step, spark_step


def env_of(container):
    return {e["name"]: e["value"] for e in container["env"]}


def test_spark_application_full_object():
    job = mljob(labels={"team": "a"}, annotations={"sidecar.istio.io/inject": "false"})
    app = builders.build_spark_application(job, job["spec"]["steps"][0], 2, 1)
    meta = app["metadata"]
    assert (app["apiVersion"], app["kind"]) == ("sparkoperator.k8s.io/v1beta2", "SparkApplication")
    assert meta["name"] == "churn-prepare-r2" and meta["namespace"] == "team-a"
    assert meta["labels"] == {
        "team": "a",
        c.LABEL_NAME: "churn",
        c.LABEL_STEP: "prepare",
        c.LABEL_RUN: "2",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "mljob.io/v1alpha1",
            "kind": "MLJob",
            "name": "churn",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = app["spec"]
    assert spec["mode"] == "cluster" and spec["restartPolicy"] == {"type": "Never"}
    assert spec["image"] == "registry.example.com/churn:1.4"
    conf = spec["sparkConf"]
    assert conf["spark.kubernetes.driverEnv.MLJOB_DATA_PATH"] == "s3a://lake/churn/churn/run-2"
    assert conf["spark.executorEnv.MLJOB_STEP"] == "prepare"
    assert conf["spark.executorEnv.MLJOB_RUN"] == "2"
    assert spec["driver"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert spec["executor"]["instances"] == 1


def test_spark_template_is_merged_last_and_null_deletes():
    step = spark_step("prepare")
    step["spark"]["template"] = {"timeToLiveSeconds": 60, "driver": {"memory": "8g"}, "mode": None}
    app = builders.build_spark_application(mljob([step]), step, 1, 1)
    assert app["spec"]["timeToLiveSeconds"] == 60
    assert app["spec"]["driver"]["memory"] == "8g" and app["spec"]["driver"]["cores"] == 1
    assert "mode" not in app["spec"]


def test_ray_job_owns_its_cluster_with_gpu_and_env():
    step = ray_step("train")
    step["ray"].update(
        workers={"replicas": 2, "cpu": 4, "memory": "16Gi", "gpu": 1},
        runtimeEnv={"pip": ["torch"], "env_vars": {"A": "1"}},
    )
    job = builders.build_ray_job(
        mljob([spark_step("prepare"), step], env=[{"name": "G", "value": "g"}]), step, 1, 3
    )
    assert job["metadata"]["name"] == "churn-train-r1-a3"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and "clusterSelector" not in spec
    worker = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert (worker["replicas"], worker["minReplicas"], worker["maxReplicas"]) == (2, 2, 2)
    container = worker["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "16Gi", c.GPU_RESOURCE: "1"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert env_of(container)["MLJOB_STEP"] == "train" and env_of(container)["G"] == "g"
    assert worker["template"]["metadata"]["labels"][c.LABEL_NAME] == "churn"
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["pip"] == ["torch"]
    assert runtime_env["env_vars"] == {
        "A": "1",
        "G": "g",
        "MLJOB_NAME": "churn",
        "MLJOB_RUN": "1",
        "MLJOB_STEP": "train",
        "MLJOB_DATA_PATH": "s3a://lake/churn/churn/run-1",
        "MLJOB_CHECKPOINT_PATH": "s3a://lake/churn/churn/run-1/_checkpoints/train",
        "MLJOB_OUTPUT_PATH": "s3a://lake/churn/churn/run-1/train",
        "MLJOB_INPUT_PREPARE": "s3a://lake/churn/churn/run-1/prepare",
    }


def test_ray_job_on_shared_cluster_uses_cluster_selector():
    step = {"name": "train", "ray": {"entrypoint": "python t.py"}}
    job_spec = mljob([step], rayCluster={"rayVersion": "2.49.0", "workers": {"replicas": 1}})
    job = builders.build_ray_job(job_spec, step, 4, 1)
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": "churn-r4-ray"}
    assert "rayClusterSpec" not in job["spec"] and "shutdownAfterJobFinishes" not in job["spec"]
    cluster = builders.build_ray_cluster(job_spec, 4)
    assert cluster["metadata"]["name"] == "churn-r4-ray"
    assert c.LABEL_STEP not in cluster["metadata"]["labels"]
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "MLJOB_STEP" not in env_of(head) and env_of(head)["MLJOB_RUN"] == "4"


def test_ray_steps_get_a_checkpoint_path_kept_across_attempts_new_per_run():
    """MLJOB_CHECKPOINT_PATH in the RayJob's runtimeEnv (the entrypoint and every task and
    actor see it): the same for every attempt of a run, so a retry resumes; another per run."""

    def checkpoint_path(job, run, attempt):
        ray_job = builders.build_ray_job(job, job["spec"]["steps"][1], run, attempt)
        return yaml.safe_load(ray_job["spec"]["runtimeEnvYAML"])["env_vars"][c.ENV_CHECKPOINT_PATH]

    job = mljob([spark_step("prepare"), ray_step("train")])
    first = checkpoint_path(job, 3, 1)
    assert first == "s3a://lake/churn/churn/run-3/_checkpoints/train"
    assert checkpoint_path(job, 3, 2) == first
    assert checkpoint_path(job, 4, 1) == "s3a://lake/churn/churn/run-4/_checkpoints/train"
    shared = mljob([spark_step("prepare"), ray_step("train")], rayCluster={"rayVersion": "2.60.0"})
    assert checkpoint_path(shared, 3, 2) == first  # on the shared cluster too
    del job["spec"]["dataPath"]
    assert checkpoint_path(job, 3, 1) == ""  # nothing shared to resume from
    app = builders.build_spark_application(job, job["spec"]["steps"][0], 3, 1)
    assert not any(c.ENV_CHECKPOINT_PATH in key for key in app["spec"]["sparkConf"])
    trailing_slash = builders.checkpoint_path("s3a://lake/x/run-1/", "t")
    assert trailing_slash == "s3a://lake/x/run-1/_checkpoints/t"


def test_names_are_deterministic_and_within_limits():
    long_job = mljob([spark_step("s" * 30), ray_step("r" * 30)])
    long_job["metadata"]["name"] = "n" * 63
    for step in long_job["spec"]["steps"]:
        first = builders.build_step_child(long_job, step, 1, 1)
        assert first == builders.build_step_child(long_job, step, 1, 1)
        assert len(first["metadata"]["name"]) <= c.NAME_LIMIT_OF_KIND[first["kind"]]


def test_built_children_match_the_real_upstream_schemas():
    step = ray_step("train")
    step["ray"]["workers"] = {"replicas": 1, "gpu": 1}
    own = mljob([spark_step("prepare"), step], labels={"a": "b"}, annotations={"x": "y"})
    shared = mljob(
        [spark_step("prepare"), {"name": "t", "ray": {"entrypoint": "x"}}],
        rayCluster={"rayVersion": "2.49.0", "head": {"cpu": "500m"}, "workers": {"replicas": 2}},
    )
    objects = [builders.build_step_child(own, s, 1, 1) for s in own["spec"]["steps"]]
    objects += [builders.build_step_child(shared, s, 1, 1) for s in shared["spec"]["steps"]]
    objects.append(builders.build_ray_cluster(shared, 1))
    for obj in objects:
        assert schemas.child_errors(obj) == [], obj["kind"]
    # the production checker catches what strict field validation would
    job = builders.build_step_child(own, own["spec"]["steps"][1], 1, 1)
    job["spec"]["entrypoin"] = "typo"
    assert [str(e) for e in schemas.child_errors(job)] == ["spec.entrypoin: unknown field"]
