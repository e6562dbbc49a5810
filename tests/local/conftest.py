"""Local-mode tests: real PySpark (needs Java) and real Ray, on small data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "churn"
SMALL_ROWS = "20000"


def small_example(tmp_path: Path, *, break_step: str | None = None) -> Path:
    """The example manifest with little data and few rounds, written next to copies of its
    programs; `break_step` gets an entrypoint/main file that fails."""
    app = tmp_path / "app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("mljob-runs", "__pycache__"))
    mljob = yaml.safe_load((EXAMPLE / "mljob.yaml").read_text())
    steps = {s["name"]: s for s in mljob["spec"]["steps"]}
    steps["prepare"]["spark"]["arguments"] = ["--rows", SMALL_ROWS]
    steps["train"]["ray"]["entrypoint"] = "python /app/train.py --workers 2 --rounds 40"
    if break_step:
        (app / "broken.py").write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
        step = steps[break_step]
        if "spark" in step:
            step["spark"]["mainApplicationFile"] = "local:///app/broken.py"
            step["spark"]["arguments"] = []
        else:
            step["ray"]["entrypoint"] = "python /app/broken.py"
    manifest = app / "mljob.yaml"
    manifest.write_text(yaml.safe_dump(mljob, sort_keys=False))
    return manifest


@pytest.fixture(autouse=True)
def _java_for_pyspark(request: pytest.FixtureRequest) -> None:
    """PySpark tests need a JDK: fail (never skip) with how to get one."""
    if "needs_java" in request.keywords and shutil.which("java") is None:
        pytest.fail(
            "local-mode tests need Java 17 on PATH: apt-get install openjdk-17-jre-headless"
        )
