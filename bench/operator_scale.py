"""Operator benchmark at scale (on demand; not part of the test suite).

    .venv/bin/python bench/operator_scale.py --pipelines 100 [--delay 0] [--waves 3]

Starts the test control plane (etcd + kube-apiserver + GC) and `mljob operator` as its own
process, plus a simulator that plays the Spark operator and KubeRay through watches: each new
SparkApplication goes SUBMITTED -> RUNNING -> COMPLETED, each RayJob Initializing -> Running ->
Complete/SUCCEEDED (the terminal patch after --delay seconds). N MLJobs of three steps (Spark ->
Ray -> Spark) are created at once, in three waves (deleted between waves, for the leak check).

The floor: before the waves, in the same run and against the same API server, a minimal
controller (no kopf, no status mirroring) plays the operator for N pipelines: it watches the
MLJobs and the same children and creates the next child (the same bodies the operator would
build) as soon as it sees a terminal state, then marks the MLJob Succeeded. Latencies are
reported as ratios to it.

Measured, per wave: create -> first child (MLJob create returned -> the child's ADDED seen by
the simulator), step transition (the simulator's terminal status patch accepted -> the next
child's ADDED seen by the simulator), pipelines/s (N / makespan, makespan = first create to
last Succeeded seen), API requests per pipeline by verb (the operator's own counters), peak
RSS, CPU seconds and RSS after each wave (/proc/<pid>). Appends a markdown report to
docs/benchmarks.md (--output).

--heap-census: a run of its own for memory, not speed. The operator runs under tracemalloc
(PYTHONTRACEMALLOC, and MLJOB_HEAP_CENSUS_DIR: mljob/census.py) and, once each wave's MLJobs are
deleted and forgotten, is sent SIGUSR1 and dumps a snapshot; the report adds the allocation
sites that grew most between wave 2 and the last wave (needs --waves 3 or more). tracemalloc
slows every allocation, so that run's latencies, rates and CPU are not comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import os
import platform
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

from mljob import builders, census, states
from mljob import constants as c
from mljob.testing.controlplane import ControlPlane
from mljob.testing.operator_process import OperatorProcess

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (namespace, MLJob name, step)
SPARK = ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
RAYJOB = ("ray.io", "v1", "rayjobs")
MLJOB = (c.GROUP, c.VERSION, c.PLURAL)
STEPS = ("extract", "train", "report")  # Spark -> Ray -> Spark
SPARK_STATES = [{"applicationState": {"state": s}, "driverInfo": {}} for s in
                ("SUBMITTED", "RUNNING", "COMPLETED")]  # fmt: skip
RAY_STATES = [
    {"jobDeploymentStatus": "Initializing"},
    {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
    {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"},
]
ROOT = Path(__file__).resolve().parent.parent


def mljob_body(name: str) -> Obj:
    spark = {"type": "Python", "mainApplicationFile": "local:///app/x.py", "sparkVersion": "4.0.1"}
    ray = {"entrypoint": "python /app/train.py", "rayVersion": "2.49.0"}
    steps = [
        {"name": "extract", "spark": spark},
        {"name": "train", "ray": ray},
        {"name": "report", "spark": spark},
    ]
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": "MLJob",
        "metadata": {"name": name},
        "spec": {"image": "example.com/bench:1", "dataPath": "s3a://bench", "steps": steps},
    }


# --- timestamps ---------------------------------------------------------------------------------
@dataclass
class Recorder:
    """When things happened (time.monotonic), per pipeline and step, from any thread."""

    created: dict[tuple[str, str], float] = field(default_factory=dict)
    added: dict[Key, float] = field(default_factory=dict)
    terminal: dict[Key, float] = field(default_factory=dict)
    done: dict[tuple[str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def note(self, table: dict, key: Any) -> None:
        with self.lock:
            table.setdefault(key, time.monotonic())
            if table is self.done:
                self.changed.notify_all()

    def wait_done(self, namespace: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.lock:
            while sum(ns == namespace for ns, _ in self.done) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{namespace}: pipelines not done after {timeout}s")
                self.changed.wait(min(left, 5))


def watch_forever(resource: tuple[str, str, str], api: client.ApiClient, on_event: Callable,
                  namespace: str | None = None, labels: str | None = None) -> None:  # fmt: skip
    """List, then watch from the list's resourceVersion; start over on any error."""
    objects = client.CustomObjectsApi(api)
    group, version, plural = resource
    while True:
        try:
            if namespace:
                args = (group, version, namespace, plural)
                lister = objects.list_namespaced_custom_object
            else:
                args = (group, version, plural)
                lister = objects.list_cluster_custom_object
            listed = lister(*args, label_selector=labels)
            for item in listed["items"]:
                on_event("ADDED", item)
            stream = watch.Watch().stream(
                lister, *args, label_selector=labels,
                resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=3600,
            )  # fmt: skip
            for event in stream:
                on_event(event["type"], event["object"])
        except Exception as error:  # a benchmark keeps going; the watch restarts
            print(f"watch {plural} restarts: {error}", file=sys.stderr)
            time.sleep(0.5)


