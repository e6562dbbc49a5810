"""Pure parts of a serve step in a local run: the Serve application (the cluster's, with local
paths), where it answers, the smoke request and how its answer is shown. No I/O.

A serve step runs on the run's local Ray instance with Ray Serve. Serve's one HTTP proxy listens
on 127.0.0.1 only, on a free port the runner picks for the run (every serve step of the run
shares it, as Serve has one proxy per Ray node). `mljob.local.serve_driver` deploys the
application from `driver_config`, waits until it is RUNNING, sends the smoke request and writes
its result file; the runner shows it (`smoke_lines`) and, unless told to stop after the smoke
requests, keeps serving until Ctrl-C.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mljob import builders
from mljob.local import serve_loopback
from mljob.local.plan import to_local_path

Obj = dict[str, Any]

SMOKE_TIMEOUT_SECONDS = 60.0
DEPLOY_TIMEOUT_SECONDS = 600.0  # the application RUNNING, its replicas' imports included
SHOWN_BODY_CHARS = 400  # an answer is shown clipped to this
PYTHONPATH = "PYTHONPATH"
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"  # ray._private.ray_constants


@dataclass(frozen=True)
class SmokeRequest:
    """One HTTP request to the application, relative to its route prefix."""

    path: str = "/"
    method: str = "GET"
    body: bytes | None = None
    content_type: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type} if self.content_type else {}


def smoke_request(smoke: Obj | None) -> SmokeRequest | None:
    """The step's `serve.smoke` (validated) as a request: `json` is sent as application/json,
    `body` as text/plain; the method defaults to POST when there is a body, else GET."""
    if smoke is None:
        return None
    body: bytes | None = None
    content_type = None
    if "json" in smoke:
        body, content_type = json.dumps(smoke["json"]).encode(), "application/json"
    elif "body" in smoke:
        body, content_type = str(smoke["body"]).encode(), "text/plain; charset=utf-8"
    method = smoke.get("method") or ("POST" if body is not None else "GET")
    return SmokeRequest(smoke.get("path", "/"), method, body, content_type)


def base_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def route_url(base: str, route_prefix: str | None, path: str = "/") -> str:
    """The URL of `path` under the application's route prefix (both start with /):
    ('/churn', '/') -> base/churn, ('/churn', '/x') -> base/churn/x, ('/', '/x') -> base/x."""
    prefix = (route_prefix or builders.SERVE_DEFAULT_ROUTE).rstrip("/")
    if path in ("", "/"):
        return base + (prefix or "/")
    return base + prefix + path


def succeeded(status: int) -> bool:
    return 200 <= status < 300


def clip(text: str, limit: int = SHOWN_BODY_CHARS) -> str:
    """One line, at most `limit` characters (an answer can be a page of HTML or a trace)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def curl_command(url: str, request: SmokeRequest | None) -> str:
    """What a person types to send the smoke request again (or a plain GET without one)."""
    if request is None:
        return f"curl {shlex.quote(url)}"
    parts = ["curl"]
    if request.method != "GET":
        parts += ["-X", request.method]
    if request.content_type:
        parts += ["-H", shlex.quote(f"Content-Type: {request.content_type}")]
    if request.body is not None:
        parts += ["-d", shlex.quote(request.body.decode())]
    return " ".join([*parts, shlex.quote(url)])


