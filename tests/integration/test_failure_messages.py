"""Kilobytes of child error output on the real control plane: the MLJob's status.message and
conditions carry one line naming the cause, status.steps[].details and the Warning Events the
excerpt (issue 16). The tests play the Spark operator and KubeRay with the real texts of
tests/unit/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client

from mljob import constants as c

from .k8s import MLJOB, RAYJOB, SPARK, create, get, wait_for
from .test_pipeline import finish_rayjob, finish_spark, mljob, ray, spark, wait_child, wait_phase

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "unit" / "data"
# As the real Spark operator v2.5.2 wraps spark-submit's output (seen in tests/e2e).
SPARK_ERROR = (
    "failed to submit spark application: failed to run spark-submit: "
    + (DATA / "spark_submit_failed.txt").read_text()
)
SPARK_CAUSE = "java.io.IOException: Connection refused: /127.0.0.1:1"


def assert_one_short_line(text: str, *needles: str) -> None:
    assert "\n" not in text and len(text) <= c.MAX_SUMMARY, text
    for needle in needles:
        assert needle in text, (needle, text)


def warning_events(api_client, namespace: str, name: str) -> dict[str, list[str]]:
    listed = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=MLJob"
    )
    found: dict[str, list[str]] = {}
    for event in listed.items:
        if event.type == "Warning":
            found.setdefault(event.reason, []).append(event.message)
    return found


@pytest.mark.usefixtures("operator_process")
def test_spark_submit_output_is_one_line_in_status_and_an_excerpt_in_details_and_events(
    api_client, namespace
):
    create(api_client, MLJOB, namespace, mljob("etl", spark("prepare", retries=1)))
    first = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    finish_spark(api_client, namespace, first, "FAILED", SPARK_ERROR)

    def retrying():
        job = get(api_client, MLJOB, namespace, "etl")
        steps = (job.get("status") or {}).get("steps") or []
        return job if steps and steps[0]["phase"] == c.RETRYING else None

    step = wait_for(retrying, "step prepare to be Retrying")["status"]["steps"][0]
    assert_one_short_line(step["message"], "attempt 1 of 2 failed: ", SPARK_CAUSE)
    assert "Caused by: java.net.ConnectException: Connection refused" in step["details"]
    assert "WARNING: Using incubator modules" not in step["details"]
    assert len(step["details"]) <= c.MAX_DETAILS

    def second_child():
        job = get(api_client, MLJOB, namespace, "etl")
        name = job["status"]["steps"][0]["child"]
        return name if name != first and job["status"]["steps"][0]["attempts"] == 2 else None

    second = wait_for(second_child, "the second attempt's SparkApplication", timeout=60)
    wait_for(lambda: get(api_client, SPARK, namespace, second), f"SparkApplication {second}")
    finish_spark(api_client, namespace, second, "FAILED", SPARK_ERROR)
    failed = wait_phase(api_client, namespace, "etl", c.FAILED)

    status = failed["status"]
    prefix = f"step prepare (SparkApplication {second}) failed: attempt 2 of 2 failed: "
    assert_one_short_line(status["message"], SPARK_CAUSE)
    assert status["message"].startswith(prefix)
    assert [x["type"] for x in status["conditions"]] == list(c.CONDITION_TYPES)
    for condition in status["conditions"]:
        assert condition["message"] == status["message"]
    step = status["steps"][0]
    for failure in step["failures"]:
        assert_one_short_line(failure["message"], SPARK_CAUSE)
    assert "Caused by: java.io.IOException: Connection refused" in step["details"]
    # Kept once: the excerpt is in details only, not in the messages next to it.
    assert json.dumps(status).count("Caused by:") == step["details"].count("Caused by:")
    assert len(json.dumps(status)) < 4000 < len(SPARK_ERROR)

    def both_events():
        found = warning_events(api_client, namespace, "etl")
        return found if {"StepRetrying", "StepFailed"} <= set(found) else None

    events = wait_for(both_events, "StepRetrying and StepFailed Events")
    for message in events["StepRetrying"] + events["StepFailed"]:
        head, _, rest = message.partition("\n")
        assert_one_short_line(head, SPARK_CAUSE)
        assert len(message) <= c.MAX_EVENT_MESSAGE
        assert "Caused by: java.net.ConnectException: Connection refused" in rest


RAY_CASES = [
    (
        "Failed",
        "FAILED",
        "AppFailed",
        (DATA / "rayjob_app_failed.txt").read_text(),
        "AppFailed: Job entrypoint command failed with exit code 1: ValueError: no rows in",
        "Traceback (most recent call last):",
    ),
    (
        "ValidationFailed",
        "",
        "ValidationFailed",
        (DATA / "rayjob_validation_failed.txt").read_text(),
        "ValidationFailed: The RayJob metadata is invalid: RayJob name should be a valid DNS1035",
        "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]",
    ),
]


@pytest.mark.usefixtures("operator_process")
@pytest.mark.parametrize(
    ("deployment", "job_status", "reason", "message", "line", "kept"), RAY_CASES
)
def test_long_rayjob_messages_are_one_line_with_the_rest_in_details(
    api_client, namespace, deployment, job_status, reason, message, line, kept
):
    create(api_client, MLJOB, namespace, mljob("train", ray("fit")))
    name = wait_child(api_client, RAYJOB, namespace, "fit")["metadata"]["name"]
    finish_rayjob(
        api_client, namespace, name, deployment, job_status, reason=reason, message=message
    )
    status = wait_phase(api_client, namespace, "train", c.FAILED)["status"]

    assert_one_short_line(status["message"], f"step fit (RayJob {name}) failed: {line}")
    for condition in status["conditions"]:
        assert condition["message"] == status["message"]
    assert kept in status["steps"][0]["details"] and kept not in status["message"]

    found = wait_for(
        lambda: warning_events(api_client, namespace, "train").get("StepFailed"),
        "a StepFailed Event",
    )
    details = status["steps"][0]["details"]
    for event in found:  # the summary line, then the end of details (under kopf's 1 KB cut)
        head, _, rest = event.partition("\n")
        assert_one_short_line(head, line)
        assert rest and details.endswith(rest) and len(event) <= c.MAX_EVENT_MESSAGE