def daemon(target: Callable, *args: Any) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


class Delayed:
    """Runs functions on a thread pool, each after its own delay (one timer thread)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool, self.heap, self.cv, self.seq = pool, [], threading.Condition(), 0
        daemon(self._loop)

    def submit(self, delay: float, fn: Callable, *args: Any) -> None:
        if delay <= 0:
            self.pool.submit(fn, *args)
            return
        with self.cv:
            self.seq += 1
            heapq.heappush(self.heap, (time.monotonic() + delay, self.seq, fn, args))
            self.cv.notify()

    def _loop(self) -> None:
        while True:
            with self.cv:
                while not self.heap or self.heap[0][0] > time.monotonic():
                    self.cv.wait(self.heap[0][0] - time.monotonic() if self.heap else None)
                _, _, fn, args = heapq.heappop(self.heap)
            self.pool.submit(fn, *args)


# --- the simulated Spark operator and KubeRay ---------------------------------------------------
class Simulator:
    def __init__(self, api: client.ApiClient, recorder: Recorder, delay: float) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.api, self.recorder, self.delay = api, recorder, delay
        self.seen: set[tuple[str, str]] = set()
        self.delayed = Delayed(ThreadPoolExecutor(16, "sim"))

    def start(self) -> None:
        for resource in (SPARK, RAYJOB):
            daemon(watch_forever, resource, self.api, self._child_event, None, c.LABEL_NAME)
        daemon(watch_forever, MLJOB, self.api, self._mljob_event)

    def _mljob_event(self, kind: str, mljob: Obj) -> None:
        if (mljob.get("status") or {}).get("phase") == c.SUCCEEDED:
            meta = mljob["metadata"]
            self.recorder.note(self.recorder.done, (meta["namespace"], meta["name"]))

    def _child_event(self, kind: str, child: Obj) -> None:
        meta = child["metadata"]
        if kind == "DELETED" or (meta["namespace"], meta["name"]) in self.seen:
            return
        self.seen.add((meta["namespace"], meta["name"]))
        key = (meta["namespace"], meta["labels"][c.LABEL_NAME], meta["labels"][c.LABEL_STEP])
        self.recorder.note(self.recorder.added, key)
        self.delayed.submit(0, self._play, child, key)

    def _play(self, child: Obj, key: Key) -> None:
        resource, sequence = (SPARK, SPARK_STATES) if child["kind"] == c.SPARK_KIND else (
            RAYJOB, RAY_STATES)  # fmt: skip
        for status in sequence[:-1]:
            self._patch(resource, child, status)
        self.delayed.submit(self.delay, self._finish, resource, child, sequence[-1], key)

    def _finish(self, resource: tuple, child: Obj, status: Obj, key: Key) -> None:
        self._patch(resource, child, status)
        self.recorder.note(self.recorder.terminal, key)

    def _patch(self, resource: tuple, child: Obj, status: Obj) -> None:
        group, version, plural = resource
        meta = child["metadata"]
        self.objects.patch_namespaced_custom_object_status(
            group, version, meta["namespace"], plural, meta["name"], {"status": status},
            _preload_content=False,
        )  # fmt: skip


# --- the floor: a minimal controller ------------------------------------------------------------
class Floor:
    """Creates each next child as soon as a terminal state shows up; no status mirroring."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.api, self.namespace = api, namespace
        self.mljobs: dict[str, Obj] = {}
        self.handled: set[tuple[str, str]] = set()
        self.pool = ThreadPoolExecutor(16, "floor")

    def start(self) -> None:
        daemon(watch_forever, MLJOB, self.api, self._mljob_event, self.namespace)
        for resource in (SPARK, RAYJOB):
            daemon(watch_forever, resource, self.api, self._child_event, self.namespace)

    def _mljob_event(self, kind: str, mljob: Obj) -> None:
        name = mljob["metadata"]["name"]
        if kind == "ADDED" and name not in self.mljobs:
            self.mljobs[name] = mljob
            self.pool.submit(self._create, mljob, 0)

    def _child_event(self, kind: str, child: Obj) -> None:
        meta = child["metadata"]
        if kind == "DELETED" or states.child_state(child).phase != c.SUCCEEDED:
            return
        if meta["name"] in self.handled:
            return
        self.handled.add(meta["name"])
        mljob = self.mljobs[meta["labels"][c.LABEL_NAME]]
        index = STEPS.index(meta["labels"][c.LABEL_STEP]) + 1
        if index < len(STEPS):
            self.pool.submit(self._create, mljob, index)
        else:
            self.pool.submit(self._succeed, mljob)

    def _create(self, mljob: Obj, index: int) -> None:
        body = builders.build_step_child(mljob, mljob["spec"]["steps"][index], 1, 1)
        group, version, plural = SPARK if body["kind"] == c.SPARK_KIND else RAYJOB
        self.objects.create_namespaced_custom_object(
            group, version, self.namespace, plural, body, _preload_content=False
        )

    def _succeed(self, mljob: Obj) -> None:
        self.objects.patch_namespaced_custom_object_status(
            *MLJOB[:2], self.namespace, MLJOB[2], mljob["metadata"]["name"],
            {"status": {"phase": c.SUCCEEDED}}, _preload_content=False,
        )  # fmt: skip


