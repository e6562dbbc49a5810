from pathlib import Path

import pytest

from mljob import constants as c
from mljob import states
from mljob.states import (
    child_state,
    ray_cluster_readiness,
    ray_job_state,
    spark_application_state,
)

SPARK_TABLE = [
    ("", c.PENDING),
    ("SUBMITTED", c.PENDING),
    ("PENDING_RERUN", c.PENDING),
    ("INVALIDATING", c.PENDING),
    ("RESUMING", c.PENDING),
    ("SUBMISSION_FAILED", c.PENDING),
    ("SUSPENDING", c.PENDING),
    ("SUSPENDED", c.PENDING),
    ("RUNNING", c.RUNNING),
    ("SUCCEEDING", c.RUNNING),
    ("FAILING", c.RUNNING),
    ("UNKNOWN", c.RUNNING),
    ("COMPLETED", c.SUCCEEDED),
    ("FAILED", c.FAILED),
    ("SOMETHING_NEW", c.PENDING),
]


def spark_app(state, error=None):
    app_state = {"state": state, **({"errorMessage": error} if error else {})}
    return {"kind": c.SPARK_KIND, "status": {"applicationState": app_state, "driverInfo": {}}}


@pytest.mark.parametrize(("state", "phase"), SPARK_TABLE)
def test_spark_every_state(state, phase):
    mapped = spark_application_state(spark_app(state))
    assert (mapped.phase, mapped.raw) == (phase, state)


@pytest.mark.parametrize("app", [{}, {"status": {}}, {"status": {"driverInfo": {}}}])
def test_spark_missing_status_is_new(app):
    assert spark_application_state(app).phase == c.PENDING


def test_spark_failure_carries_error_message():
    err = "driver container failed with ExitCode: 1, Reason: Error"
    assert spark_application_state(spark_app("FAILED", err)).message == err
    assert spark_application_state(spark_app("FAILED")).message  # never empty on failure


RAY_TABLE = [
    ("", "", c.PENDING),
    ("Initializing", "", c.PENDING),
    ("Waiting", "", c.PENDING),
    ("Suspending", "", c.PENDING),
    ("Suspended", "", c.PENDING),
    ("Running", "RUNNING", c.RUNNING),
    ("Retrying", "FAILED", c.RUNNING),
    ("Complete", "SUCCEEDED", c.SUCCEEDED),
    ("Complete", "STOPPED", c.FAILED),
    ("Failed", "RUNNING", c.FAILED),  # jobStatus alone lies (kuberay#2314)
    ("Failed", "FAILED", c.FAILED),
    ("ValidationFailed", "", c.FAILED),
    ("Running", "SUCCEEDED", c.RUNNING),  # not done until the deployment says so
    ("Brand-new", "", c.PENDING),
]


@pytest.mark.parametrize(("deployment", "job_status", "phase"), RAY_TABLE)
def test_ray_job_every_state(deployment, job_status, phase):
    job = {
        "kind": c.RAY_JOB_KIND,
        "status": {"jobDeploymentStatus": deployment, "jobStatus": job_status},
    }
    assert ray_job_state(job).phase == phase
    assert child_state(job).phase == phase


def test_ray_job_missing_status_and_message():
    assert ray_job_state({}).phase == c.PENDING
    failed = {
        "status": {
            "jobDeploymentStatus": "Failed",
            "reason": "DeadlineExceeded",
            "message": "too slow",
        }
    }
    assert ray_job_state(failed).message == "DeadlineExceeded: too slow"
    assert ray_job_state(failed).raw == "Failed"


def test_ray_cluster_readiness_uses_head_pod_ready_not_sticky_state():
    def cluster(cond_status, reason="HeadPodRunningAndReady"):
        cond = {"type": "HeadPodReady", "status": cond_status, "reason": reason}
        return {"status": {"state": "ready", "conditions": [cond]}}

    assert ray_cluster_readiness(cluster("True")).ready
    gone = ray_cluster_readiness(cluster("False", "ImagePullBackOff"))
    assert (gone.ready, gone.state) == (False, "ImagePullBackOff")
    assert ray_cluster_readiness({"status": {"state": "ready"}}).state == "Provisioning"


def test_child_state_rejects_other_kinds():
    with pytest.raises(ValueError):
        child_state({"kind": "Pod"})


# --- long upstream messages: one line in message, the excerpt in details ----------------------
DATA = Path(__file__).parent / "data"


def test_spark_submit_output_becomes_one_line_and_details():
    error = (DATA / "spark_submit_failed.txt").read_text()
    state = spark_application_state(spark_app("FAILED", error))
    assert state.message == (
        "failed to run spark-submit: java.io.IOException: Connection refused: /127.0.0.1:1"
    )
    assert "Caused by: java.net.ConnectException" in state.details
    assert len(state.details) <= c.MAX_DETAILS < len(error)


