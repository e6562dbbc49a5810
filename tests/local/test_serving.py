"""The pure parts of a serve step in a local run: the smoke request, URLs, the Serve config the
step's process deploys, what the run shows."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from mljob.local import plan, serving
from mljob.testing.corpus import mljob, ray_step

APP = Path("/home/me/project")
BASE = "http://127.0.0.1:8123"


def serve_step(**serve: object) -> dict:
    fields = {"importPath": "serve_model:app", "rayVersion": "2.60.0", **serve}
    return {"name": "serve", "serve": fields}


def test_a_smoke_request_with_json_is_a_post_of_application_json() -> None:
    request = serving.smoke_request({"path": "/predict", "json": {"tenure": 3, "plan": "a b"}})
    assert request == serving.SmokeRequest(
        "/predict", "POST", b'{"tenure": 3, "plan": "a b"}', "application/json"
    )
    assert request.headers() == {"Content-Type": "application/json"}


def test_a_smoke_request_with_a_text_body_and_its_method() -> None:
    request = serving.smoke_request({"method": "PUT", "body": "x=1"})
    assert request == serving.SmokeRequest("/", "PUT", b"x=1", "text/plain; charset=utf-8")


def test_a_smoke_request_without_body_is_a_get_and_none_without_smoke() -> None:
    assert serving.smoke_request({}) == serving.SmokeRequest("/", "GET", None, None)
    assert serving.smoke_request({}).headers() == {}  # type: ignore[union-attr]
    assert serving.smoke_request({"method": "DELETE"}).method == "DELETE"  # type: ignore[union-attr]
    assert serving.smoke_request(None) is None


@pytest.mark.parametrize(
    ("prefix", "path", "url"),
    [
        (None, "/", f"{BASE}/"),
        ("/", "/", f"{BASE}/"),
        ("/", "/predict", f"{BASE}/predict"),
        ("/churn", "/", f"{BASE}/churn"),
        ("/churn", "", f"{BASE}/churn"),
        ("/churn/", "/", f"{BASE}/churn"),
        ("/churn", "/predict", f"{BASE}/churn/predict"),
        ("/churn/", "/predict", f"{BASE}/churn/predict"),
    ],
)
def test_urls_under_the_route_prefix(prefix: str | None, path: str, url: str) -> None:
    assert serving.route_url(serving.base_url("127.0.0.1", 8123), prefix, path) == url


def test_the_smoke_verdict() -> None:
    ok = serving.SmokeAnswer(200, '{"p": 0.8}')
    assert serving.smoke_verdict("POST", f"{BASE}/churn", ok) is None
    assert serving.smoke_verdict("GET", BASE, serving.SmokeAnswer(204, "")) is None
    failed = serving.SmokeAnswer(500, "Traceback (most recent call last):\n  boom\n")
    assert serving.smoke_verdict("POST", f"{BASE}/churn", failed) == (
        f"smoke request POST {BASE}/churn answered 500: Traceback (most recent call last): boom"
    )
    assert "answered 404" in str(serving.smoke_verdict("GET", BASE, serving.SmokeAnswer(404, "")))
    assert "answered 302" in str(serving.smoke_verdict("GET", BASE, serving.SmokeAnswer(302, "")))
    refused = serving.SmokeAnswer(None, "", "ConnectionRefusedError: [Errno 111] refused")
    assert serving.smoke_verdict("GET", BASE, refused) == (
        f"smoke request GET {BASE} got no answer: ConnectionRefusedError: [Errno 111] refused"
    )


def test_answers_are_shown_on_one_clipped_line() -> None:
    assert serving.clip("a\n  b\tc") == "a b c"
    assert serving.clip("x" * 10, 10) == "x" * 10
    assert serving.clip("x" * 11, 10) == "xxxxxxx..."


def test_the_curl_command_repeats_the_smoke_request() -> None:
    request = serving.smoke_request({"json": {"plan": "it's"}})
    command = serving.curl_command(f"{BASE}/churn", request)
    assert shlex.split(command) == [
        "curl",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"plan": "it\'s"}',
        f"{BASE}/churn",
    ]
    assert serving.curl_command(BASE + "/", None) == f"curl {BASE}/"
    assert serving.curl_command(BASE + "/", serving.smoke_request({})) == f"curl {BASE}/"


def test_the_local_runtime_env_maps_app_paths_and_puts_the_project_on_pythonpath() -> None:
    runtime_env = {
        "working_dir": "/app/serving",
        "py_modules": ["/app/lib", {"odd": 1}],
        "pip": ["x"],
        "env_vars": {"A": "1"},
    }
    step_env = {"A": "1", "MLJOB_DATA_PATH": "/runs/x/run-1", "PYTHONPATH": "/app/lib:/opt/y"}
    mapped = serving.map_runtime_env(runtime_env, APP, step_env)
    assert mapped["working_dir"] == "/home/me/project/serving"
    assert mapped["py_modules"] == ["/home/me/project/lib", {"odd": 1}]
    assert mapped["pip"] == ["x"]
    assert mapped["env_vars"] == {
        "A": "1",
        "MLJOB_DATA_PATH": "/runs/x/run-1",
        "PYTHONPATH": "/home/me/project:/home/me/project/lib:/opt/y",
        # Ray's worker setup hook: Serve's replicas bind their gRPC server to loopback.
        "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR": (
            "mljob.local.serve_loopback.bind_serve_to_loopback"
        ),
    }
    assert runtime_env["working_dir"] == "/app/serving"  # the step is left alone
    assert serving.map_runtime_env({}, APP, {})["env_vars"] == {
        "PYTHONPATH": str(APP),
        serving.SETUP_HOOK_ENV: serving_loopback_hook(),
    }


def serving_loopback_hook() -> str:
    from mljob.local import serve_loopback

    return serve_loopback.HOOK


def test_the_loopback_hook_rewrites_only_all_interface_addresses() -> None:
    from mljob.local.serve_loopback import loopback_address

    assert loopback_address("[::]:0") == "127.0.0.1:0"
    assert loopback_address("0.0.0.0:9000") == "127.0.0.1:9000"
    assert loopback_address("127.0.0.1:5") == "127.0.0.1:5"
    assert loopback_address("[::1]:5") == "[::1]:5"


def test_the_application_is_the_clusters_with_the_local_environment(tmp_path: Path) -> None:
    step = serve_step(
        routePrefix="/churn",
        runtimeEnv={"env_vars": {"MODEL": "xgb"}},
        deployments=[{"name": "ChurnModel", "numReplicas": 2, "numCpus": 0.5}],
        smoke={"json": {"a": 1}},
    )
    job = mljob([ray_step("train"), step])
    layout = plan.RunLayout(app_dir=APP, data_dir=tmp_path / "run-3", run=3)
    env = plan.step_env(job, step, layout)
    app = serving.application(job, step, 3, APP, env)
    assert app["name"] == "serve" and app["import_path"] == "serve_model:app"
    assert app["route_prefix"] == "/churn"
    assert app["deployments"] == [
        {"name": "ChurnModel", "num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5}}
    ]
    env_vars = app["runtime_env"]["env_vars"]
    assert env_vars["MODEL"] == "xgb" and env_vars["MLJOB_RUN"] == "3"
    assert env_vars["MLJOB_STEP"] == "serve"
    assert env_vars["MLJOB_DATA_PATH"] == str(tmp_path / "run-3")  # the local folder
    assert env_vars["PYTHONPATH"] == str(APP)


def test_the_driver_config_binds_the_proxy_to_loopback_and_keeps_earlier_apps() -> None:
    earlier = {"name": "first", "import_path": "a:app", "route_prefix": "/a"}
    app = {"name": "serve", "import_path": "b:app", "route_prefix": "/churn"}
    stale = {**app, "import_path": "old:app"}  # this step's own earlier attempt
    smoke = serving.smoke_request({"path": "/predict", "json": {"a": 1}})
    config = serving.driver_config(
        app, "127.0.0.1", 8123, smoke, Path("/r/serve.json"), [earlier, stale]
    )
    assert config["serve"] == {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": 8123},
        "applications": [earlier, app],
    }
    assert config["application"] == "serve" and config["url"] == f"{BASE}/churn"
    assert config["smoke"] == {
        "url": f"{BASE}/churn/predict",
        "method": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": '{"a": 1}',
    }
    assert config["result_file"] == "/r/serve.json"
    json.dumps(config)  # the driver reads it as JSON
    assert serving.driver_config(app, "127.0.0.1", 8123, None, Path("/r"))["smoke"] is None


def test_the_config_is_valid_for_ray_serve() -> None:
    """Ray Serve's own schema accepts what the driver deploys (ray[serve] is in [local])."""
    from ray.serve.schema import ServeDeploySchema

    step = serve_step(deployments=[{"name": "ChurnModel", "numReplicas": 1, "numCpus": 0.5}])
    job = mljob([step])
    layout = plan.RunLayout(app_dir=APP, data_dir=Path("/runs/run-1"), run=1)
    app = serving.application(job, step, 1, APP, plan.step_env(job, step, layout))
    config = serving.driver_config(app, "127.0.0.1", 8123, None, Path("/r"))
    schema = ServeDeploySchema.model_validate(config["serve"])
    assert schema.http_options.host == "127.0.0.1" and schema.http_options.port == 8123


