"""The reconciler on the real control plane: the tests play the Spark operator and KubeRay by
patching the children's status, exactly what the operator watches."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client

from .k8s import MLJOB, RAYCLUSTER, RAYJOB, SPARK, create, get, patch_status, wait_for, zero_quota

pytestmark = pytest.mark.integration

SPARK_STEP = {
    "type": "Python",
    "mainApplicationFile": "local:///app/prepare.py",
    "sparkVersion": "4.0.1",
}
RAY_STEP = {"entrypoint": "python /app/train.py", "rayVersion": "2.49.0"}


def mljob(name: str, *steps: dict, **spec: object) -> dict:
    return {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "MLJob",
        "metadata": {"name": name},
        "spec": {
            "image": "example.com/churn:1",
            "dataPath": "s3a://lake",
            "steps": list(steps),
            **spec,
        },
    }


def spark(name: str, **extra: object) -> dict:
    return {"name": name, "spark": copy.deepcopy(SPARK_STEP), **extra}


def ray(name: str, **extra: object) -> dict:
    return {"name": name, "ray": copy.deepcopy(RAY_STEP), **extra}


def children(api_client, resource, namespace: str) -> list[dict]:
    group, version, plural = resource
    listed = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        group, version, namespace, plural
    )
    return listed["items"]


def wait_child(api_client, resource, namespace: str, step: str | None) -> dict:
    """Wait until the operator created the child of `step` (None: the shared RayCluster)."""

    def found():
        items = [
            c
            for c in children(api_client, resource, namespace)
            if c["metadata"]["labels"].get("mljob.io/step") == step
        ]
        return items[0] if items else None

    return wait_for(found, f"a {resource[2]} for step {step!r}")


def wait_phase(api_client, namespace: str, name: str, phase: str, timeout: float = 30) -> dict:
    def reached():
        job = get(api_client, MLJOB, namespace, name)
        return job if (job.get("status") or {}).get("phase") == phase else None

    return wait_for(reached, f"MLJob {name} to reach {phase}", timeout)


def finish_spark(api_client, namespace: str, name: str, state: str = "COMPLETED", error: str = ""):
    for step_state in ("SUBMITTED", "RUNNING", state):
        app_state = {"state": step_state}
        if error and step_state == state:
            app_state["errorMessage"] = error
        patch_status(
            api_client, SPARK, namespace, name, {"applicationState": app_state, "driverInfo": {}}
        )


def finish_rayjob(
    api_client,
    namespace: str,
    name: str,
    deployment: str = "Complete",
    job: str = "SUCCEEDED",
    **extra,
):
    patch_status(
        api_client,
        RAYJOB,
        namespace,
        name,
        {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
    )
    patch_status(
        api_client,
        RAYJOB,
        namespace,
        name,
        {"jobDeploymentStatus": deployment, "jobStatus": job, **extra},
    )


def condition(job: dict, kind: str) -> dict:
    return next(c for c in job["status"]["conditions"] if c["type"] == kind)


def mljob_events(api_client, namespace: str, name: str) -> list[str]:
    events = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=MLJob"
    )
    return [e.reason for e in events.items]


@pytest.mark.usefixtures("operator_process")
def test_spark_then_ray_happy_path(api_client, namespace):
    created = create(api_client, MLJOB, namespace, mljob("churn", spark("prepare"), ray("train")))

    app = wait_child(api_client, SPARK, namespace, "prepare")
    owner = app["metadata"]["ownerReferences"][0]
    assert owner["uid"] == created["metadata"]["uid"] and owner["controller"] is True
    assert app["metadata"]["labels"]["mljob.io/name"] == "churn"
    running = wait_phase(api_client, namespace, "churn", "Running")
    # after the status write of the plan that created prepare: any create of that plan is done
    assert not children(api_client, RAYJOB, namespace), "train must wait for prepare"
    assert running["status"]["progress"] == "0/2"
    assert condition(running, "Reconciling")["status"] == "True"
    assert condition(running, "Ready")["status"] == "False"

    finish_spark(api_client, namespace, app["metadata"]["name"])
    job = wait_child(api_client, RAYJOB, namespace, "train")
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    finish_rayjob(api_client, namespace, job["metadata"]["name"])

    done = wait_phase(api_client, namespace, "churn", "Succeeded")
    status = done["status"]
    events = client.CoreV1Api(api_client).list_namespaced_event(namespace).items
    assert events and {(e.source.component, e.reporting_component) for e in events} == {
        ("mljob-operator", "mljob-operator")
    }, "kubectl describe shows Events from mljob-operator, not kopf"
    assert status["observedGeneration"] == 1 and status["progress"] == "2/2"
    assert [(s["name"], s["phase"], s["childState"]) for s in status["steps"]] == [
        ("prepare", "Succeeded", "COMPLETED"),
        ("train", "Succeeded", "Complete/SUCCEEDED"),
    ]
    assert condition(done, "Ready")["status"] == "True"
    assert condition(done, "Succeeded")["status"] == "True"
    assert condition(done, "Ready")["observedGeneration"] == 1
    wait_for(
        lambda: (
            {"StepStarted", "StepSucceeded"} <= set(mljob_events(api_client, namespace, "churn"))
        ),
        "StepStarted and StepSucceeded Events on the MLJob",
    )
    assert len(children(api_client, SPARK, namespace)) == 1
    assert len(children(api_client, RAYJOB, namespace)) == 1


@pytest.mark.usefixtures("operator_process")
def test_spark_failure_fails_the_pipeline_with_the_spark_error(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("etl", spark("prepare"), ray("train")))
    app = wait_child(api_client, SPARK, namespace, "prepare")
    finish_spark(api_client, namespace, app["metadata"]["name"], "FAILED", "driver OOMKilled")

    failed = wait_phase(api_client, namespace, "etl", "Failed")
    stalled = condition(failed, "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "StepPrepareSparkApplicationFailed"
    assert "driver OOMKilled" in stalled["message"]
    assert condition(failed, "Succeeded")["status"] == "False"
    assert failed["status"]["steps"][1]["phase"] == "Pending"
    assert not children(api_client, RAYJOB, namespace), "no step may start after a failure"


@pytest.mark.usefixtures("operator_process")
@pytest.mark.parametrize(
    ("deployment", "job_status", "expected"),
    [
        ("Failed", "FAILED", "entrypoint exited with 1"),
        ("ValidationFailed", "", "entrypoint exited with 1"),
        ("Complete", "STOPPED", "entrypoint exited with 1"),
    ],
)
def test_ray_failures_fail_the_pipeline_with_the_rayjob_message(
    api_client, namespace, deployment, job_status, expected
):
    create(api_client, MLJOB, namespace, mljob("train", ray("fit")))
    job = wait_child(api_client, RAYJOB, namespace, "fit")
    finish_rayjob(
        api_client,
        namespace,
        job["metadata"]["name"],
        deployment,
        job_status,
        reason="AppFailed",
        message="entrypoint exited with 1",
    )
    failed = wait_phase(api_client, namespace, "train", "Failed")
    assert expected in condition(failed, "Stalled")["message"]
    assert "RayJob" in condition(failed, "Stalled")["reason"]


@pytest.mark.usefixtures("operator_process")
def test_shared_ray_cluster_runs_every_ray_step_and_is_deleted_at_the_end(api_client, namespace):
    spec = {"rayCluster": {"rayVersion": "2.49.0", "workers": {"replicas": 2, "cpu": "2"}}}
    steps = [ray("train"), ray("tune")]
    for step in steps:
        del step["ray"]["rayVersion"]  # the shared cluster's version applies
    create(api_client, MLJOB, namespace, mljob("warm", *steps, **spec))

    cluster = wait_child(api_client, RAYCLUSTER, namespace, None)
    cluster_name = cluster["metadata"]["name"]
    train = wait_child(api_client, RAYJOB, namespace, "train")
    assert train["spec"]["clusterSelector"] == {"ray.io/cluster": cluster_name}
    assert "rayClusterSpec" not in train["spec"]
    finish_rayjob(api_client, namespace, train["metadata"]["name"])
    tune = wait_child(api_client, RAYJOB, namespace, "tune")
    assert tune["spec"]["clusterSelector"] == {"ray.io/cluster": cluster_name}
    finish_rayjob(api_client, namespace, tune["metadata"]["name"])

    wait_phase(api_client, namespace, "warm", "Succeeded")
    wait_for(
        lambda: not children(api_client, RAYCLUSTER, namespace),
        "the shared RayCluster to be deleted when the pipeline ended",
    )
    assert len(children(api_client, RAYJOB, namespace)) == 2


@pytest.mark.usefixtures("operator_process")
def test_dag_runs_parallel_branches_and_joins(api_client, namespace):
    steps = [
        spark("ingest"),
        spark("features", dependsOn=["ingest"]),
        spark("labels", dependsOn=["ingest"]),
        ray("train", dependsOn=["features", "labels"]),
    ]
    create(api_client, MLJOB, namespace, mljob("dag", *steps))
    finish_spark(
        api_client,
        namespace,
        wait_child(api_client, SPARK, namespace, "ingest")["metadata"]["name"],
    )

    features = wait_child(api_client, SPARK, namespace, "features")
    labels = wait_child(api_client, SPARK, namespace, "labels")  # both branches run at once
    finish_spark(api_client, namespace, features["metadata"]["name"])
    wait_for(
        lambda: (
            {
                s["name"]: s["phase"]
                for s in get(api_client, MLJOB, namespace, "dag")["status"]["steps"]
            }["features"]
            == "Succeeded"
        ),
        "features to succeed",
    )
    assert not children(api_client, RAYJOB, namespace), "train must wait for both branches"
    finish_spark(api_client, namespace, labels["metadata"]["name"])
    finish_rayjob(
        api_client,
        namespace,
        wait_child(api_client, RAYJOB, namespace, "train")["metadata"]["name"],
    )
    assert wait_phase(api_client, namespace, "dag", "Succeeded")["status"]["progress"] == "4/4"


def test_invalid_mljob_is_rejected_at_apply_time(api_client, namespace):
    both = {"name": "confused", "spark": copy.deepcopy(SPARK_STEP), "ray": copy.deepcopy(RAY_STEP)}
    with pytest.raises(client.ApiException) as raised:
        create(api_client, MLJOB, namespace, mljob("bad", both))
    assert raised.value.status == 422
    assert "set exactly one of spark, ray or serve" in raised.value.body

    with pytest.raises(client.ApiException) as raised:
        create(api_client, MLJOB, namespace, mljob("dup", spark("a"), ray("a")))
    assert "step names must be unique" in raised.value.body


@pytest.mark.usefixtures("operator_process")
def test_child_rejected_by_the_api_server_fails_the_step_once(api_client, namespace):
    # validate() catches what the schemas can say; a quota is a refusal only the server knows.
    zero_quota(api_client, namespace, "sparkapplications.sparkoperator.k8s.io")
    create(api_client, MLJOB, namespace, mljob("rejected", spark("prepare"), ray("train")))
    failed = wait_phase(api_client, namespace, "rejected", "Failed")
    message = condition(failed, "Stalled")["message"]
    assert "the API server rejected SparkApplication rejected-prepare-r1" in message
    assert "exceeded quota" in message
    assert failed["status"]["steps"][0]["childState"] == "CreateRejected"
    assert failed["status"]["steps"][0]["attempts"] == 1
    assert not children(api_client, SPARK, namespace) and not children(
        api_client, RAYJOB, namespace
    )


@pytest.mark.usefixtures("operator_process")
def test_reapplying_an_unchanged_mljob_changes_nothing(
    control_plane, api_client, namespace, tmp_path
):
    import yaml

    manifest = tmp_path / "mljob.yaml"
    manifest.write_text(yaml.safe_dump(mljob("gitops", spark("prepare"))))
    control_plane.kubectl("apply", "-n", namespace, "-f", str(manifest))
    app = wait_child(api_client, SPARK, namespace, "prepare")
    finish_spark(api_client, namespace, app["metadata"]["name"])
    before = wait_phase(api_client, namespace, "gitops", "Succeeded")

    result = control_plane.kubectl("apply", "-n", namespace, "-f", str(manifest))
    assert "unchanged" in result.stdout  # no schema default inside a list makes kubectl patch
    after = get(api_client, MLJOB, namespace, "gitops")
    assert after == before  # same resourceVersion, generation and status: nothing happened
    assert len(children(api_client, SPARK, namespace)) == 1
