"""Pure helpers of mljob.metrics: phase counts, finished steps, status transitions, the
watch-stream log counter."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from mljob import metrics


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_count_phases_lists_every_phase_and_counts_no_status_as_pending():
    assert metrics.count_phases(["Running", None, "Running", "Failed"]) == {
        "Pending": 1,
        "Running": 2,
        "Succeeded": 0,
        "Failed": 1,
        "Suspended": 0,
    }


def step(phase: str, attempts: int = 1, kind: str = "SparkApplication", **times: str) -> dict:
    return {"name": "prepare", "kind": kind, "phase": phase, "attempts": attempts, **times}


def test_finished_steps_reports_each_ended_attempt_once_with_its_duration():
    done = step(
        "Succeeded", startTime="2026-01-01T00:00:00Z", completionTime="2026-01-01T00:01:30Z"
    )
    assert metrics.finished_steps({"prepare": step("Running")}, [done]) == [(done, 90.0)]
    assert metrics.finished_steps({"prepare": done}, [done]) == []
    assert metrics.finished_steps({}, [step("Failed")]) == [(step("Failed"), None)]
    assert metrics.finished_steps({}, [step("Running")]) == []


def test_observe_status_counts_runs_and_steps():
    started = sample("mljob_operator_runs_started_total")
    succeeded = sample("mljob_operator_runs_finished_total", outcome="Succeeded")
    ray_done = sample("mljob_operator_steps_finished_total", engine="ray", outcome="Succeeded")
    running = {"run": 1, "phase": "Running", "startTime": "2026-01-01T00:00:00Z"}
    metrics.observe_status({}, running)
    metrics.observe_status(running, running)  # nothing changed: nothing counted
    entry = step("Succeeded", kind="RayJob")
    metrics.observe_status(running, {**running, "phase": "Succeeded", "steps": [entry]})
    assert sample("mljob_operator_runs_started_total") == started + 1
    assert sample("mljob_operator_runs_finished_total", outcome="Succeeded") == succeeded + 1
    labels = {"engine": "ray", "outcome": "Succeeded"}
    assert sample("mljob_operator_steps_finished_total", **labels) == ray_done + 1


def test_watch_stream_counter_counts_kopf_records_and_keeps_the_root_level():
    counter = metrics.WatchStreamCounter(logging.INFO)
    name = "mljob_operator_watch_streams_started_total"
    before = sample(name, resource="mljobs.v1alpha1.mljob.io")
    record = logging.LogRecord(
        metrics.WATCH_LOGGER,
        logging.DEBUG,
        __file__,
        1,
        "Starting the watch-stream for mljobs.v1alpha1.mljob.io cluster-wide.",
        None,
        None,
    )
    assert counter.filter(record) is False  # DEBUG stays hidden at INFO
    assert sample(name, resource="mljobs.v1alpha1.mljob.io") == before + 1
    warning = logging.LogRecord(metrics.WATCH_LOGGER, logging.WARNING, __file__, 1, "x", None, None)
    assert counter.filter(warning) is True