def test_spark_submission_failed_is_summarized_while_pending_too():
    error = (DATA / "spark_submit_failed.txt").read_text()
    state = spark_application_state(spark_app("SUBMISSION_FAILED", error))
    assert state.phase == c.PENDING
    assert "\n" not in state.message and len(state.message) <= c.MAX_CHILD_SUMMARY
    assert state.details


def test_ray_app_failed_names_the_python_error():
    job = {
        "kind": c.RAY_JOB_KIND,
        "status": {
            "jobDeploymentStatus": "Failed",
            "jobStatus": "FAILED",
            "reason": "AppFailed",
            "message": (DATA / "rayjob_app_failed.txt").read_text(),
        },
    }
    state = child_state(job)
    assert state.phase == c.FAILED
    assert state.message.startswith("AppFailed: Job entrypoint command failed with exit code 1: ")
    assert state.message.endswith(
        "ValueError: no rows in s3a://lake/churn/run-1/features/"
        "part-0000.parquet: was the prepare step's output written?"
    )
    assert state.details.endswith("was the prepare step's output written?")


def test_ray_validation_failed_long_line_is_clipped_with_details():
    message = (DATA / "rayjob_validation_failed.txt").read_text()
    job = {
        "kind": c.RAY_JOB_KIND,
        "status": {
            "jobDeploymentStatus": "ValidationFailed",
            "reason": "ValidationFailed",
            "message": message,
        },
    }
    state = ray_job_state(job)
    assert state.phase == c.FAILED
    assert len(state.message) <= c.MAX_CHILD_SUMMARY
    assert state.message.startswith("ValidationFailed: The RayJob metadata is invalid: ")
    assert state.details == f"ValidationFailed: {message}"


def test_short_message_is_not_stored_twice():
    state = spark_application_state(spark_app("FAILED", "driver pod not found"))
    assert (state.message, state.details) == ("driver pod not found", "")


# --- exact texts and raw states (found by make mutants) ------------------------------------------
def _spark(state: str, error: str | None = None) -> dict:
    app_state = {"state": state, **({"errorMessage": error} if error is not None else {})}
    return {"kind": "SparkApplication", "status": {"applicationState": app_state}}


def _ray(deployment: str, job_status: str = "", **extra: str) -> dict:
    status = {
        "jobDeploymentStatus": deployment,
        **({"jobStatus": job_status} if job_status else {}),
    }
    return {"kind": "RayJob", "status": {**status, **extra}}


def test_spark_texts():
    unknown = states.spark_application_state(_spark("WEIRD"))
    assert unknown == states.ChildState(
        c.PENDING, "WEIRD", "unrecognised SparkApplication state 'WEIRD'"
    )
    assert states.spark_application_state(_spark("RUNNING")).message == ""
    failed = states.spark_application_state(_spark("FAILED"))
    assert failed.message == "SparkApplication failed without an error message"


def test_ray_job_raw_states_and_texts():
    done = states.ray_job_state(_ray("Complete", "SUCCEEDED"))
    assert (done.phase, done.raw) == (c.SUCCEEDED, "Complete/SUCCEEDED")
    assert states.ray_job_state(_ray("Running", "RUNNING")).raw == "Running/RUNNING"
    assert states.ray_job_state(_ray("Initializing")).raw == "Initializing"
    stopped = states.ray_job_state(_ray("Complete", "STOPPED"))
    assert (stopped.phase, stopped.raw) == (c.FAILED, "Complete/STOPPED")
    assert stopped.message == "Ray job ended with jobStatus STOPPED"
    told = states.ray_job_state(_ray("Complete", "STOPPED", reason="Stopped", message="by hand"))
    assert told.message == "Stopped: by hand"
    unknown = states.ray_job_state(_ray("Weird"))
    assert unknown == states.ChildState(
        c.PENDING, "Weird", "unrecognised RayJob jobDeploymentStatus 'Weird'"
    )


def test_a_short_message_is_not_stored_twice_as_details():
    text = "x" * (c.MAX_CHILD_SUMMARY - 1)
    failed = states.spark_application_state(_spark("FAILED", text))
    assert failed.message == text and failed.details == ""


def test_ray_cluster_readiness_texts():
    assert states.ray_cluster_readiness({"status": {}}) == states.ClusterReadiness(
        False, "Provisioning", ""
    )
    head = {"type": "HeadPodReady", "status": "False"}
    assert states.ray_cluster_readiness({"status": {"conditions": [head]}}) == (
        states.ClusterReadiness(False, "Provisioning", "")
    )
    head.update(reason="ImagePullBackOff", message="no such image")
    assert states.ray_cluster_readiness({"status": {"conditions": [head]}}) == (
        states.ClusterReadiness(False, "ImagePullBackOff", "no such image")
    )
