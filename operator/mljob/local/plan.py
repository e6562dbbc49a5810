"""Pure parts of a local run: step order, environment, path mapping, commands. No I/O.

Path rule (one manifest for both worlds): the container image keeps the project's files under
`/app`, so `local:///app/<p>` (Spark) and `/app/<p>` (anywhere in a Ray entrypoint or a Spark
argument) become `<app_dir>/<p>`, where app_dir is the manifest's folder unless --app-dir says
otherwise. `python`/`python3` in an entrypoint becomes this interpreter.

Data rule: on the cluster a run's hand-off folder is `<spec.dataPath>/<name>/run-<n>`. Locally
the same layout is used with the root replaced by a local folder when dataPath is remote
(s3a://, gs://, ...) or absent: `<runs_dir>/<name>/run-<n>` (runs_dir defaults to
./mljob-runs). A local dataPath (a plain path or file://) is used as is.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from mljob import builders, kinds, planner
from mljob import constants as c
from mljob.validation import dependencies

Obj = dict[str, Any]

CONTAINER_APP_ROOT = "/app"
LOCAL_SCHEME = "local://"
PYTHON_NAMES = frozenset({"python", "python3"})
LOOPBACK = "127.0.0.1"
# Ray listens on the machine's address unless its node IP is exactly 127.0.0.1, and `ray start`
# turns --node-ip-address=127.0.0.1 into the machine's address unless it believes multi-node
# clusters are off (the Windows/macOS default, which this variable sets on Linux too). Token auth
# (Ray >= 2.52) guards whatever still answers: Ray reads RAY_AUTH_TOKEN before
# RAY_AUTH_TOKEN_PATH, so an inherited RAY_AUTH_TOKEN (e.g. for a remote cluster) is dropped.
RAY_LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_USAGE_STATS_ENABLED": "0",
}
RAY_TOKEN_ENV, RAY_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
RAY_TOKEN_AUTH_SINCE = (2, 52)
# The Spark driver (RPC, block manager, UI when enabled) listens on SPARK_LOCAL_IP / bindAddress;
# otherwise on the address the hostname resolves to, or the first non-loopback interface.
SPARK_LOCAL_ENV = {"SPARK_LOCAL_IP": LOOPBACK}
SPARK_LOOPBACK_CONF = {"spark.driver.bindAddress": LOOPBACK, "spark.driver.host": LOOPBACK}
LOG_DIR_NAME = "_logs"  # leading underscore: Spark and Ray Data readers skip it
CACHE_FILE_NAME = "cache.json"  # next to the run-<n> folders (docs/local-mode.md)
SPARK_ENGINE = "spark"
SERVE_ENGINE = "serve"  # Ray Serve on the run's local Ray (mljob.local.serving)
RAY_ENGINE = "ray"
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)i?b?$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
MIN_DRIVER_MEMORY_MB = 512


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_mb: int


@dataclass(frozen=True)
class RunLayout:
    """Where one local run lives."""

    app_dir: Path
    data_dir: Path  # MLJOB_DATA_PATH
    run: int

    @property
    def log_dir(self) -> Path:
        return self.data_dir / LOG_DIR_NAME

    def log_file(self, step_name: str) -> Path:
        return self.log_dir / f"{step_name}.log"

    def run_dir(self, run: int) -> Path:
        """Run `run`'s folder of the same MLJob (a cached step's outputs are in an older one)."""
        return self.data_dir.parent / f"run-{run}"

    def output_dir(self, step_name: str, run: int | None = None) -> Path:
        """MLJOB_OUTPUT_PATH of the step in `run` (default this run)."""
        return self.run_dir(self.run if run is None else run) / step_name

    @property
    def cache_file(self) -> Path:
        """The local cache records of this MLJob, shared by its runs (mljob.fingerprint)."""
        return self.data_dir.parent / CACHE_FILE_NAME


# --- order ------------------------------------------------------------------------------------
def step_dependencies(mljob: Obj) -> dict[str, list[str]]:
    """The operator's rule: dependsOn when given, else the previous step in the list."""
    return dependencies(mljob["spec"]["steps"])


