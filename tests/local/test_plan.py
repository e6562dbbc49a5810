"""The pure parts of local mode: order, paths, env, commands."""

from __future__ import annotations

from pathlib import Path

from mljob.local import plan

APP = Path("/home/me/project")


def mljob(steps: list[dict], data_path: str = "s3a://lake/x") -> dict:
    return {"metadata": {"name": "x"}, "spec": {"dataPath": data_path, "steps": steps}}


def test_list_order_by_default_and_dependsOn_makes_branches() -> None:
    job = mljob([{"name": "a"}, {"name": "b"}, {"name": "c", "dependsOn": ["a"]}])
    deps = plan.step_dependencies(job)
    assert plan.ready_steps(deps, succeeded=[], started=[]) == ["a"]
    assert plan.ready_steps(deps, succeeded=["a"], started=["a"]) == ["b", "c"]
    assert plan.ready_steps(deps, succeeded=["a"], started=["a", "b"]) == ["c"]


def test_container_paths_map_to_the_app_dir() -> None:
    assert plan.to_local_path("local:///app/etl.py", APP) == "/home/me/project/etl.py"
    assert plan.to_local_path("/app/sub/t.py", APP) == "/home/me/project/sub/t.py"
    assert plan.to_local_path("local:///opt/x.py", APP) == "/opt/x.py"
    assert plan.to_local_path("--rows", APP) == "--rows"
    assert plan.to_local_path("/application", APP) == "/application"


def test_ray_entrypoint_uses_this_python_and_local_files() -> None:
    command = plan.ray_command("python /app/train.py --workers 2", APP, "/venv/bin/python")
    assert command == ["/venv/bin/python", "/home/me/project/train.py", "--workers", "2"]


def test_remote_data_paths_map_under_the_runs_dir_local_ones_stay() -> None:
    runs = Path("mljob-runs")
    assert plan.local_data_root("s3a://lake/churn", runs) == runs
    assert plan.local_data_root(None, runs) == runs
    assert plan.local_data_root("file:///data/lake", runs) == Path("/data/lake")
    assert plan.local_data_root("/data/lake", runs) == Path("/data/lake")
    assert plan.run_folder(runs, "churn", 3) == runs / "churn" / "run-3"
    assert plan.next_run_number(["run-1", "run-7", "notes", "run-x"]) == 8
    assert plan.next_run_number([]) == 1


