"""Local-mode overhead (on demand; not part of the test suite).

    .venv/bin/python bench/local_overhead.py [--rounds 3] [--rows 50000] [--boost-rounds 40]

Runs the churn example (examples/churn, made small: --rows, --boost-rounds) two ways, alternating
A B A B ... in one run, and appends a markdown report to docs/benchmarks.md (--output):

- A, the tool: `mljob run <manifest> --local` as a subprocess (the real CLI).
- B, by hand: the same programs one after another, with the commands and environment the runner
  would use (plan.spark_command, plan.step_env, plan.ray_command, plan.ray_driver_env):
  `spark-submit --master local[N] ... prepare.py`, then `ray start --head --block` (the runner's
  command, environment and token, in the background until its "Ray runtime started" line),
  `python train.py` and `python evaluate.py` with RAY_ADDRESS set, then SIGTERM to the head's
  process group (not `ray stop`: it stops every Ray on the machine).

Where the time goes:
- A: the CLI's output lines are timestamped as they arrive (the view flushes every line):
  startup (launch -> first step running), Ray start ("Starting the local Ray instance" -> the
  train step running), the steps (the runner's own durations), shutdown (last step succeeded ->
  exit: stopping Ray, the summary), and hand-off (the rest: detecting a step's end, starting
  the next one).
- B: each command's wall time.
- Spark JVM start: a probe (spark-submit of a program that only starts and stops a SparkSession,
  same master and conf) splits spark-submit -> Python driver running (the JVM) -> session
  ready -> exit. Measured once per round, outside both totals.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.local.conftest.small_example: the tests' small manifest

from mljob.local import plan, runner  # noqa: E402
from mljob.local.processes import GroupProcess  # noqa: E402
from mljob.local.ray_head import HEAD_ENV, READY_MARKER, free_loopback_port, write_token  # noqa: E402
from tests.local.conftest import small_example  # noqa: E402

Obj = dict[str, Any]
MLJOB_CLI = Path(sys.executable).with_name("mljob")
PROBE = """import sys, time
print("probe-python", time.time(), flush=True)
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.range(10).count()
print("probe-session", time.time(), flush=True)
spark.stop()
"""


@dataclass
class Result:
    total: float
    phases: dict[str, float] = field(default_factory=dict)


# --- the manifest -----------------------------------------------------------------------------
def make_manifest(work: Path, rows: int, boost_rounds: int) -> Path:
    manifest = small_example(work)
    mljob = yaml.safe_load(manifest.read_text())
    steps = {s["name"]: s for s in mljob["spec"]["steps"]}
    steps["prepare"]["spark"]["arguments"] = ["--rows", str(rows)]
    entrypoint = steps["train"]["ray"]["entrypoint"]
    steps["train"]["ray"]["entrypoint"] = re.sub(
        r"--rounds \d+", f"--rounds {boost_rounds}", entrypoint
    )
    manifest.write_text(yaml.safe_dump(mljob, sort_keys=False))
    return manifest


# --- A: the tool --------------------------------------------------------------------------------
LINE = re.compile(r"^step (\S+) \((\w+)\): (\w+)(?: (\S+))?$")


def seconds(duration: str) -> float:
    minutes, _, rest = duration.rpartition("m")
    return (int(minutes) * 60 if minutes else 0) + float(rest.rstrip("s"))


def run_tool(manifest: Path, runs_dir: Path, log: Path) -> Result:
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        [str(MLJOB_CLI), "run", str(manifest), "--local", "--runs-dir", str(runs_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=runs_dir,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.monotonic() - started, line.rstrip("\n")))
    total = time.monotonic() - started
    log.write_text("".join(f"{t:8.3f} {text}\n" for t, text in lines))
    if process.returncode != 0:
        raise RuntimeError(f"mljob run failed (exit {process.returncode}), output in {log}")
    at: dict[str, float] = {}
    durations: dict[str, float] = {}
    for t, text in lines:
        if text.startswith("Starting the local Ray instance"):
            at.setdefault("ray-starting", t)
        match = LINE.match(text)
        if match:
            name, _, status, duration = match.groups()
            at.setdefault(f"{name}:{status}", t)
            if status == "succeeded":
                durations[name] = seconds(duration)
    phases = {
        "startup": at["prepare:running"],
        "ray start": at["train:running"] - at["ray-starting"],
        **durations,
        "shutdown": total - at["evaluate:succeeded"],
    }
    phases["hand-off"] = total - sum(phases.values())
    return Result(total, phases)


# --- B: by hand -----------------------------------------------------------------------------------
def timed(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    started = time.monotonic()
    with log.open("ab") as out:
        subprocess.run(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - started


def run_by_hand(manifest: Path, runs_dir: Path) -> Result:
    """The runner's commands and environment, one after another, no runner."""
    mljob = yaml.safe_load(manifest.read_text())
    layout = runner.make_layout(mljob, manifest, runner.RunOptions(runs_dir=runs_dir))
    layout.log_dir.mkdir(parents=True)
    machine = runner.machine()
    steps = {s["name"]: s for s in mljob["spec"]["steps"]}
    phases: dict[str, float] = {}
    started = time.monotonic()

    prepare = steps["prepare"]
    command = plan.spark_command(
        mljob["metadata"]["name"], prepare, layout, machine, runner.spark_submit()
    )
    env = {**os.environ, **plan.step_env(mljob, prepare, layout), **runner.spark_process_env()}
    phases["prepare"] = timed(command, env, layout.app_dir, layout.log_file("prepare"))

    # The runner's head: loopback, the run's token in a 0700 folder. Started in the foreground
    # (--block) in its own process group and stopped by that group: `ray stop` would stop every
    # Ray on the machine, other users' included.
    run_dir = Path(tempfile.mkdtemp(prefix="mljob-ray-"))
    token = write_token(run_dir / "auth_token")
    ports = plan.RayPorts.pick(free_loopback_port)
    ray_env = {**plan.ray_process_env(os.environ, token), **HEAD_ENV}
    ray_start = [
        *plan.ray_head_command(sys.executable, ports, machine.cpus, run_dir / "r"),
        "--block",
    ]
    head_log = layout.log_dir / "ray-head.log"
    began = time.monotonic()
    head = GroupProcess(ray_start, ray_env, runs_dir, head_log)
    try:
        while READY_MARKER not in head_log.read_text(errors="replace"):
            if head.exit_code() is not None:
                raise RuntimeError(f"ray start failed, see {head_log}")
            time.sleep(0.05)  # polling the log for the ready line
        phases["ray start"] = time.monotonic() - began
        for name in ("train", "evaluate"):
            step = steps[name]
            command = plan.ray_command(step["ray"]["entrypoint"], layout.app_dir, sys.executable)
            address = f"{plan.LOOPBACK}:{ports.gcs}"
            driver = plan.ray_driver_env(plan.step_env(mljob, step, layout), address)
            env = plan.ray_process_env({**os.environ, **driver}, token)
            phases[name] = timed(command, env, layout.app_dir, layout.log_file(name))
    finally:
        began = time.monotonic()
        head.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        phases["shutdown"] = time.monotonic() - began
    total = time.monotonic() - started
    phases["hand-off"] = total - sum(phases.values())  # this script's own bookkeeping
    return Result(total, phases)