def ready_steps(
    deps: Mapping[str, list[str]], succeeded: Iterable[str], started: Iterable[str]
) -> list[str]:
    """Steps not started yet whose dependencies all succeeded, in list order."""
    done, begun = set(succeeded), set(started)
    return [name for name, needs in deps.items() if name not in begun and done.issuperset(needs)]


# Fields that steer a run on the cluster but have no meaning for one local run of processes.
IGNORED_LOCALLY = {
    "startDeadlineSeconds": "a local step starts at once",
}
IGNORED_LOCALLY_SPEC = {
    "suspend": "a local run cannot be suspended; Ctrl-C stops it",
    "ttlSecondsAfterFinished": "local outputs and logs are kept",
    "onSpecChange": "each local run is a new run",
}


def ignored_fields(mljob: Obj) -> list[str]:
    """The fields set in this MLJob that a local run does not apply, each with why (shown at
    the start of a run, so nobody takes them as honoured)."""
    spec = mljob["spec"]
    notes = [f"spec.{key} ({why})" for key, why in IGNORED_LOCALLY_SPEC.items() if spec.get(key)]
    for key, why in IGNORED_LOCALLY.items():
        names = [s["name"] for s in spec["steps"] if s.get(key)]
        if names:
            notes.append(f"{key} of step(s) {', '.join(names)} ({why})")
    return notes


def retry_delay(step: Obj, attempts: int) -> float | None:
    """After attempt number `attempts` of `step` failed: the seconds to wait before the next
    one, or None when its `retries` are used up. The operator's rule and backoff
    (planner.allowed_attempts, planner.backoff_seconds), so a local run retries like the
    cluster does."""
    if attempts >= planner.allowed_attempts(step):
        return None
    return planner.backoff_seconds(step, attempts)


def step_deadline_expired(step: Obj, step_seconds: float) -> str | None:
    """Why this running attempt must stop now: the step's activeDeadlineSeconds, counted from
    the attempt's start, as on the cluster; the attempt fails and retries apply. None: not yet."""
    own = step.get("activeDeadlineSeconds")
    if own and step_seconds >= own:
        return f"activeDeadlineSeconds ({own}s) expired"
    return None


def pipeline_deadline_expired(spec: Obj, run_seconds: float) -> str | None:
    """Why the whole run must stop now: spec.activeDeadlineSeconds, counted from the run's
    start; its steps fail without retries, as on the cluster. None: not yet."""
    pipeline = spec.get("activeDeadlineSeconds")
    if pipeline and run_seconds >= pipeline:
        return f"spec.activeDeadlineSeconds ({pipeline}s) of the pipeline expired"
    return None


def engine_of(step: Obj) -> str:
    """SPARK_ENGINE, RAY_ENGINE or SERVE_ENGINE: the step kind's engine (kinds.py)."""
    engine = kinds.of_step(step).engine
    assert engine in (SPARK_ENGINE, RAY_ENGINE, SERVE_ENGINE), engine
    return engine


# --- paths ------------------------------------------------------------------------------------
def local_data_root(data_path: str | None, runs_dir: Path) -> Path:
    """The local stand-in for spec.dataPath (see the module doc)."""
    if data_path and data_path.startswith("file://"):
        return Path(data_path.removeprefix("file://"))
    if data_path and "://" not in data_path:
        return Path(data_path)
    return runs_dir


def missing_outputs(step: Obj, exists: Callable[[str], bool]) -> list[str]:
    """The step's declared `outputs` (relative to its output folder) that `exists` says are
    not there, in the order declared."""
    return [o for o in step.get("outputs") or [] if not exists(o)]


def run_folder(root: Path, mljob_name: str, run: int) -> Path:
    return root / mljob_name / f"run-{run}"


def next_run_number(existing_folder_names: Iterable[str]) -> int:
    numbers = [int(n[4:]) for n in existing_folder_names if re.fullmatch(r"run-\d+", n)]
    return max(numbers, default=0) + 1


def to_local_path(value: str, app_dir: Path) -> str:
    """Map a container path (`local:///app/x`, `/app/x`) to the project's files."""
    path = value.removeprefix(LOCAL_SCHEME) if value.startswith(LOCAL_SCHEME) else value
    if path == CONTAINER_APP_ROOT or path.startswith(CONTAINER_APP_ROOT + "/"):
        return str(app_dir / path[len(CONTAINER_APP_ROOT) :].lstrip("/"))
    return path if value.startswith(LOCAL_SCHEME) else value


