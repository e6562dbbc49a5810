"""Warm shared RayCluster: time from Spark's end to Ray's start, with and without warm-up.

On demand, not part of the test suite. Starts the end-to-end world (mljob.testing.e2e: the real
Spark operator and KubeRay on kwok nodes, Ray jobs on a real local Ray head; docs/e2e.md) and
`mljob operator` from this checkout as its own process, then runs one pipeline at a time,
alternating the two policies (OnDemand, Eager, OnDemand, Eager, ...):

    prepare (Spark; its driver runs --spark-seconds) -> train (Ray, on spec.rayCluster)

The shared cluster's head pod gets kwok's ready-delay annotation (--head-delay seconds), which
imitates a slow head start (image pull, scheduling; about a minute on real clusters), so KubeRay
holds the RayJob in Initializing until the cluster is ready. Measured by polling the API server
every 0.1 s (one pipeline at a time, so the polls cost little):

- **Spark end -> Ray start**: the SparkApplication first seen COMPLETED -> the RayJob first
  seen with jobDeploymentStatus Running (KubeRay submitted the job to the ready cluster);
- **Spark end -> RayJob created**: the operator's part, the same for both policies;
- **makespan**: MLJob create -> first seen Succeeded.

    python bench/warm_cluster.py --rounds 2 [--head-delay 30] [--spark-seconds 45]

Prints a Markdown table; --output FILE (docs/benchmarks.md) adds it at the end of the file's
"# Warm shared RayCluster" section.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from mljob.testing.e2e import E2EWorld
from mljob.testing.kwok_stages import DRIVER_DURATION_ANNOTATION, READY_DELAY_ANNOTATION
from mljob.testing.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[1]
MLJOB = ("mljob.io", "v1alpha1", "mljobs")
SPARK = ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
RAYJOB = ("ray.io", "v1", "rayjobs")
POLICIES = ("OnDemand", "Eager")
POLL_SECONDS = 0.1
SECTION = "# Warm shared RayCluster"
SECTION_INTRO = (
    "`bench/warm_cluster.py` (on demand): the time from a Spark step's end to the next Ray step's "
    "job running on the shared RayCluster, with `spec.rayCluster.startPolicy` OnDemand (the "
    "cluster is created with the Ray step) and Eager (created with the first step, so it warms "
    "up while Spark runs), in the end-to-end world (the real Spark operator and KubeRay on kwok; "
    "the head pod's start delayed by kwok's ready-delay annotation). Its docstring says how each "
    "time is taken. Results (newest last):"
)
Obj = dict[str, Any]


def pipeline(name: str, policy: str, head_delay: float, spark_seconds: float) -> Obj:
    slow_head = {"metadata": {"annotations": {READY_DELAY_ANNOTATION: f"{head_delay:g}s"}}}
    driver = {"annotations": {DRIVER_DURATION_ANNOTATION: f"{spark_seconds:g}s"}}
    return {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "MLJob",
        "metadata": {"name": name},
        "spec": {
            "image": "example.com/churn:1",
            "dataPath": "s3a://lake",
            "rayCluster": {
                "rayVersion": "2.49.0",
                "startPolicy": policy,
                "template": {"headGroupSpec": {"template": slow_head}},
            },
            "steps": [
                {
                    "name": "prepare",
                    "spark": {
                        "type": "Python",
                        "mainApplicationFile": "local:///app/prepare.py",
                        "sparkVersion": "4.0.1",
                        "template": {"driver": driver},
                    },
                },
                {
                    "name": "train",
                    "ray": {
                        "entrypoint": "python -c \"print('trained')\"",
                        "template": {"submissionMode": "HTTPMode"},
                    },
                },
            ],
        },
    }


@dataclass
class Run:
    policy: str
    seen: dict[str, float] = field(default_factory=dict)  # milestone -> perf_counter

    def note(self, milestone: str, now: float) -> None:
        self.seen.setdefault(milestone, now)

    def between(self, start: str, end: str) -> float:
        return self.seen[end] - self.seen[start]


def one_run(api: client.ApiClient, namespace: str, policy: str, args: argparse.Namespace) -> Run:
    custom = client.CustomObjectsApi(api)
    name = f"warm-{policy.lower()}-{uuid.uuid4().hex[:6]}"
    run = Run(policy)
    body = pipeline(name, policy, args.head_delay, args.spark_seconds)
    custom.create_namespaced_custom_object(*MLJOB[:2], namespace, MLJOB[2], body)
    run.note("created", time.perf_counter())
    deadline = time.monotonic() + args.timeout
    while "succeeded" not in run.seen:
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: not Succeeded within {args.timeout:.0f} s: {run.seen}")
        # Each observation is stamped when its answer arrived (a stamp per list call).
        apps, now = _mine(custom, SPARK, namespace, name), time.perf_counter()
        for app in apps:
            if (app.get("status") or {}).get("applicationState", {}).get("state") == "COMPLETED":
                run.note("spark end", now)
        jobs, now = _mine(custom, RAYJOB, namespace, name), time.perf_counter()
        for job in jobs:
            run.note("rayjob created", now)
            if (job.get("status") or {}).get("jobDeploymentStatus") in ("Running", "Complete"):
                run.note("ray start", now)
        mljob = custom.get_namespaced_custom_object(*MLJOB[:2], namespace, MLJOB[2], name)
        now = time.perf_counter()
        phase = (mljob.get("status") or {}).get("phase")
        if phase == "Failed":
            raise SystemExit(f"{name} failed: {mljob['status'].get('message')}")
        if phase == "Succeeded":
            run.note("succeeded", now)
        time.sleep(POLL_SECONDS)
    custom.delete_namespaced_custom_object(*MLJOB[:2], namespace, MLJOB[2], name)
    return run


def _mine(custom: client.CustomObjectsApi, resource: tuple, namespace: str, name: str) -> list:
    items = custom.list_namespaced_custom_object(
        *resource[:2], namespace, resource[2], label_selector=f"mljob.io/name={name}"
    )["items"]
    return list(items)


def report(runs: list[Run], args: argparse.Namespace, command: str) -> str:
    def cells(start: str, end: str) -> list[str]:
        out = []
        for policy in POLICIES:
            values = [r.between(start, end) for r in runs if r.policy == policy]
            each = ", ".join(f"{v:.2f}" for v in values)
            out.append(f"{statistics.median(values):.2f} s ({each})")
        return out

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    rounds = len(runs) // len(POLICIES)
    lines = [
        f"### Warm shared RayCluster, head delay {args.head_delay:g} s, Spark "
        f"{args.spark_seconds:g} s, {rounds} rounds ({stamp} UTC)",
        "",
        f"`{command}`  ",
        f"{len(_cpus())} CPUs ({platform.machine()}), Python {platform.python_version()}; "
        "machine shared with other work, so compare within a run.",
        "",
        "| median (each run) | OnDemand | Eager |",
        "|---|---|---|",
    ]
    rows = [
        ("Spark end -> Ray job running", "spark end", "ray start"),
        ("Spark end -> RayJob created (the operator)", "spark end", "rayjob created"),
        ("MLJob create -> Succeeded", "created", "succeeded"),
    ]
    for title, start, end in rows:
        lines.append(f"| {title} | " + " | ".join(cells(start, end)) + " |")
    on_demand, eager = (
        statistics.median(r.between("spark end", "ray start") for r in runs if r.policy == p)
        for p in POLICIES
    )
    lines += ["", f"Gain: {on_demand - eager:.1f} s from Spark's end to Ray's start."]
    return "\n".join(lines) + "\n"


def _cpus() -> list[str]:
    return [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "processor" in line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="pipelines per policy")
    parser.add_argument("--head-delay", type=float, default=30.0, help="seconds (kwok)")
    parser.add_argument("--spark-seconds", type=float, default=45.0, help="driver run time")
    parser.add_argument("--timeout", type=float, default=600.0, help="per pipeline")
    parser.add_argument("--output", help="append the table to this file")
    args = parser.parse_args(argv)
    command = "python bench/warm_cluster.py " + " ".join(argv or sys.argv[1:])

    with E2EWorld() as world:
        assert world.plane is not None and world.workdir is not None
        print(f"world ready in {world.startup_seconds:.0f} s ({world.workdir})", file=sys.stderr)
        operator = OperatorProcess(world.plane, world.workdir / "mljob-operator.log")
        operator.start(timeout=180)
        try:
            with world.plane.api_client() as api:
                namespace = f"warm-{uuid.uuid4().hex[:8]}"
                client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
                runs = []
                for i in range(args.rounds):
                    for policy in POLICIES:
                        run = one_run(api, namespace, policy, args)
                        gap = run.between("spark end", "ray start")
                        print(f"round {i + 1} {policy}: {gap:.2f} s", file=sys.stderr)
                        runs.append(run)
        finally:
            operator.stop()
    text = report(runs, args, command)
    print(text)
    if args.output:
        path = Path(args.output)
        path.write_text(insert_in_section(path.read_text(), text))
    return 0


def insert_in_section(document: str, text: str) -> str:
    """The document with `text` at the end of its SECTION (before the next top-level heading),
    the section created at the end when missing: other benchmarks append at the end."""
    lines = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        return document.rstrip("\n") + f"\n\n{SECTION}\n\n{SECTION_INTRO}\n\n{text}"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# ")), len(lines))
    before = "".join(lines[:end]).rstrip("\n")
    after = "".join(lines[end:])
    return before + "\n\n" + text + ("\n" + after if after else "")


if __name__ == "__main__":
    sys.exit(main())