# --- one wave -------------------------------------------------------------------------------------
@dataclass
class Wave:
    label: str
    first_child: list[float]
    transition: list[float]
    lifetime: list[float]  # a child's ADDED -> its terminal status patch (the simulator's pace)
    makespan: float
    count: int
    requests: Counter[str] = field(default_factory=Counter)
    health: Counter[str] = field(default_factory=Counter)  # reconciles, errors, watch restarts
    inside: Counter[str] = field(default_factory=Counter)  # the operator's histogram sums
    rss_peak_mib: float = 0.0
    rss_after_mib: float = 0.0
    cpu_seconds: float = 0.0
    # This process's CPU over the wave: the simulator and the bench's watches, plus for the
    # floor wave the minimal controller itself (its threads live here).
    bench_cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / self.makespan


def run_wave(
    api: client.ApiClient, recorder: Recorder, namespace: str, n: int, timeout: float | None = None
) -> Wave:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    objects = client.CustomObjectsApi(api)
    started = time.monotonic()

    def create(i: int) -> None:
        name = f"p{i:05d}"
        objects.create_namespaced_custom_object(
            *MLJOB[:2], namespace, MLJOB[2], mljob_body(name), _preload_content=False
        )
        recorder.note(recorder.created, (namespace, name))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(n)))
    recorder.wait_done(namespace, n, timeout=timeout or max(300.0, n * 1.0))
    with recorder.lock:
        last = max(t for (ns, _), t in recorder.done.items() if ns == namespace)
        return Wave(namespace, *latencies(recorder, namespace), last - started, n)


def latencies(recorder: Recorder, namespace: str) -> tuple[list[float], list[float], list[float]]:
    first, transition, lifetime = [], [], []
    for (ns, name), created in recorder.created.items():
        if ns != namespace:
            continue
        first.append(recorder.added[(ns, name, STEPS[0])] - created)
        for before, after in itertools.pairwise(STEPS):
            transition.append(
                recorder.added[(ns, name, after)] - recorder.terminal[(ns, name, before)]
            )
        for step in STEPS:
            lifetime.append(recorder.terminal[(ns, name, step)] - recorder.added[(ns, name, step)])
    return first, transition, lifetime


def delete_mljobs(api: client.ApiClient, namespace: str) -> None:
    client.CustomObjectsApi(api).delete_collection_namespaced_custom_object(
        *MLJOB[:2], namespace, MLJOB[2], propagation_policy="Background"
    )


# --- the operator process -------------------------------------------------------------------------
def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def means(samples: dict) -> Counter[str]:
    """Sums and counts of the operator's own histograms (for per-wave means)."""
    totals: Counter[str] = Counter()
    for (name, labels), value in samples.items():
        for base in ("step_transition_seconds", "api_request_duration_seconds",
                     "reconcile_duration_seconds"):  # fmt: skip
            for part in ("sum", "count"):
                if name == f"mljob_operator_{base}_{part}":
                    verb = dict(labels).get("verb", "")
                    totals[f"{base}{'/' + verb if verb else ''}_{part}"] += value
    return totals