def test_step_env_is_the_cluster_env_with_a_local_data_path() -> None:
    step = {
        "name": "t",
        "ray": {"entrypoint": "python t.py", "runtimeEnv": {"env_vars": {"A": "1"}}},
    }
    job = mljob([step])
    job["spec"]["env"] = [{"name": "B", "value": "2"}]
    layout = plan.RunLayout(app_dir=APP, data_dir=Path("/runs/x/run-4"), run=4)
    env = plan.step_env(job, step, layout)
    assert env == {
        "A": "1",
        "B": "2",
        "MLJOB_NAME": "x",
        "MLJOB_RUN": "4",
        "MLJOB_STEP": "t",
        "MLJOB_DATA_PATH": "/runs/x/run-4",
        "MLJOB_OUTPUT_PATH": "/runs/x/run-4/t",
        "MLJOB_CHECKPOINT_PATH": "/runs/x/run-4/_checkpoints/t",
    }
    driver_env = plan.ray_driver_env(env, "127.0.0.1:6379")
    assert driver_env["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert '"A": "1"' in driver_env["RAY_JOB_CONFIG_JSON_ENV_VAR"]


def test_ray_steps_get_a_checkpoint_path_in_the_local_run_folder() -> None:
    """The cluster's rule (builders.checkpoint_path) on the local run folder: the same for
    every attempt of the run, another for the next run; Spark steps do not get one."""
    ray_step = {"name": "train", "ray": {"entrypoint": "python t.py"}}
    spark_step = {"name": "prep", "spark": {"mainApplicationFile": "local:///app/p.py"}}
    job = mljob([spark_step, ray_step])
    layout = plan.RunLayout(app_dir=APP, data_dir=Path("/runs/x/run-4"), run=4)
    env = plan.step_env(job, ray_step, layout)
    assert env["MLJOB_CHECKPOINT_PATH"] == "/runs/x/run-4/_checkpoints/train"
    assert "MLJOB_CHECKPOINT_PATH" not in plan.step_env(job, spark_step, layout)
    next_run = plan.RunLayout(app_dir=APP, data_dir=Path("/runs/x/run-5"), run=5)
    assert plan.step_env(job, ray_step, next_run)["MLJOB_CHECKPOINT_PATH"].startswith(
        "/runs/x/run-5/"
    )


def test_spark_command_caps_resources_to_the_machine() -> None:
    step = {
        "name": "prep",
        "spark": {
            "mainApplicationFile": "local:///app/etl.py",
            "arguments": ["--in", "/app/data.csv"],
            "driver": {"memory": "2g"},
            "executor": {"instances": 4, "cores": 4, "memory": "8g"},
            "sparkConf": {"spark.sql.shuffle.partitions": "8", "spark.master": "k8s://x"},
        },
    }
    layout = plan.RunLayout(app_dir=APP, data_dir=Path("/runs/x/run-1"), run=1)
    machine = plan.Machine(cpus=2, memory_mb=24 * 1024)
    command = plan.spark_command("x", step, layout, machine, "spark-submit")
    assert command[:3] == ["spark-submit", "--master", "local[2]"]
    assert command[command.index("--driver-memory") + 1] == "6144m"
    assert "spark.sql.shuffle.partitions=8" in command
    assert not any(arg.startswith("spark.master") for arg in command)
    assert command[-3:] == ["/home/me/project/etl.py", "--in", "/home/me/project/data.csv"]


def test_step_and_pipeline_active_deadlines_expire_as_on_the_cluster() -> None:
    step = {"name": "a", "activeDeadlineSeconds": 10}
    assert plan.step_deadline_expired(step, step_seconds=9.9) is None
    assert plan.step_deadline_expired(step, 10) == "activeDeadlineSeconds (10s) expired"
    assert plan.step_deadline_expired({"name": "b"}, 1e9) is None
    spec = {"activeDeadlineSeconds": 100}
    assert plan.pipeline_deadline_expired(spec, run_seconds=99.9) is None
    expected = "spec.activeDeadlineSeconds (100s) of the pipeline expired"
    assert plan.pipeline_deadline_expired(spec, 100) == expected
    assert plan.pipeline_deadline_expired({}, 1e9) is None


def test_retries_wait_and_end_as_on_the_cluster() -> None:
    """The operator's rule: retries + 1 attempts, backoffSeconds doubled per failed attempt
    up to maxBackoffSeconds (defaults 10 and 600)."""
    step = {"name": "a", "retries": 3, "backoffSeconds": 5, "maxBackoffSeconds": 12}
    assert [plan.retry_delay(step, n) for n in (1, 2, 3, 4)] == [5, 10, 12, None]
    assert plan.retry_delay({"name": "a", "retries": 2}, 1) == 10
    assert plan.retry_delay({"name": "a", "retries": 2}, 2) == 20
    assert plan.retry_delay({"name": "a"}, 1) is None
    assert plan.retry_delay({"name": "a", "retries": 0}, 1) is None


def test_fields_a_local_run_does_not_apply_are_named_with_why() -> None:
    job = mljob([{"name": "a", "retries": 2}, {"name": "b", "startDeadlineSeconds": 60}])
    job["spec"]["suspend"] = True
    assert plan.ignored_fields(job) == [
        "spec.suspend (a local run cannot be suspended; Ctrl-C stops it)",
        "startDeadlineSeconds of step(s) b (a local step starts at once)",
    ]
    assert plan.ignored_fields(mljob([{"name": "a"}])) == []