def map_runtime_env(runtime_env: Obj, app_dir: Path, step_env: Mapping[str, str]) -> Obj:
    """The application's runtime env for a local run: the step's environment (MLJOB_* with the
    local data folder) as env_vars; working_dir and py_modules under /app mapped to app_dir;
    app_dir first on PYTHONPATH, as the image's /app is (its Dockerfile sets PYTHONPATH=/app),
    so the import path's module is found; a worker setup hook that keeps Serve's replicas on
    loopback (mljob.local.serve_loopback)."""
    env = copy.deepcopy(runtime_env)
    if isinstance(env.get("working_dir"), str):
        env["working_dir"] = to_local_path(env["working_dir"], app_dir)
    if isinstance(env.get("py_modules"), list):
        env["py_modules"] = [
            to_local_path(m, app_dir) if isinstance(m, str) else m for m in env["py_modules"]
        ]
    env_vars = dict(step_env)
    own_path = env_vars.get(PYTHONPATH)
    mapped = [to_local_path(p, app_dir) for p in own_path.split(":")] if own_path else []
    env_vars[PYTHONPATH] = ":".join(dict.fromkeys([str(app_dir), *mapped]))
    # What Ray's job-level worker_process_setup_hook becomes (an application's runtime env
    # does not convert one): the variable Ray's default_worker reads at start.
    env_vars.setdefault(SETUP_HOOK_ENV, serve_loopback.HOOK)
    env["env_vars"] = env_vars
    return env


def application(mljob: Obj, step: Obj, run: int, app_dir: Path, step_env: Mapping[str, str]) -> Obj:
    """The step's Serve application as the cluster gets it (builders.serve_config_yaml: name,
    import path, route prefix, deployments' replicas and actor resources), with a local
    runtime env (map_runtime_env)."""
    config = yaml.safe_load(builders.serve_config_yaml(mljob, run, step))
    app: Obj = config["applications"][0]
    app["runtime_env"] = map_runtime_env(app.get("runtime_env") or {}, app_dir, step_env)
    return app


def driver_config(
    app: Obj,
    host: str,
    port: int,
    smoke: SmokeRequest | None,
    result_file: Path,
    deployed: Iterable[Obj] = (),
) -> Obj:
    """What serve_driver reads (JSON): the Serve config (`serve deploy`'s schema) with the HTTP
    proxy on host:port of the head node only, the smoke request, where to write the result.
    The config is declarative (Serve deletes the applications it does not name), so it names
    the run's `deployed` applications (earlier serve steps) too; unchanged, they stay as are."""
    url = route_url(base_url(host, port), app.get("route_prefix"))
    request = None
    if smoke is not None:
        request = {
            "url": route_url(base_url(host, port), app.get("route_prefix"), smoke.path),
            "method": smoke.method,
            "headers": smoke.headers(),
            "body": smoke.body.decode() if smoke.body is not None else None,
        }
    return {
        "serve": {
            "proxy_location": "HeadOnly",
            "http_options": {"host": host, "port": port},
            "applications": [*(a for a in deployed if a["name"] != app["name"]), app],
        },
        "application": app["name"],
        "url": url,
        "smoke": request,
        "result_file": str(result_file),
        "deploy_timeout_seconds": DEPLOY_TIMEOUT_SECONDS,
        "smoke_timeout_seconds": SMOKE_TIMEOUT_SECONDS,
    }


@dataclass(frozen=True)
class SmokeAnswer:
    status: int | None  # None: no answer (refused, timed out)
    body: str
    error: str | None = None


def smoke_verdict(method: str, url: str, answer: SmokeAnswer) -> str | None:
    """Why the smoke request failed the step, one line; None when it passed (2xx)."""
    if answer.status is None:
        return f"smoke request {method} {url} got no answer: {answer.error}"
    if not succeeded(answer.status):
        return f"smoke request {method} {url} answered {answer.status}: {clip(answer.body)}"
    return None


def smoke_lines(step: str, result: Obj) -> list[str]:
    """What the run shows when a serve step's driver ended, from its result file."""
    lines = []
    if result.get("url"):
        lines.append(f"Step {step} serves at {result['url']}")
    smoke = result.get("smoke")
    if isinstance(smoke, dict) and smoke.get("status") is not None:
        lines.append(
            f"  smoke request {smoke['method']} {smoke['url']} -> {smoke['status']}: "
            f"{clip(str(smoke.get('body', '')))}"
        )
    if result.get("error"):
        lines.append(f"Step {step} failed: {result['error']}")
    return lines
