"""Serve steps in a local run, on real Ray Serve (no Spark: no Java needed): a failing smoke
request fails the step and skips the steps after it; without --exit-after-smoke the run serves
on 127.0.0.1 until Ctrl-C, then exits 130 and leaves no process and no socket behind."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from mljob.local.runner import RunOptions, run_local

from .conftest import alive, ctrl_c_as_in_a_terminal, descendants, listeners, open_inodes

RUN_TIMEOUT_SECONDS = 400.0  # Ray, Serve and a replica on a busy 2-core machine
GONE_TIMEOUT_SECONDS = 30.0

APP = """
import os
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse


@serve.deployment
class Echo:
    async def __call__(self, request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("fail"):
            return JSONResponse({"error": "model not loaded"}, status_code=500)
        return JSONResponse({"echo": body, "data": os.environ["MLJOB_DATA_PATH"]})


app = Echo.bind()
"""


def write_manifest(tmp_path: Path, smoke: dict) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "echo_app.py").write_text(APP)
    (app / "after.py").write_text("print('after the serve step')\n")
    mljob = {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "MLJob",
        "metadata": {"name": "echo"},
        "spec": {
            "image": "registry.example.com/echo:0.1.0",
            "steps": [
                {
                    "name": "web",
                    "serve": {
                        "importPath": "echo_app:app",
                        "routePrefix": "/echo",
                        "rayVersion": "2.60.0",
                        "deployments": [{"name": "Echo", "numReplicas": 1, "numCpus": 0.5}],
                        "smoke": smoke,
                    },
                },
                {
                    "name": "after",
                    "ray": {"entrypoint": "python /app/after.py", "rayVersion": "2.60.0"},
                },
            ],
        },
    }
    manifest = app / "mljob.yaml"
    manifest.write_text(yaml.safe_dump(mljob, sort_keys=False))
    return manifest


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)  # polling interval; the condition is what we wait on


def test_a_failing_smoke_request_fails_the_step_and_skips_the_rest(tmp_path: Path) -> None:
    import io

    manifest = write_manifest(tmp_path, {"path": "/", "json": {"fail": True}})
    out = io.StringIO()
    options = RunOptions(runs_dir=tmp_path / "runs", exit_after_smoke=True)
    code = run_local(yaml.safe_load(manifest.read_text()), manifest, options, out=out)
    output = out.getvalue()
    assert code == 1, output
    url = re.search(r"http://127\.0\.0\.1:\d+/echo", output)
    assert url, output
    assert (
        f"Step web failed: smoke request POST {url.group(0)} answered 500: "
        '{"error":"model not loaded"}'
    ) in output
    lines = [line.split()[:3] for line in output.splitlines()]
    assert ["web", "serve", "failed"] in lines
    assert ["after", "ray", "skipped"] in lines


@pytest.fixture
def serving_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    manifest = write_manifest(tmp_path, {"path": "/", "json": {"hello": "smoke"}})
    output = tmp_path / "run.out"
    command = [sys.executable, "-m", "mljob.cli", "run", str(manifest)]
    command += ["--runs-dir", str(tmp_path / "runs")]  # no --exit-after-smoke: serves
    with output.open("wb") as out:
        runner = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, preexec_fn=ctrl_c_as_in_a_terminal
        )
    try:
        yield runner, output
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGINT)
            try:
                runner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                runner.kill()


def test_the_run_serves_on_loopback_until_ctrl_c_then_leaves_nothing(
    serving_run: tuple[subprocess.Popen[bytes], Path],
) -> None:
    runner, output_file = serving_run

    def output() -> str:
        return output_file.read_text(errors="replace")

    until(
        lambda: "Serving until Ctrl-C" in output() or runner.poll() is not None,
        RUN_TIMEOUT_SECONDS,
        "the run to serve",
    )
    text = output()
    assert runner.poll() is None, text
    assert "smoke request POST" in text and '-> 200: {"echo":{"hello":"smoke"}' in text, text
    lines = [line.split()[:3] for line in text.splitlines()]
    assert ["step", "web", "(serve):"] in lines and ["step", "after", "(ray):"] in lines
    url = re.search(r"Serving step web: curl .* (http://127\.0\.0\.1:(\d+)/echo)", text)
    assert url, text
    port = int(url.group(2))

    # A person's request, after the run's steps ended: the model still answers.
    request = urllib.request.Request(
        url.group(1), data=json.dumps({"from": "curl"}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert json.loads(answer.read())["echo"] == {"from": "curl"}

    pids = descendants(runner.pid) | {runner.pid}
    found = listeners(pids)
    proxy = [s for s in found if s.port == port]
    assert proxy and all(s.on_loopback for s in proxy), [str(s) for s in found]
    assert any("ServeReplica" in s.command for s in found), [str(s) for s in found]
    exposed = [str(s) for s in found if not s.on_loopback]
    assert not exposed, exposed

    runner.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    assert runner.wait(timeout=120) == 130, output()
    assert "Interrupted" in output(), output()
    inodes = {s.inode for s in found}
    until(
        lambda: not any(alive(p) for p in pids) and not inodes & open_inodes(),
        GONE_TIMEOUT_SECONDS,
        "the run's processes and sockets to go",
    )
