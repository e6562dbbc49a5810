"""What the operator writes, and when (issue 14; docs/lifecycle.md "What is written when"),
against the real API server: a burst of child states rides on the step's end instead of a
status patch each; a child state that stays is still written, within the 10 s debounce; one
step transition is one Event. The decisions are unit-tested in tests/unit/test_status_writes.py.
"""

from __future__ import annotations

import pytest
from kubernetes import client, watch

from .k8s import MLJOB, SPARK, create, get, patch_status, wait_for
from .test_pipeline import finish_spark, mljob, spark, wait_child, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator_process")]


def status_writes(api_client, namespace: str, name: str, since: str) -> list[dict]:
    """Every status the MLJob had after resourceVersion `since`, up to Succeeded, replayed
    by a watch (each MODIFIED event is one write of the MLJob: the operator writes only its
    status)."""
    objects = client.CustomObjectsApi(api_client)
    seen = []
    for event in watch.Watch().stream(
        objects.list_namespaced_custom_object,
        *MLJOB[:2],
        namespace,
        MLJOB[2],
        field_selector=f"metadata.name={name}",
        resource_version=since,
        timeout_seconds=30,
    ):
        if event["type"] == "MODIFIED":
            seen.append(event["object"]["status"])
            if event["object"]["status"].get("phase") == "Succeeded":
                break
    return seen


def mljob_events(api_client, namespace: str, name: str) -> list[tuple[str, str]]:
    events = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=MLJob"
    )
    ordered = sorted(events.items, key=lambda e: int(e.metadata.resource_version))  # created
    return [(e.reason, e.message) for e in ordered]


def test_a_burst_of_child_states_rides_on_the_steps_end(api_client, namespace):
    created = create(api_client, MLJOB, namespace, mljob("burst", spark("prepare")))
    app = wait_child(api_client, SPARK, namespace, "prepare")
    wait_phase(api_client, namespace, "burst", "Running")
    finish_spark(api_client, namespace, app["metadata"]["name"])  # SUBMITTED, RUNNING, COMPLETED
    wait_phase(api_client, namespace, "burst", "Succeeded")

    writes = status_writes(api_client, namespace, "burst", created["metadata"]["resourceVersion"])
    # The start (the child created), then the end. The three child states came within well
    # under the 10 s debounce; one held state may be written on a very slow machine, so the
    # assertion allows three, where writing every state would be four.
    assert writes[0]["steps"][0]["phase"] == "Pending" and writes[-1]["phase"] == "Succeeded"
    assert len(writes) <= 3, [w["steps"][0].get("childState") for w in writes]
    assert writes[-1]["steps"][0]["childState"] == "COMPLETED"


def test_a_child_state_that_stays_is_written_within_the_debounce(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("stays", spark("prepare")))
    app = wait_child(api_client, SPARK, namespace, "prepare")
    wait_phase(api_client, namespace, "stays", "Running")
    running = {"applicationState": {"state": "RUNNING"}, "driverInfo": {}}
    patch_status(api_client, SPARK, namespace, app["metadata"]["name"], running)

    def step_running() -> dict | None:
        entry = get(api_client, MLJOB, namespace, "stays")["status"]["steps"][0]
        return entry if entry["phase"] == "Running" else None

    # No other event comes: only the glue's timer writes it (10 s; the resync is 60 s away).
    entry = wait_for(step_running, "step prepare to show Running", timeout=25)
    assert entry["childState"] == "RUNNING"


def test_a_step_transition_is_one_event_naming_both_steps(api_client, namespace):
    create(api_client, MLJOB, namespace, mljob("two", spark("prepare"), spark("report")))
    first = wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"]
    finish_spark(api_client, namespace, first)
    second = wait_child(api_client, SPARK, namespace, "report")["metadata"]["name"]
    finish_spark(api_client, namespace, second)
    wait_phase(api_client, namespace, "two", "Succeeded")

    expected = [
        ("StepStarted", f"step prepare: created SparkApplication {first}\nrunning step(s) prepare"),
        (
            "StepSucceeded",
            f"step prepare: SparkApplication {first} done\n"
            f"step report: created SparkApplication {second}",
        ),
        ("StepSucceeded", f"step report: SparkApplication {second} done"),
        ("PipelineSucceeded", "all 2 steps succeeded"),
    ]
    wait_for(
        lambda: mljob_events(api_client, namespace, "two") == expected or None,
        "one Event per transition, the pipeline's end its own",
    )