def requests_by_verb(samples: dict) -> Counter[str]:
    """API requests by verb, and "event": the Event objects posted (several Events of one
    reconcile may be posted as one: mljob_operator_event_posts_total counts the writes; an
    operator from before it had one write per mljob_operator_events_total)."""
    counts: Counter[str] = Counter()
    posts = any(name == "mljob_operator_event_posts_total" for name, _ in samples)
    for (name, labels), value in samples.items():
        if name == "mljob_operator_api_requests_total":
            counts[dict(labels)["verb"]] += value
        elif name == ("mljob_operator_event_posts_total" if posts else
                      "mljob_operator_events_total"):  # fmt: skip
            counts["event"] += value
    return counts


def health(samples: dict) -> Counter[str]:
    """What tells a stall apart (issue 14): reconciles by trigger (a "resync" or "retry" one that
    does work means an event was missed or a reconcile failed), reconciles that raised, API
    requests that got no 2xx answer, and watch streams kopf (re)started (reconnects, 410 Gone)."""
    counts: Counter[str] = Counter()
    for (name, labels), value in samples.items():
        fields = dict(labels)
        if name == "mljob_operator_reconciles_total":
            counts[f"reconciles ({fields['trigger']})"] += value
        elif name == "mljob_operator_reconcile_errors_total":
            counts["reconciles that raised"] += value
        elif name == "mljob_operator_api_requests_total" and not fields["outcome"].startswith("2"):
            counts[f"API answers {fields['outcome']}"] += value
        elif name == "mljob_operator_watch_streams_started_total":
            counts["watch streams (re)started"] += value
    return counts


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (MiB) and CPU seconds (user + system) of a process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(rest.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    fields["cpu"] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return fields


def wait_until(done: Callable[[], bool], failure: str, timeout: float, interval: float = 1) -> None:
    """Poll `done` until it is true; TimeoutError(failure) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(failure)
        time.sleep(interval)


def wait_forgotten(url: str, timeout: float = 600) -> None:
    """Until the operator knows no MLJob (deleted MLJobs and their children are gone)."""

    def forgotten() -> bool:
        return not sum(v for (n, _), v in scrape(url).items() if n == "mljob_operator_mljobs")

    wait_until(forgotten, "the operator still knows deleted MLJobs", timeout)


# --- heap census --------------------------------------------------------------------------------
def delete_namespace(api: client.ApiClient, namespace: str, timeout: float = 600) -> None:
    """Delete the wave's namespace and wait until it is gone: kopf watches each namespace that
    matches `bench-*` with its own streams (six), and stops only when the namespace goes."""
    core = client.CoreV1Api(api)
    core.delete_namespace(namespace)
    wait_until(
        lambda: all(ns.metadata.name != namespace for ns in core.list_namespace().items),
        f"namespace {namespace} not deleted after {timeout}s",
        timeout,
    )


def wait_children_gone(api: client.ApiClient, namespace: str, timeout: float = 600) -> None:
    """Until the garbage collector deleted the wave's children (the operator forgets an MLJob at
    once, its children when their DELETED events come), then 10 s: kopf keeps each object's
    worker and its last event until 5 s after that event (settings.batching.idle_timeout). A
    snapshot taken before would count them as growth."""
    objects = client.CustomObjectsApi(api)

    def gone() -> bool:
        return not any(
            objects.list_namespaced_custom_object(group, version, namespace, plural, limit=1)[
                "items"
            ]
            for group, version, plural in (SPARK, RAYJOB)
        )

    wait_until(gone, f"{namespace}: children not deleted after {timeout}s", timeout)
    time.sleep(10)


def take_snapshot(pid: int, directory: Path, number: int, timeout: float = 300) -> None:
    """Ask the operator for its `number`th snapshot (SIGUSR1) and wait until it is written."""
    target = directory / f"snapshot-{number}.pickle"
    os.kill(pid, signal.SIGUSR1)
    wait_until(target.exists, f"the operator wrote no {target.name} in {timeout}s", timeout, 0.5)


def census_report(directory: Path, waves: int, top: int) -> str:
    """The allocation sites that grew most from after wave 2 to after the last wave."""
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    first, last = (
        tracemalloc.Snapshot.load(str(directory / f"snapshot-{n}.pickle")).filter_traces(ignore)
        for n in (2, waves)
    )
    stats = last.compare_to(first, "lineno")
    total = sum(s.size_diff for s in stats)
    # Where each site was called from: the biggest growing traceback through it, its first frame
    # outside the standard library (the caller to blame for a copy.py or json line).
    callers: dict[tuple[str, int], str] = {}
    for stat in sorted(last.compare_to(first, "traceback"), key=lambda s: -s.size_diff):
        site = (stat.traceback[0].filename, stat.traceback[0].lineno)
        if site not in callers:
            ours = [f for f in stat.traceback if "/lib/python3" not in f.filename]
            callers[site] = ", ".join(f"{short_path(f.filename)}:{f.lineno}" for f in ours[:2])
    lines = [
        "",
        f"Heap census (tracemalloc, a run of its own): the operator's traced memory after wave "
        f"2 {mib(sum(s.size for s in first.statistics('filename')))}, after wave {waves} "
        f"{mib(sum(s.size for s in last.statistics('filename')))} ({total / 1024:+.0f} KiB); "
        f"the {top} allocation sites that grew most (snapshots after the MLJobs of each wave "
        f"were deleted and forgotten; the snapshots are in {directory}):",
        "",
        "| allocation site | called from | size after wave 2 | size diff | count diff |",
        "|---|---|---|---|---|",
    ]
    for stat in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top]:
        frame = stat.traceback[0]
        where = f"{short_path(frame.filename)}:{frame.lineno}"
        caller = callers.get((frame.filename, frame.lineno), "")
        lines.append(
            f"| `{where}` | {caller} | {(stat.size - stat.size_diff) / 1024:.1f} KiB "
            f"| {stat.size_diff / 1024:+.1f} KiB | {stat.count_diff:+d} |"
        )
    return "\n".join(lines) + "\n"


def mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"


def short_path(filename: str) -> str:
    for marker in ("site-packages/", "/operator/", "/lib/python3.11/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# --- report -----------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def mean_ms(totals: Counter[str], name: str) -> str:
    return ms(totals[name + "_sum"] / max(1, totals[name + "_count"]))


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def report(args: argparse.Namespace, floor: Wave, waves: list[Wave], command: str) -> str:
    lines = [
        f"### N = {args.pipelines}, delay = {args.delay}s ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"`{command}`  ",
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}; machine shared with other work, so compare within a run.",
        "",
        "| | floor | " + " | ".join(w.label for w in waves) + " |",
        "|---|---|" + "---|" * len(waves),
    ]

    def row(title: str, get: Callable[[Wave], str], floor_cell: str | None = None) -> None:
        cells = [get(w) for w in waves]
        lines.append(f"| {title} | {floor_cell if floor_cell is not None else get(floor)} | "
                     + " | ".join(cells) + " |")  # fmt: skip

    for what, get_values in (("create -> first child", lambda w: w.first_child),
                             ("step transition", lambda w: w.transition)):  # fmt: skip
        for q in (0.5, 0.95, 0.99):
            base = pct(get_values(floor), q)

            def cell(w: Wave, q=q, base=base, get_values=get_values) -> str:
                value = pct(get_values(w), q)
                return f"{ms(value)} ({value / base:.1f}x)" if w is not floor else ms(value)

            row(f"{what} p{int(q * 100)}", cell)
    row("child ADDED -> terminal patch p50 (simulator)", lambda w: ms(pct(w.lifetime, 0.5)))
    row("child ADDED -> terminal patch p95 (simulator)", lambda w: ms(pct(w.lifetime, 0.95)))
    row("pipelines/s", lambda w: f"{w.rate:.1f}")
    row("makespan", lambda w: f"{w.makespan:.1f} s")
    verbs = sorted({v for w in waves for v in w.requests})
    for verb in verbs:
        row(
            f"operator {verb} requests / pipeline",
            lambda w, v=verb: f"{w.requests[v] / w.count:.2f}",
            "",
        )
    writes = ("create", "patch", "delete", "event")
    row("operator writes / step (3 steps)",
        lambda w: f"{sum(w.requests[v] for v in writes) / w.count / 3:.2f}", "")  # fmt: skip
    for name in sorted({k[:-4] for w in waves for k in w.inside if k.endswith("_sum")}):
        row(f"operator mean {name}", lambda w, n=name: mean_ms(w.inside, n), "")
    for name in sorted({k for w in waves for k in w.health}):
        row(f"operator {name}", lambda w, n=name: f"{w.health[n]:.0f}", "")
    row("operator CPU seconds (wave)", lambda w: f"{w.cpu_seconds:.1f}", "")
    row("operator CPU ms / pipeline", lambda w: f"{w.cpu_seconds / w.count * 1000:.0f}", "")
    row(
        "bench process CPU ms / pipeline (simulator; + the floor controller in its wave)",
        lambda w: f"{w.bench_cpu_seconds / w.count * 1000:.0f}",
    )
    row("operator peak RSS (VmHWM)", lambda w: f"{w.rss_peak_mib:.0f} MiB", "")
    row("operator RSS after the wave", lambda w: f"{w.rss_after_mib:.0f} MiB", "")
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------
@contextlib.contextmanager
def started(args: argparse.Namespace) -> Iterator[tuple[ControlPlane, OperatorProcess]]:
    plane = ControlPlane().start()
    try:
        log = Path(args.log)
        env = dict(item.split("=", 1) for item in args.operator_env)
        if args.heap_census:
            env |= {"PYTHONTRACEMALLOC": str(args.census_frames), census.ENV: args.census_dir}
        process = OperatorProcess(
            plane, log, namespaces=["bench-*"], extra_args=args.operator_arg, env=env
        )
        process.start(timeout=120)
        try:
            yield plane, process
        finally:
            process.stop()
    finally:
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", "-n", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before a terminal status")
    parser.add_argument("--waves", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--log", default="/tmp/mljob-bench-operator.log")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator arg")
    parser.add_argument(
        "--operator-env", action="append", default=[], help="NAME=VALUE for the operator"
    )
    parser.add_argument(
        "--heap-census", action="store_true", help="tracemalloc snapshots after each wave"
    )
    parser.add_argument("--census-frames", type=int, default=4, help="frames per allocation")
    parser.add_argument("--census-top", type=int, default=15, help="allocation sites shown")
    parser.add_argument(
        "--delete-namespaces",
        action="store_true",
        help="delete each wave's namespace after it (kopf then stops watching it)",
    )
    parser.add_argument(
        "--wave-timeout", type=float, help="seconds a wave may take (default: max(300, N))"
    )
    args = parser.parse_args(argv)
    if args.heap_census and args.waves < 3:
        parser.error("--heap-census compares wave 2 with the last wave: use --waves 3 or more")
    args.census_dir = tempfile.mkdtemp(prefix="mljob-census-") if args.heap_census else ""
    command = "python bench/operator_scale.py " + " ".join(argv or sys.argv[1:])

    with started(args) as (plane, process):
        configuration = plane.api_client().configuration
        configuration.connection_pool_maxsize = 64
        api = client.ApiClient(configuration)
        recorder = Recorder()
        Simulator(api, recorder, args.delay).start()
        Floor(api, "floor").start()
        bench_cpu = proc_status(os.getpid())["cpu"]
        floor = run_wave(api, recorder, "floor", args.pipelines)
        floor.bench_cpu_seconds = proc_status(os.getpid())["cpu"] - bench_cpu
        delete_mljobs(api, "floor")
        print(f"floor: {floor.rate:.1f} pipelines/s", file=sys.stderr)
        waves = []
        for i in range(1, args.waves + 1):
            samples, cpu_before = scrape(process.metrics_url), proc_status(process.pid)["cpu"]
            bench_cpu = proc_status(os.getpid())["cpu"]
            wave = run_wave(api, recorder, f"bench-w{i}", args.pipelines, args.wave_timeout)
            wave.bench_cpu_seconds = proc_status(os.getpid())["cpu"] - bench_cpu
            wave.label = f"operator wave {i}"
            after = proc_status(process.pid)
            samples_after = scrape(process.metrics_url)
            wave.requests = requests_by_verb(samples_after) - requests_by_verb(samples)
            wave.inside = means(samples_after) - means(samples)
            wave.health = health(samples_after)
            wave.health.subtract(health(samples))
            wave.cpu_seconds = after["cpu"] - cpu_before
            wave.rss_peak_mib = after["VmHWM"]
            delete_mljobs(api, f"bench-w{i}")
            wait_forgotten(process.metrics_url)
            wave.rss_after_mib = proc_status(process.pid)["VmRSS"]
            if args.delete_namespaces:
                delete_namespace(api, f"bench-w{i}")
            if args.heap_census:
                wait_children_gone(api, f"bench-w{i}")
                take_snapshot(process.pid, Path(args.census_dir), i)
            print(f"{wave.label}: {wave.rate:.1f} pipelines/s", file=sys.stderr)
            waves.append(wave)
        text = report(args, floor, waves, command)
        if args.heap_census:
            text += census_report(Path(args.census_dir), args.waves, args.census_top)
    print(text)
    with open(args.output, "a") as out:
        out.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