def test_what_the_run_shows_of_a_serve_steps_result() -> None:
    result = {
        "url": f"{BASE}/churn",
        "smoke": {"method": "POST", "url": f"{BASE}/churn", "status": 200, "body": '{"p": 0.8}'},
        "error": None,
    }
    assert serving.smoke_lines("serve", result) == [
        f"Step serve serves at {BASE}/churn",
        f'  smoke request POST {BASE}/churn -> 200: {{"p": 0.8}}',
    ]
    failed = {**result, "error": "smoke request POST ... answered 500: boom"}
    assert serving.smoke_lines("serve", failed)[-1] == (
        "Step serve failed: smoke request POST ... answered 500: boom"
    )
    not_deployed = {"url": None, "smoke": None, "error": "the Serve application serve failed"}
    assert serving.smoke_lines("serve", not_deployed) == [
        "Step serve failed: the Serve application serve failed"
    ]


def test_a_serve_steps_declared_ray_version_is_checked_against_the_installed_ray() -> None:
    job = mljob([serve_step(rayVersion="2.49.0")])
    assert plan.version_mismatches(job, {"ray": "2.60.0", "spark": None}) == [
        "step serve: rayVersion is 2.49.0 but Ray 2.60.0 is installed "
        "(they should match to the minor version)"
    ]
    assert plan.version_mismatches(job, {"ray": "2.49.1", "spark": None}) == []
