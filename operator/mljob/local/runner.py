"""Run an MLJob on this machine: validate (the operator's validation), then start steps as
their dependencies succeed, up to `max_parallel` at once, and report."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mljob import fingerprint, planner
from mljob.local import plan, serving
from mljob.local.errors import LocalRunError
from mljob.local.processes import GroupProcess, log_tail
from mljob.local.ray_head import LocalRay, free_loopback_port
from mljob.local.view import (
    FAILED,
    PENDING,
    RETRYING,
    RUNNING,
    SKIPPED,
    STOPPED,
    SUCCEEDED,
    LiveView,
    StepState,
    metrics_summary,
    summary_table,
)
from mljob.validation import validate

Obj = dict[str, Any]
INSTALL_HINT = "pip install 'mljob-operator[local]'"
REFRESH_SECONDS = 0.25
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C
# Top-level modules each engine imports (found without importing them): Ray Serve's HTTP proxy
# needs ray[serve]'s starlette and uvicorn besides Ray.
ENGINE_MODULES = {
    plan.SPARK_ENGINE: ("pyspark",),
    plan.RAY_ENGINE: ("ray",),
    plan.SERVE_ENGINE: ("ray", "starlette", "uvicorn"),
}
ENGINE_PACKAGES = {
    plan.SPARK_ENGINE: "pyspark",
    plan.RAY_ENGINE: "ray",
    plan.SERVE_ENGINE: "ray[serve]",
}
SERVING_POLL_SECONDS = 1.0  # while serving until Ctrl-C: how often to check the Ray instance


@dataclass(frozen=True)
class RunOptions:
    app_dir: Path | None = None  # default: the manifest's folder
    runs_dir: Path = Path("mljob-runs")
    max_parallel: int | None = None  # default: the number of CPUs
    # A step's rayVersion/sparkVersion differing from the installed Ray/PySpark (to the minor
    # version): an error instead of a warning.
    strict_versions: bool = False
    # End the run once every serve step's application runs and answered its smoke request,
    # instead of serving until Ctrl-C (for scripts and CI).
    exit_after_smoke: bool = False


def check_manifest(mljob: Any) -> None:
    errors = validate(mljob)
    if errors:
        raise LocalRunError("invalid MLJob:\n  " + "\n  ".join(errors))


def check_requirements(mljob: Obj) -> None:
    """Fail before starting anything when the machine cannot run every step."""
    engines = {plan.engine_of(s) for s in mljob["spec"]["steps"]}
    for engine in sorted(engines):
        missing = [m for m in ENGINE_MODULES[engine] if importlib.util.find_spec(m) is None]
        if missing:
            package = ENGINE_PACKAGES[engine]
            raise LocalRunError(
                f"{package} is not installed (needed for {engine} steps; missing "
                f"{', '.join(missing)}): {INSTALL_HINT}"
            )
    if plan.SPARK_ENGINE in engines and java_executable() is None:
        raise LocalRunError(
            "Java is not installed (Spark steps need it): install a JDK 17 or 21 "
            "(e.g. `apt-get install openjdk-17-jre-headless`), "
            "then put `java` on PATH or set JAVA_HOME"
        )


def installed_versions() -> dict[str, str | None]:
    """The installed Ray and PySpark versions by engine (None: not installed)."""
    found: dict[str, str | None] = {}
    for engine, package in ((plan.RAY_ENGINE, "ray"), (plan.SPARK_ENGINE, "pyspark")):
        try:
            found[engine] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[engine] = None
    return found


def check_versions(mljob: Obj, strict: bool, out: TextIO) -> None:
    """Warn (or, strict, fail) when a step's declared Ray/Spark version is not the installed
    one to the minor version: the run would test another version than the cluster runs."""
    mismatches = plan.version_mismatches(mljob, installed_versions())
    if not mismatches:
        return
    if strict:
        raise LocalRunError("version mismatch (--strict-versions):\n  " + "\n  ".join(mismatches))
    for line in mismatches:
        print(f"Warning: {line}.", file=out, flush=True)


def java_executable() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def machine() -> plan.Machine:
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return plan.Machine(cpus=os.cpu_count() or 1, memory_mb=memory_mb)


def make_layout(mljob: Obj, manifest: Path, options: RunOptions) -> plan.RunLayout:
    name = mljob["metadata"]["name"]
    root = plan.local_data_root(mljob["spec"].get("dataPath"), options.runs_dir)
    parent = (root / name).resolve()
    parent.mkdir(parents=True, exist_ok=True)
    run = plan.next_run_number(p.name for p in parent.iterdir())
    data_dir = plan.run_folder(root, name, run).resolve()
    data_dir.mkdir(parents=True)
    app_dir = (options.app_dir or manifest.parent).resolve()
    return plan.RunLayout(app_dir=app_dir, data_dir=data_dir, run=run)


class PipelineRun:
    """The I/O half: processes, the Ray instance, the view."""

    def __init__(self, mljob: Obj, layout: plan.RunLayout, options: RunOptions, out: TextIO):
        self.mljob, self.layout, self.out = mljob, layout, out
        self.name = mljob["metadata"]["name"]
        self.steps = {s["name"]: s for s in mljob["spec"]["steps"]}
        self.deps = plan.step_dependencies(mljob)
        self.states = {n: StepState(n, plan.engine_of(s)) for n, s in self.steps.items()}
        self.processes: dict[str, GroupProcess] = {}
        self.attempt_started: dict[str, float] = {}  # for the step's activeDeadlineSeconds
        self.retry_at: dict[str, float] = {}  # steps waiting for their next attempt
        self.machine = machine()
        self.max_parallel = options.max_parallel or self.machine.cpus
        self.ray: LocalRay | None = None
        self.exit_after_smoke = options.exit_after_smoke
        self.serve_port: int | None = None  # Serve's HTTP proxy, one per run (its first serve step)
        self.serve_apps: dict[str, serving.Obj] = {}  # step -> its Serve application, deployed
        self.started = time.monotonic()  # the run's start, for spec.activeDeadlineSeconds
        # The cache (steps with `cache: true`; mljob.fingerprint, shared with the operator).
        self.fingerprints = fingerprint.fingerprints(mljob["spec"])
        self.cache = load_cache(layout.cache_file)
        self.cached_from: dict[str, int] = {}  # step -> the earlier run whose outputs it reuses
        title = f"MLJob {self.name}, run {layout.run}: data and logs in {layout.data_dir}"
        self.view = LiveView(title, list(self.states.values()), out)

    def run(self) -> int:
        ignored = plan.ignored_fields(self.mljob)
        if ignored:
            self.view.message("Not applied in a local run: " + "; ".join(ignored) + ".")
        interrupted = False
        try:
            self._loop()
            self._keep_serving()
        except KeyboardInterrupt:
            interrupted = True
            self._stop_all(STOPPED)
            self.view.message("Interrupted: stopped every step process and the local Ray instance.")
        finally:
            self._stop_ray()
        code = self._report()
        return INTERRUPTED_EXIT_CODE if interrupted else code

    def _loop(self) -> None:
        failed = False
        while True:
            failed = self._collect_finished() or failed
            failed = self._enforce_deadlines() or failed
            if failed:
                self._give_up_retries()
            else:
                self._start_due_retries()
                self._start_ready()
            self.view.refresh()
            if not self.processes and not self.retry_at:
                break
            time.sleep(REFRESH_SECONDS)  # the live view's refresh rate
        for state in self.states.values():
            if state.status == PENDING:
                state.status = SKIPPED
        self.view.refresh()

    def _start_ready(self) -> None:
        succeeded = [n for n, s in self.states.items() if s.status == SUCCEEDED]
        started = [n for n, s in self.states.items() if s.status != PENDING]
        for name in plan.ready_steps(self.deps, succeeded, started):
            if self._cache_hit(name):
                self._start_ready()  # the steps after it may be ready now
                return
            if len(self.processes) >= self.max_parallel:
                return
            self._start(name)

    def _inputs(self, name: str) -> dict[str, int]:
        return fingerprint.input_runs(self.deps[name], self.cached_from, self.layout.run)

    def _cache_hit(self, name: str) -> bool:
        """A `cache: true` step whose fingerprint and inputs match a step that succeeded in an
        earlier local run, whose folder is still there: not run, succeeded from cache."""
        if not self.steps[name].get("cache"):
            return False
        record = fingerprint.lookup(self.cache, name, self.fingerprints[name], self._inputs(name))
        if record is None or not self.layout.run_dir(record["run"]).is_dir():
            return False
        state = self.states[name]
        state.status, state.started = SUCCEEDED, time.monotonic()
        state.finished = state.started
        self.cached_from[name] = record["run"]
        self.view.message(
            f"Step {name} not run: the outputs of run {record['run']} are reused (cache), "
            f"in {self.layout.output_dir(name, record['run'])}"
        )
        return True

    def _succeeded(self, name: str, log_file: Path) -> bool:
        """The attempt exited 0: the step succeeded if every declared output is there (else
        the attempt failed, naming the first missing path); a `cache: true` step is recorded
        in the cache. False when the step failed for good."""
        out = self.layout.output_dir(name)
        missing = plan.missing_outputs(self.steps[name], lambda o: (out / o).exists())
        if missing:
            why = f"exited 0 but did not write its declared output {out / missing[0]}"
            return not self._attempt_failed(name, why, log_file)
        self.states[name].status = SUCCEEDED
        if self.steps[name].get("cache"):
            record: fingerprint.CacheRecord = {
                "step": name,
                "fingerprint": self.fingerprints[name],
                "run": self.layout.run,
                "inputs": self._inputs(name),
            }
            self.cache = fingerprint.remember(self.cache, record)
            save_cache(self.layout.cache_file, self.cache)
        return True

    def _start(self, name: str) -> None:
        step, state = self.steps[name], self.states[name]
        env = plan.step_env(self.mljob, step, self.layout, self._inputs(name))
        if state.engine == plan.SPARK_ENGINE:
            command = plan.spark_command(self.name, step, self.layout, self.machine, spark_submit())
            env = {**os.environ, **env, **spark_process_env()}
        elif state.engine == plan.SERVE_ENGINE:
            command, env = self._serve_command(name, env)
        else:
            command = plan.ray_command(
                step["ray"]["entrypoint"], self.layout.app_dir, sys.executable
            )
            ray = self._local_ray()
            env = ray.process_env({**os.environ, **plan.ray_driver_env(env, ray.address)})
        log_file = self.layout.log_file(name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        state.attempts += 1
        with log_file.open("a") as log:  # a retry appends: the failed attempts' output stays
            if state.attempts > 1:
                log.write(f"\n--- attempt {state.attempts} ---\n")
            log.write(f"$ {' '.join(command)}\n")
        self.processes[name] = GroupProcess(command, env, self.layout.app_dir, log_file)
        now = time.monotonic()
        state.status, state.started = RUNNING, state.started or now
        state.finished, state.exit_code = None, None
        self.attempt_started[name] = now

    def _start_due_retries(self) -> None:
        for name, at in sorted(self.retry_at.items(), key=lambda item: item[1]):
            if time.monotonic() < at or len(self.processes) >= self.max_parallel:
                return
            del self.retry_at[name]
            self._start(name)

    def _attempt_failed(self, name: str, why: str, log_file: Path) -> bool:
        """The attempt that ran failed: schedule the next one when the step's retries allow
        (the operator's rule and backoff: plan.retry_delay) and return False; else the step
        failed: True."""
        state = self.states[name]
        state.finished = time.monotonic()
        delay = plan.retry_delay(self.steps[name], state.attempts)
        allowed = planner.allowed_attempts(self.steps[name])
        attempt = f" (attempt {state.attempts}/{allowed})" if allowed > 1 else ""
        if delay is None:
            state.status = FAILED
            self._show_failure(f"Step {name} failed{attempt}: {why}", log_file)
            return True
        state.status = RETRYING
        self.retry_at[name] = time.monotonic() + delay
        self._show_failure(f"Step {name} failed{attempt}, retrying in {delay:g}s: {why}", log_file)
        return False

    def _give_up_retries(self) -> None:
        """The run failed: no retry starts any more; their steps failed (as on the cluster)."""
        for name in list(self.retry_at):
            del self.retry_at[name]
            self.states[name].status = FAILED

    def _serve_command(self, name: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """A serve step's process (mljob.local.serve_driver) and its environment: deploy the
        step's application next to the run's earlier ones on the local Ray, Serve's HTTP proxy
        on 127.0.0.1 at the run's port."""
        step, ray = self.steps[name], self._local_ray()
        if self.serve_port is None:
            self.serve_port = free_loopback_port()
        app = serving.application(self.mljob, step, self.layout.run, self.layout.app_dir, env)
        self.serve_apps[name] = app
        smoke = serving.smoke_request(step["serve"].get("smoke"))
        result_file = self._serve_result_file(name)
        result_file.unlink(missing_ok=True)  # a retry's result is its own
        config = serving.driver_config(
            app, plan.LOOPBACK, self.serve_port, smoke, result_file, self.serve_apps.values()
        )
        config_file = self.layout.log_dir / f"{name}.serve.json"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps(config, indent=2))
        command = [sys.executable, "-m", "mljob.local.serve_driver", str(config_file)]
        driver_env = {**os.environ, **plan.RAY_LOCAL_ENV, "RAY_ADDRESS": ray.address}
        return command, ray.process_env(driver_env)

    def _serve_result_file(self, name: str) -> Path:
        return self.layout.log_dir / f"{name}.serve-result.json"

    def _show_serve_result(self, name: str) -> None:
        """The URL, the smoke request's answer, or why the step failed (serve_driver's result)."""
        try:
            result = json.loads(self._serve_result_file(name).read_text())
        except (OSError, ValueError):
            return  # the driver died before writing it: the log's tail tells
        for line in serving.smoke_lines(name, result):
            self.view.message(line)

    def _keep_serving(self) -> None:
        """After the last step of a successful run with serve steps: keep the local Ray (and so
        Serve) up until Ctrl-C, unless --exit-after-smoke. Ends the run, failed, if the Ray
        instance ends on its own."""
        ok = all(s.status == SUCCEEDED for s in self.states.values())
        if not self.serve_apps or not ok or self.exit_after_smoke or self.ray is None:
            return
        assert self.serve_port is not None
        base = serving.base_url(plan.LOOPBACK, self.serve_port)
        for name, app in self.serve_apps.items():
            url = serving.route_url(base, app.get("route_prefix"))
            request = serving.smoke_request(self.steps[name]["serve"].get("smoke"))
            if request is not None:
                url = serving.route_url(base, app.get("route_prefix"), request.path)
            self.view.message(f"Serving step {name}: {serving.curl_command(url, request)}")
        self.view.message("Serving until Ctrl-C (--exit-after-smoke ends a run here instead).")
        while self.ray.running():
            time.sleep(SERVING_POLL_SECONDS)  # waiting for Ctrl-C; the check is Ray's health
        self.view.message("The local Ray instance ended: no longer serving.")
        for name in self.serve_apps:
            self.states[name].status = FAILED

    def _local_ray(self) -> LocalRay:
        if self.ray is None:
            self.view.message("Starting the local Ray instance ...")
            version = ray_version()
            if not plan.ray_token_auth_supported(version):
                self.view.message(
                    f"Ray {version} has no token authentication (Ray 2.52+): the local Ray "
                    "instance is protected only by listening on 127.0.0.1."
                )
            self.ray = LocalRay(self.layout.log_dir / "ray-head.log", self.machine.cpus)
        return self.ray

    def _collect_finished(self) -> bool:
        failed = False
        for name, process in list(self.processes.items()):
            code = process.exit_code()
            if code is None:
                continue
            del self.processes[name]
            if self.steps[name].get("serve"):
                self._show_serve_result(name)
            state = self.states[name]
            state.finished, state.exit_code = time.monotonic(), code
            if code == 0:
                failed = not self._succeeded(name, process.log_file) or failed
            elif self._attempt_failed(name, f"exit code {code}", process.log_file):
                failed = True
        return failed

    def _enforce_deadlines(self) -> bool:
        """Stop the attempts whose step's activeDeadlineSeconds expired (retries apply), or
        everything when the pipeline's expired (no retries), as on the cluster."""
        now = time.monotonic()
        pipeline = plan.pipeline_deadline_expired(self.mljob["spec"], now - self.started)
        failed = False
        for name, process in list(self.processes.items()):
            own = plan.step_deadline_expired(self.steps[name], now - self.attempt_started[name])
            if (pipeline or own) is None:
                continue
            process.stop()
            del self.processes[name]
            if pipeline is None and own is not None:
                failed = self._attempt_failed(name, f"{own}, stopped", process.log_file) or failed
                continue
            state = self.states[name]
            state.status, state.finished, failed = FAILED, time.monotonic(), True
            self.view.message(f"Step {name} stopped and failed: {pipeline}.")
        if pipeline and self.retry_at:
            self.view.message(f"Steps waiting to retry failed: {pipeline}.")
            failed = True
        return failed

    def _show_failure(self, headline: str, log_file: Path) -> None:
        tail = "\n".join("    " + line for line in log_tail(log_file))
        self.view.message(f"{headline}; last lines of {log_file}:\n{tail}")

    def _stop_all(self, status: str) -> None:
        for name, process in list(self.processes.items()):
            process.stop()
            state = self.states[name]
            state.status, state.finished = status, time.monotonic()
        self.processes.clear()
        for name in self.retry_at:  # between two attempts: stopped as well
            self.states[name].status = status
        self.retry_at.clear()
        for state in self.states.values():
            if state.status == PENDING:
                state.status = SKIPPED

    def _stop_ray(self) -> None:
        if self.ray is not None:
            self.ray.stop()
            self.ray = None

    def _report(self) -> int:
        self.view.refresh()
        print("\n" + summary_table(list(self.states.values()), time.monotonic()), file=self.out)
        ok = all(s.status == SUCCEEDED for s in self.states.values())
        verdict = "succeeded" if ok else "did not succeed"
        print(
            f"\nRun {self.layout.run} of {self.name} {verdict}. "
            f"Outputs: {self.layout.data_dir}  Logs: {self.layout.log_dir}",
            file=self.out,
            flush=True,
        )
        if ok:
            print(metrics_summary(self.layout.data_dir), file=self.out, end="", flush=True)
        return 0 if ok else 1