# --- the Spark JVM probe --------------------------------------------------------------------------
def spark_probe(manifest: Path, work: Path) -> dict[str, float]:
    """spark-submit -> Python driver running (JVM start), -> SparkSession ready, -> exit."""
    mljob = yaml.safe_load(manifest.read_text())
    prepare = next(s for s in mljob["spec"]["steps"] if s["name"] == "prepare")
    layout = plan.RunLayout(app_dir=work, data_dir=work / "probe-data", run=1)
    program = work / "probe.py"
    program.write_text(PROBE)
    step = {**prepare, "spark": {**prepare["spark"], "mainApplicationFile": str(program),
                                 "arguments": []}}  # fmt: skip
    command = plan.spark_command("probe", step, layout, runner.machine(), runner.spark_submit())
    env = {**os.environ, **runner.spark_process_env()}
    launched = time.time()
    output = subprocess.run(
        command, env=env, cwd=work, capture_output=True, text=True, check=True
    ).stdout
    ended = time.time()
    marks = dict(line.split() for line in output.splitlines() if line.startswith("probe-"))
    python, session = float(marks["probe-python"]), float(marks["probe-session"])
    return {
        "JVM start (spark-submit -> Python driver)": python - launched,
        "SparkSession start": session - python,
        "session stop + JVM exit": ended - session,
        "whole probe": ended - launched,
    }


