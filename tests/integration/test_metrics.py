"""Observability on the real control plane: the operator process's /metrics after a pipeline,
its JSON log lines and the Events that tell the story on the MLJob."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from mljob.testing.operator_process import OperatorProcess

from .k8s import MLJOB, RAYJOB, SPARK, create, wait_for
from .test_pipeline import finish_rayjob, finish_spark, mljob, ray, spark, wait_child, wait_phase

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture
def observed(control_plane, api_client, tmp_path) -> Iterator[tuple[str, OperatorProcess]]:
    """A namespace of its own served by an operator of its own (JSON logs, a metrics port),
    so the counters move for this test's pipeline only."""
    namespace = f"m-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    process = OperatorProcess(
        control_plane, tmp_path / "operator.log", [namespace], ["--log-format=json"]
    )
    process.start()
    yield namespace, process
    process.stop()
    core.delete_namespace(namespace)


def scrape(process: OperatorProcess) -> Samples:
    with urllib.request.urlopen(process.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def run_spark_then_ray(api_client, namespace: str, name: str) -> None:
    create(api_client, MLJOB, namespace, mljob(name, spark("prepare"), ray("train")))
    finish_spark(
        api_client,
        namespace,
        wait_child(api_client, SPARK, namespace, "prepare")["metadata"]["name"],
    )
    finish_rayjob(
        api_client,
        namespace,
        wait_child(api_client, RAYJOB, namespace, "train")["metadata"]["name"],
    )
    wait_phase(api_client, namespace, name, "Succeeded")


def test_metrics_count_a_pipeline_with_bounded_labels(api_client, observed):
    namespace, process = observed
    run_spark_then_ray(api_client, namespace, "churn")

    def settled() -> Samples | None:
        samples = scrape(process)
        done = value(samples, "mljob_operator_mljobs", phase="Succeeded") == 1
        return samples if done else None

    samples = wait_for(settled, "the Succeeded MLJob in mljob_operator_mljobs")
    assert value(samples, "mljob_operator_runs_started_total") == 1
    assert value(samples, "mljob_operator_runs_finished_total", outcome="Succeeded") == 1
    for engine in ("spark", "ray"):
        labels = {"engine": engine, "outcome": "Succeeded"}
        assert value(samples, "mljob_operator_steps_finished_total", **labels) == 1
        assert value(samples, "mljob_operator_step_duration_seconds_count", **labels) == 1
    # One transition (prepare done -> train created); the last step starts nothing.
    assert value(samples, "mljob_operator_step_transition_seconds_count") == 1
    assert value(samples, "mljob_operator_step_transition_seconds_sum") < 10
    assert (
        value(samples, "mljob_operator_api_requests_total", verb="create", outcome="success") == 2
    )
    assert value(samples, "mljob_operator_api_requests_total", verb="patch", outcome="success") >= 3
    assert value(samples, "mljob_operator_api_request_duration_seconds_count", verb="create") == 2
    assert value(samples, "mljob_operator_reconciles_total", trigger="child") >= 4
    assert value(samples, "mljob_operator_reconciles_total", trigger="mljob") >= 1
    assert value(samples, "mljob_operator_reconcile_duration_seconds_count") >= 5
    assert value(samples, "mljob_operator_reconcile_errors_total", trigger="child") == 0
    assert value(samples, "mljob_operator_events_total", type="Normal", reason="StepStarted") == 2
    assert (
        value(samples, "mljob_operator_events_total", type="Normal", reason="PipelineSucceeded")
        == 1
    )
    # Posted: the start (StepStarted + PipelineRunning), the transition (StepSucceeded +
    # StepStarted), then StepSucceeded and PipelineSucceeded (docs/lifecycle.md).
    assert value(samples, "mljob_operator_event_posts_total") == 4
    watches = [
        v
        for (name, _), v in samples.items()
        if name == "mljob_operator_watch_streams_started_total"
    ]
    assert len(watches) >= 4 and all(v >= 1 for v in watches)  # MLJobs and three child kinds
    ours = {labels for (name, labels) in samples if name.startswith("mljob_operator_")}
    label_names = {label for labels in ours for label, _ in labels}
    assert label_names <= {
        "phase",
        "outcome",
        "engine",
        "verb",
        "trigger",
        "type",
        "reason",
        "resource",
        "le",
    }


def test_json_logs_carry_namespace_mljob_run_and_step(api_client, observed):
    namespace, process = observed
    run_spark_then_ray(api_client, namespace, "logged")
    lines = [
        json.loads(line)
        for line in process.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    created = [
        line
        for line in lines
        if "created" in line.get("message", "") and line.get("mljob") == "logged"
    ]
    assert {(line["namespace"], line["run"], line["step"]) for line in created} == {
        (namespace, 1, "prepare"),
        (namespace, 1, "train"),
    }


def test_events_tell_the_story_of_a_pipeline(api_client, observed):
    """What `kubectl describe mljob` shows: every step start and end, and the pipeline's. The
    progress of one reconcile is one Event (docs/lifecycle.md, "What is written when"): the
    start is a StepStarted that also says the pipeline runs, the transition a StepSucceeded that
    also names the step started."""
    namespace, _ = observed
    run_spark_then_ray(api_client, namespace, "story")
    expected = {
        ("Normal", "StepStarted"): 1,
        ("Normal", "StepSucceeded"): 2,
        ("Normal", "PipelineSucceeded"): 1,
    }

    def story() -> dict | None:
        events = client.CoreV1Api(api_client).list_namespaced_event(
            namespace, field_selector="involvedObject.name=story,involvedObject.kind=MLJob"
        )
        counts: dict[tuple[str, str], int] = {}
        messages = []
        for event in events.items:
            key = (event.type, event.reason)
            counts[key] = counts.get(key, 0) + (event.count or 1)
            messages.append(event.message)
        return {"counts": counts, "messages": messages} if counts == expected else None

    found = wait_for(story, f"the Events {expected}")
    assert any(m.startswith("step prepare: created SparkApplication") for m in found["messages"])
    assert any("\nstep train: created RayJob" in m for m in found["messages"])
    assert any(m.startswith("step train: RayJob") and m.endswith("done") for m in found["messages"])