def load_cache(path: Path) -> list[fingerprint.CacheRecord]:
    """The local cache records (none when the file is missing or unreadable: a miss is safe)."""
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    keys = {"step", "fingerprint", "run", "inputs"}
    if not isinstance(records, list):
        return []
    return [r for r in records if isinstance(r, dict) and keys <= r.keys()]


def save_cache(path: Path, records: list[fingerprint.CacheRecord]) -> None:
    """Write the records atomically (a run stopped mid-write leaves the previous file)."""
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(records, indent=1) + "\n")
    partial.replace(path)


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_submit() -> str:
    return str(spark_home() / "bin" / "spark-submit")


def ray_version() -> str:
    return importlib.metadata.version("ray")


def spark_process_env() -> dict[str, str]:
    """The pip-installed PySpark is the Spark distribution; its Python is this one. Spark
    listens on loopback only."""
    env = {
        **plan.SPARK_LOCAL_ENV,
        "SPARK_HOME": str(spark_home()),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    java = java_executable()
    if java and "JAVA_HOME" not in os.environ:
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)
    return env


def run_local(
    mljob: Any, manifest: Path, options: RunOptions | None = None, out: TextIO = sys.stdout
) -> int:
    """Validate, check the machine, run. Returns the exit code (0 only on success)."""
    options = options or RunOptions()
    check_manifest(mljob)
    check_requirements(mljob)
    check_versions(mljob, options.strict_versions, out)
    layout = make_layout(mljob, manifest, options)
    return PipelineRun(mljob, layout, options, out).run()
