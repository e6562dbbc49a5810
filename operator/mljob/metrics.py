"""Prometheus metrics of the operator (prometheus-client, served by `mljob operator
--metrics-port`).

Every label has a small, fixed set of values (phase, engine, outcome, verb, trigger, event
reason, watched resource): never an MLJob, namespace or child name, so the number of series does
not grow with the number of pipelines.

What the timing metrics measure:
- mljob_operator_step_transition_seconds: inside the operator process, from receiving a child's
  watch event that shows a terminal state to the create of the next step's child returning (lock
  wait, planning, status writes before it and the create call itself). Steps whose terminal event
  starts no child (the last step, a failure) observe nothing.
- mljob_operator_step_duration_seconds: completionTime - startTime of a step's attempt as the
  operator recorded them in MLJob.status (whole seconds, the resolution of those timestamps).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter as CountOf
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from mljob import constants as c
from mljob import kinds

Obj = dict[str, Any]
PREFIX = "mljob_operator"
ENGINES = {k.kind: k.engine for k in kinds.STEP_KINDS}  # child kind -> `engine` label

# Sub-second buckets for in-process latencies, minutes to a day for steps.
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
STEP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)

RUNS_STARTED = Counter(f"{PREFIX}_runs_started", "Pipeline runs started.")
RUNS_FINISHED = Counter(
    f"{PREFIX}_runs_finished", "Pipeline runs that ended, by outcome.", ["outcome"]
)
STEPS_FINISHED = Counter(
    f"{PREFIX}_steps_finished",
    "Step attempts that ended, by engine and outcome.",
    ["engine", "outcome"],
)
STEP_DURATION = Histogram(
    f"{PREFIX}_step_duration_seconds",
    "Duration of a step attempt (status startTime to completionTime), by engine and outcome.",
    ["engine", "outcome"],
    buckets=STEP_BUCKETS,
)
STEP_TRANSITION = Histogram(
    f"{PREFIX}_step_transition_seconds",
    "A child's terminal-state watch event received -> the next step's child created.",
    buckets=FAST_BUCKETS,
)
RECONCILES = Counter(f"{PREFIX}_reconciles", "Reconciles of an MLJob, by trigger.", ["trigger"])
RECONCILE_ERRORS = Counter(
    f"{PREFIX}_reconcile_errors", "Reconciles that raised, by trigger.", ["trigger"]
)
RECONCILE_DURATION = Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "Time of one reconcile, lock wait included.",
    buckets=FAST_BUCKETS,
)
API_REQUESTS = Counter(
    f"{PREFIX}_api_requests",
    "Kubernetes API requests of the reconciler, by verb and outcome (HTTP status code, or "
    "'error' when no response came). Events are counted in mljob_operator_events_total.",
    ["verb", "outcome"],
)
API_DURATION = Histogram(
    f"{PREFIX}_api_request_duration_seconds",
    "Kubernetes API request latency of the reconciler, by verb.",
    ["verb"],
    buckets=FAST_BUCKETS,
)
EVENTS = Counter(
    f"{PREFIX}_events",
    "Events the operator recorded on MLJobs, by type and reason (the happy path's progress "
    "Events of one reconcile are posted together as one Event: see event_posts).",
    ["type", "reason"],
)
EVENT_POSTS = Counter(
    f"{PREFIX}_event_posts", "Kubernetes Event objects posted on MLJobs (API writes)."
)
WATCH_STREAMS = Counter(
    f"{PREFIX}_watch_streams_started",
    "Watch streams kopf (re)started, by resource: the first start of each watch, reconnects "
    "after a server timeout or inactivity, and restarts after 410 Gone.",
    ["resource"],
)


# --- MLJobs by phase: computed at scrape time from what the operator knows --------------------
def count_phases(phases: Iterable[str | None]) -> dict[str, int]:
    """MLJobs per pipeline phase (no status yet counts as Pending); every phase present."""
    counts = CountOf(phase or c.PENDING for phase in phases)
    return {phase: counts.get(phase, 0) for phase in c.PIPELINE_PHASES}


class PhaseCollector(Collector):
    def __init__(self, phases: Callable[[], Iterable[str | None]]) -> None:
        self.phases = phases

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_mljobs", "MLJobs the operator watches, by status.phase.", labels=["phase"]
        )
        for phase, count in count_phases(self.phases()).items():
            family.add_metric([phase], count)
        yield family


_phase_collector: PhaseCollector | None = None


def watch_phases(phases: Callable[[], Iterable[str | None]]) -> None:
    """Report mljob_operator_mljobs{phase} from `phases()` (called on every scrape)."""
    global _phase_collector
    if _phase_collector is None:
        _phase_collector = PhaseCollector(phases)
        REGISTRY.register(_phase_collector)
    _phase_collector.phases = phases


# --- status transitions: runs and steps --------------------------------------------------------
def observe_status(old: Obj, new: Obj) -> None:
    """Count the runs and steps that started or ended between two statuses of one MLJob."""
    same_run = old.get("run", new.get("run")) == new.get("run")
    if new.get("startTime") and not (same_run and old.get("startTime")):
        RUNS_STARTED.inc()
    ended = new.get("phase") in c.TERMINAL_PHASES
    if ended and not (same_run and old.get("phase") in c.TERMINAL_PHASES):
        RUNS_FINISHED.labels(new["phase"]).inc()
    before = {e["name"]: e for e in old.get("steps") or []} if same_run else {}
    for entry, seconds in finished_steps(before, new.get("steps") or []):
        engine = ENGINES.get(entry["kind"], "other")
        STEPS_FINISHED.labels(engine, entry["phase"]).inc()
        if seconds is not None:
            STEP_DURATION.labels(engine, entry["phase"]).observe(seconds)


def finished_steps(before: dict[str, Obj], entries: list[Obj]) -> list[tuple[Obj, float | None]]:
    """Step entries that became Succeeded or Failed (or ended another attempt), with the
    attempt's duration in seconds when both timestamps are known."""
    done = []
    for entry in entries:
        previous = before.get(entry["name"], {})
        ended = entry.get("phase") in c.TERMINAL_PHASES
        if ended and (previous.get("phase"), previous.get("attempts")) != (
            entry["phase"],
            entry.get("attempts"),
        ):
            done.append((entry, _seconds(entry.get("startTime"), entry.get("completionTime"))))
    return done