# --- environment ------------------------------------------------------------------------------
def step_env(
    mljob: Obj, step: Obj, layout: RunLayout, inputs: Mapping[str, int] | None = None
) -> dict[str, str]:
    """What the step sees on the cluster (pipeline env, step env, MLJOB_*), with the data path
    mapped to the local folder. `inputs`: per dependency, the run whose outputs it reads (a
    cached one's are in an earlier run's folder; default this run's)."""
    if "spark" in step:
        own_env = builders.env_list_to_dict(step["spark"].get("env"))
    else:
        ray_or_serve = step.get("ray") or step["serve"]  # both have runtimeEnv.env_vars
        own_env = (ray_or_serve.get("runtimeEnv") or {}).get("env_vars")
    env = builders.effective_env(mljob, layout.run, step["name"], own_env)
    env[c.ENV_DATA_PATH] = str(layout.data_dir)
    if inputs is None:
        inputs = {d: layout.run for d in dependencies(mljob["spec"]["steps"])[step["name"]]}
    env.update(builders.io_env(lambda r: str(layout.run_dir(r)), layout.run, step["name"], inputs))
    if "ray" in step:  # the RayJob's runtimeEnv has it (builders._runtime_env_yaml)
        env[c.ENV_CHECKPOINT_PATH] = builders.checkpoint_path(str(layout.data_dir), step["name"])
    return env


def ray_process_env(base: Mapping[str, str], token_file: Path) -> dict[str, str]:
    """`base` (os.environ, a step's env) set to reach only the run's Ray instance: loopback, and
    the run's token, read from `token_file`. For the head and every driver."""
    env = {k: v for k, v in base.items() if k != RAY_TOKEN_ENV}
    return {**env, **RAY_LOCAL_ENV, RAY_TOKEN_PATH_ENV: str(token_file)}


def ray_driver_env(step_environment: Mapping[str, str], ray_address: str) -> dict[str, str]:
    """Env for a Ray entrypoint: its variables, the address of the run's Ray instance, and the
    job config Ray's job supervisor would inject, so tasks and actors get the same env_vars.
    The token comes on top: ray_process_env."""
    job_config = {"runtime_env": {"env_vars": dict(step_environment)}}
    return {
        **step_environment,
        **RAY_LOCAL_ENV,
        "RAY_ADDRESS": ray_address,
        "RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(job_config),
    }


def ray_token_auth_supported(ray_version: str) -> bool:
    """Whether this Ray knows RAY_AUTH_MODE=token (older ones ignore it: loopback only)."""
    numbers = re.findall(r"\d+", ray_version)[:2]
    return tuple(int(n) for n in numbers) >= RAY_TOKEN_AUTH_SINCE


def version_mismatches(mljob: Obj, installed: Mapping[str, str | None]) -> list[str]:
    """One line per step whose declared engine version (a Ray step's rayVersion, or
    spec.rayCluster's; a Spark step's sparkVersion) differs from the installed one
    (`installed`: {"ray": "2.60.0", "spark": "4.3.0"}; None: not installed) to the minor
    version. Steps of an engine that is not installed are left to check_requirements."""
    spec = mljob["spec"]
    shared = spec.get("rayCluster") or {}
    lines = []
    for step in spec["steps"]:
        engine = engine_of(step)
        if engine == SPARK_ENGINE:
            field, declared = "sparkVersion", step["spark"].get("sparkVersion")
            package = "PySpark"
        else:
            own = step["ray"] if engine == RAY_ENGINE else step["serve"]  # serve: on local Ray
            field, declared = "rayVersion", own.get("rayVersion") or shared.get("rayVersion")
            package = "Ray"
        have = installed.get(SPARK_ENGINE if engine == SPARK_ENGINE else RAY_ENGINE)
        if not declared or not have or _minor(str(declared)) == _minor(have):
            continue
        lines.append(
            f"step {step['name']}: {field} is {declared} but {package} {have} is installed "
            "(they should match to the minor version)"
        )
    return lines


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2])


