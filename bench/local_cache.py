"""Local re-run with the cache (issue 13; on demand, not part of the test suite).

    .venv/bin/python bench/local_cache.py [--rows 50000] [--boost-rounds 40] [--runs-dir DIR]

Runs the churn example (examples/churn, made small like the tests' manifest, without its serve
step) with the real CLI, `mljob run <manifest> --local`, twice in one runs folder:

1. the first run: every step runs (prepare on PySpark, train and evaluate on Ray);
2. the same manifest with only train's entrypoint changed (one more boosting round): prepare,
   whose fingerprint and inputs are unchanged, is not run (its outputs of run 1 are reused,
   from the cache record in <runs>/churn/cache.json); train and evaluate, which depend on the
   changed step, run again.

Prints both wall times, the ratio and the per-step table of each run, as markdown for
docs/benchmarks.md, and fails when run 2 ran the Spark step.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.local.conftest.small_example: the tests' small manifest

from tests.local.conftest import small_example  # noqa: E402

MLJOB_CLI = Path(sys.executable).with_name("mljob")


def manifest(work: Path, rows: int, boost_rounds: int) -> Path:
    path = small_example(work)
    job = yaml.safe_load(path.read_text())
    job["spec"]["steps"] = [s for s in job["spec"]["steps"] if "serve" not in s]
    steps = {s["name"]: s for s in job["spec"]["steps"]}
    steps["prepare"]["spark"]["arguments"] = ["--rows", str(rows)]
    steps["train"]["ray"]["entrypoint"] = (
        f"python /app/train.py --workers 2 --rounds {boost_rounds}"
    )
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def run(path: Path, runs_dir: Path) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run(
        [str(MLJOB_CLI), "run", str(path), "--local", "--runs-dir", str(runs_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"mljob run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def summary(output: str) -> list[str]:
    """The final STEP/ENGINE/STATUS/DURATION table of a run's output."""
    lines = output.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("STEP"))
    return [line for line in lines[start:] if line.strip()][:4]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--boost-rounds", type=int, default=40)
    parser.add_argument("--runs-dir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mljob-bench-cache-"))
    runs_dir = args.runs_dir or work / "runs"
    path = manifest(work, args.rows, args.boost_rounds)
    first, first_out = run(path, runs_dir)

    job = yaml.safe_load(path.read_text())
    train = next(s for s in job["spec"]["steps"] if s["name"] == "train")
    train["ray"]["entrypoint"] = train["ray"]["entrypoint"].replace(
        f"--rounds {args.boost_rounds}", f"--rounds {args.boost_rounds + 1}"
    )
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    second, second_out = run(path, runs_dir)
    skipped = "Step prepare not run: the outputs of run 1 are reused (cache)" in second_out
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"### rows = {args.rows}, boost rounds = {args.boost_rounds} ({when})\n")
    print(
        f"`{' '.join([Path(sys.executable).name, *sys.argv])}` on {platform.node()}, "
        f"{platform.machine()}\n"
    )
    print("| run | what ran | wall time |")
    print("| --- | --- | ---: |")
    print(f"| 1 | prepare, train, evaluate | {first:.1f} s |")
    cached = f"prepare from the cache: {'yes' if skipped else 'NO'}"
    print(f"| 2 (train changed) | train, evaluate ({cached}) | {second:.1f} s |")
    print(f"\nRatio run 2 / run 1: **{second / first:.2f}**\n")
    for name, output in (("run 1", first_out), ("run 2", second_out)):
        print(f"{name}:\n\n```\n" + "\n".join(summary(output)) + "\n```\n")
    return 0 if skipped else 1


if __name__ == "__main__":
    sys.exit(main())