def _seconds(start: str | None, end: str | None) -> float | None:
    if not (start and end):
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    elapsed = datetime.strptime(end, fmt) - datetime.strptime(start, fmt)
    return max(0.0, elapsed.total_seconds())


# --- API requests --------------------------------------------------------------------------------
@contextlib.contextmanager
def api_request(verb: str) -> Iterator[None]:
    """Count and time one API request; the outcome is the HTTP status (2xx as 'success')."""
    started = time.perf_counter()
    outcome = "success"
    try:
        yield
    except Exception as error:
        status = getattr(error, "status", None)
        outcome = str(status) if status else "error"
        raise
    finally:
        API_REQUESTS.labels(verb, outcome).inc()
        API_DURATION.labels(verb).observe(time.perf_counter() - started)


# --- watch streams (kopf has no hook: count its own log records) -------------------------------
WATCH_LOGGER = "kopf._cogs.clients.watching"
WATCH_START = "Starting the watch-stream for "


class WatchStreamCounter(logging.Filter):
    """Counts kopf's "Starting the watch-stream for <resource> ..." debug records and lets
    through only what the root logger would have shown (`level`)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(WATCH_START):
            WATCH_STREAMS.labels(message[len(WATCH_START) :].split(" ", 1)[0]).inc()
        return record.levelno >= self.level


def count_watch_streams() -> None:
    """kopf logs each watch-stream start at DEBUG; listen to that logger at DEBUG and filter."""
    logger = logging.getLogger(WATCH_LOGGER)
    if not any(isinstance(f, WatchStreamCounter) for f in logger.filters):
        logger.addFilter(WatchStreamCounter(logging.getLogger().getEffectiveLevel()))
        logger.setLevel(logging.DEBUG)


def serve(port: int) -> None:
    """Serve /metrics on `port` (all interfaces) in a background thread; 0 disables."""
    if port:
        start_http_server(port)