# --- report -----------------------------------------------------------------------------------
PHASES = ["startup", "prepare", "ray start", "train", "evaluate", "shutdown", "hand-off"]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(args: argparse.Namespace, command: str, a: list[Result], b: list[Result],
           probes: list[dict[str, float]], loads: list[tuple[float, ...]]) -> str:  # fmt: skip
    ratio = median([r.total for r in a]) / median([r.total for r in b])
    ratios = [x.total / y.total for x, y in zip(a, b, strict=True)]
    verdict = "within" if ratio <= 1.10 else "above"
    load_text = ", ".join("/".join(f"{v:.2f}" for v in load) for load in loads)
    lines = [
        f"### rows = {args.rows}, boost rounds = {args.boost_rounds}, {args.rounds} rounds "
        f"({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"`{command}`  ",
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}; machine shared with other work (load average 1/5/15 min "
        f"before each round: {load_text}), so compare within a run.",
        "",
        "| phase (median) | A: `mljob run --local` | B: by hand |",
        "|---|---|---|",
    ]
    for phase in PHASES:
        values_a = [r.phases[phase] for r in a if phase in r.phases]
        values_b = [r.phases[phase] for r in b if phase in r.phases]
        cell_a = f"{median(values_a):.2f} s" if values_a else ""
        cell_b = f"{median(values_b):.2f} s" if values_b else ""
        lines.append(f"| {phase} | {cell_a} | {cell_b} |")
    lines += [
        f"| **total** | **{median([r.total for r in a]):.2f} s** | "
        f"**{median([r.total for r in b]):.2f} s** |",
        f"| totals, each round | {', '.join(f'{r.total:.1f}' for r in a)} | "
        f"{', '.join(f'{r.total:.1f}' for r in b)} |",
        "",
        f"**Overhead ratio A/B (medians): {ratio:.3f}** ({verdict} the 1.10 target; per round: "
        f"{', '.join(f'{r:.3f}' for r in ratios)}).",
        "",
        "Spark JVM probe (median of one per round, outside both totals): "
        + ", ".join(f"{k} {median([p[k] for p in probes]):.2f} s" for k in probes[0])
        + ".",
        "",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--boost-rounds", type=int, default=40, help="train.py --rounds")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--work", help="working folder (default: a fresh temporary one)")
    parser.add_argument("--notes", default="", help="text appended under the table")
    args = parser.parse_args(argv)
    command = "python bench/local_overhead.py " + shlex.join(argv or sys.argv[1:])
    work = Path(args.work or tempfile.mkdtemp(prefix="mljob-bench-local-"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = make_manifest(work, args.rows, args.boost_rounds)
    (work / "runs-a").mkdir(exist_ok=True)
    (work / "runs-b").mkdir(exist_ok=True)
    a: list[Result] = []
    b: list[Result] = []
    probes, loads = [], []
    for i in range(1, args.rounds + 1):
        loads.append(os.getloadavg())
        a.append(run_tool(manifest, work / "runs-a", work / f"tool-output-{i}.txt"))
        print(f"round {i} A: {a[-1].total:.1f} s {fmt(a[-1].phases)}", file=sys.stderr)
        b.append(run_by_hand(manifest, work / "runs-b"))
        print(f"round {i} B: {b[-1].total:.1f} s {fmt(b[-1].phases)}", file=sys.stderr)
        probes.append(spark_probe(manifest, work))
        print(f"round {i} probe: {fmt(probes[-1])}", file=sys.stderr)
    text = report(args, command, a, b, probes, loads)
    if args.notes:
        text += "\n" + args.notes.strip() + "\n"
    print(text)
    print(f"outputs and logs: {work}", file=sys.stderr)
    with open(args.output, "a") as out:
        out.write("\n" + text)
    return 0


def fmt(phases: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in phases.items())


if __name__ == "__main__":
    sys.exit(main())
