"""The process of a serve step in a local run: `python -m mljob.local.serve_driver CONFIG`.

Connects to the run's local Ray instance (RAY_ADDRESS and the token come in the environment),
starts Ray Serve with its HTTP proxy where CONFIG says (127.0.0.1 and the run's port), deploys
the applications (`serve deploy`'s declarative config: the run's earlier serve steps' and this
step's), waits until this step's application is RUNNING, sends the smoke request and writes the
result file (JSON: url, smoke answer, error). Exit 0 when the application runs and the smoke
request (if any) answered 2xx; 1 otherwise, with the reason in the result file and on stderr.

Serve's controller, proxy and replicas are detached Ray actors: they keep serving after this
process ends, until the runner stops the Ray instance.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mljob.local import serving

POLL_SECONDS = 0.5


def deploy(config: dict[str, Any]) -> None:
    import ray
    from ray.serve._private import api as serve_api  # what `serve run config.yaml` uses
    from ray.serve.config import ProxyLocation
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config["serve"])
    ray.init(namespace="serve", log_to_driver=False)
    client = serve_api.serve_start(
        http_options=schema.http_options.model_dump(),
        proxy_location=ProxyLocation(schema.proxy_location),
    )
    client.deploy_apps(schema, _blocking=False)


def wait_running(name: str, timeout: float) -> str | None:
    """None once the application is RUNNING; else why it is not (failed, or timed out)."""
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    deadline = time.monotonic() + timeout
    last = "not deployed yet"
    while time.monotonic() < deadline:
        app = serve.status().applications.get(name)
        if app is not None:
            last = f"{app.status.value}: {app.message}".rstrip(": ")
            if app.status == ApplicationStatus.RUNNING:
                return None
            if app.status == ApplicationStatus.DEPLOY_FAILED:
                return f"the Serve application {name} failed to deploy ({last})"
        time.sleep(POLL_SECONDS)  # Serve's status is polled; there is no wait API
    return f"the Serve application {name} was not RUNNING after {timeout:.0f} s ({last})"


def send(request: dict[str, Any], timeout: float) -> serving.SmokeAnswer:
    body = request["body"].encode() if request.get("body") is not None else None
    http = urllib.request.Request(
        request["url"], data=body, method=request["method"], headers=request["headers"]
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:
            return serving.SmokeAnswer(answer.status, answer.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:  # an answer all the same (4xx, 5xx)
        return serving.SmokeAnswer(error.code, error.read().decode(errors="replace"))
    except OSError as error:  # refused, reset, timed out
        return serving.SmokeAnswer(None, "", f"{type(error).__name__}: {error}")


def main(config_file: str) -> int:
    config = json.loads(Path(config_file).read_text())
    result: dict[str, Any] = {"url": None, "smoke": None, "error": None}
    try:
        result["error"] = deploy_and_check(config, result)
    except Exception as error:  # one line for the run; the trace stays in the step's log
        traceback.print_exc()
        result["error"] = f"could not deploy to Ray Serve: {type(error).__name__}: {error}"
    finally:
        Path(config["result_file"]).write_text(json.dumps(result))
    if result["error"]:
        print(result["error"], file=sys.stderr, flush=True)
        return 1
    return 0


def deploy_and_check(config: dict[str, Any], result: dict[str, Any]) -> str | None:
    """Deploy, wait until RUNNING, send the smoke request; fills `result`, returns the error."""
    deploy(config)
    error = wait_running(config["application"], config["deploy_timeout_seconds"])
    if error is not None:
        return error
    result["url"] = config["url"]
    print(f"serving at {config['url']}", flush=True)
    request = config["smoke"]
    if request is None:
        return None
    answer = send(request, config["smoke_timeout_seconds"])
    result["smoke"] = {**request, "status": answer.status, "body": answer.body}
    print(f"smoke request -> {answer.status}: {answer.body}{answer.error or ''}", flush=True)
    return serving.smoke_verdict(request["method"], request["url"], answer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