# --- commands ---------------------------------------------------------------------------------
# `ray start --head` also starts the Ray client server (fixed port 10001) whenever grpcio is
# importable, and its --ray-client-server-port has no "off". Steps are drivers on this machine
# and never use it, so the head runs `ray start` with Ray told the client is not installed.
RAY_START_WITHOUT_CLIENT_SERVER = (
    "import sys\n"
    "from ray.scripts import scripts\n"
    "scripts.get_ray_client_dependency_error = lambda: ImportError('unused by mljob run --local')\n"
    "sys.exit(scripts.main())\n"
)


@dataclass(frozen=True)
class RayPorts:
    """The ports of one local Ray head. Ray's own defaults for some are fixed (the dashboard's
    8265, its agent's 52365), so two Ray instances on one machine (two runs at once) would
    collide: each gets ports that were free when it started."""

    gcs: int
    dashboard: int
    dashboard_agent_listen: int
    dashboard_agent_grpc: int
    metrics_export: int
    runtime_env_agent: int

    @classmethod
    def pick(cls, free_port: Callable[[], int]) -> RayPorts:
        return cls(*(free_port() for _ in fields(cls)))

    def args(self) -> list[str]:
        gcs, dashboard, agent_listen, agent_grpc, metrics, runtime_env = astuple(self)
        return [
            f"--port={gcs}",
            f"--dashboard-port={dashboard}",
            f"--dashboard-agent-listen-port={agent_listen}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime_env}",
        ]


def ray_head_command(python: str, ports: RayPorts, cpus: int, temp_dir: Path) -> list[str]:
    """`ray start --head` (without --block: add it to keep it in the foreground)."""
    return [
        python,
        "-c",
        RAY_START_WITHOUT_CLIENT_SERVER,
        "start",
        "--head",
        *ports.args(),
        f"--node-ip-address={LOOPBACK}",
        f"--num-cpus={cpus}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]


def ray_command(entrypoint: str, app_dir: Path, python: str) -> list[str]:
    tokens = shlex.split(entrypoint)
    return [python if t in PYTHON_NAMES else to_local_path(t, app_dir) for t in tokens]


def memory_mb(quantity: str) -> int:
    """Spark ("2g", "512m") or Kubernetes ("4Gi") memory in MiB."""
    match = _MEMORY.match(str(quantity).strip())
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])


def spark_local_resources(spark: Obj, machine: Machine) -> tuple[int, int]:
    """(cores, driver memory MiB) for local[N]: what the cluster would have (driver + executors,
    all in one JVM locally), capped to the machine (all cores, a quarter of the memory)."""
    driver, executor = spark.get("driver") or {}, spark.get("executor") or {}
    instances = int(executor.get("instances", builders.SPARK_DEFAULT_INSTANCES))
    cores = instances * int(executor.get("cores", builders.SPARK_DEFAULT_CORES))
    wanted_mb = memory_mb(driver.get("memory", builders.SPARK_DEFAULT_MEMORY)) + instances * (
        memory_mb(executor.get("memory", builders.SPARK_DEFAULT_MEMORY))
    )
    memory = max(MIN_DRIVER_MEMORY_MB, min(wanted_mb, machine.memory_mb // 4))
    return max(1, min(cores, machine.cpus)), memory


def spark_command(
    mljob_name: str, step: Obj, layout: RunLayout, machine: Machine, spark_submit: str
) -> list[str]:
    spark = step["spark"]
    cores, memory = spark_local_resources(spark, machine)
    conf = {
        # Parallel steps would fight over port 4040; the log file has the progress.
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(layout.data_dir / "_spark-warehouse"),
        **{k: str(v) for k, v in (spark.get("sparkConf") or {}).items()},
        **SPARK_LOOPBACK_CONF,  # after sparkConf: a cluster's driver host means nothing here
    }
    for cluster_only in ("spark.master", "spark.submit.deployMode"):
        conf.pop(cluster_only, None)
    command = [
        spark_submit,
        "--master",
        f"local[{cores}]",
        "--name",
        f"{mljob_name}-{step['name']}",
    ]
    command += ["--driver-memory", f"{memory}m"]
    if spark.get("mainClass"):
        command += ["--class", spark["mainClass"]]
    for key, value in sorted(conf.items()):
        command += ["--conf", f"{key}={value}"]
    command.append(to_local_path(spark["mainApplicationFile"], layout.app_dir))
    command += [to_local_path(str(a), layout.app_dir) for a in spark.get("arguments") or []]
    return command
