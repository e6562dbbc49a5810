"""`mljob validate` and `mljob render`: the operator's validation and builders, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mljob import builders
from mljob.cli import main
from mljob.testing.corpus import BAD_MANIFESTS
from mljob.validation import validate

from .conftest import EXAMPLE

MANIFEST = str(EXAMPLE / "mljob.yaml")


def write(tmp_path: Path, mljob: dict) -> str:
    path = tmp_path / "mljob.yaml"
    path.write_text(yaml.safe_dump(mljob))
    return str(path)


def test_validate_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", MANIFEST]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_prints_the_operators_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mljob = yaml.safe_load(Path(MANIFEST).read_text())
    mljob["spec"]["steps"][1]["dependsOn"] = ["nowhere"]
    del mljob["spec"]["steps"][0]["spark"]["mainApplicationFile"]
    path = write(tmp_path, mljob)
    assert main(["validate", path]) == 1
    printed = capsys.readouterr().err.splitlines()
    assert printed == [f"{path}: {error}" for error in validate(mljob)]
    assert len(printed) >= 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("a: [unclosed", "not valid YAML"),
        ("kind: ConfigMap\n", "exactly one document of kind MLJob"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "m.yaml"
    if content is not None:
        path.write_text(content)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_render_prints_the_builders_objects(capsys: pytest.CaptureFixture[str]) -> None:
    uid = "5f0c4d36-6a7e-4a39-9d5e-0c7c1a2b3c4d"
    assert main(["render", MANIFEST, "-n", "team-a", "--uid", uid]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    mljob = yaml.safe_load(Path(MANIFEST).read_text())
    mljob["metadata"].update(namespace="team-a", uid=uid)
    spark_step, train_step, evaluate_step = mljob["spec"]["steps"]
    assert documents == [
        builders.build_spark_application(mljob, spark_step, 1, 1),
        builders.build_ray_job(mljob, train_step, 1, 1),
        builders.build_ray_job(mljob, evaluate_step, 1, 1),
    ]


def test_render_refuses_an_invalid_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"apiVersion": "mljob.io/v1alpha1", "kind": "MLJob", "metadata": {}})
    assert main(["render", path]) == 2
    assert "invalid" in capsys.readouterr().err


def test_run_reports_an_invalid_manifest_in_one_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"apiVersion": "mljob.io/v1alpha1", "kind": "MLJob", "metadata": {}})
    assert main(["run", path, "--local", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "invalid MLJob" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_run_says_how_to_get_java(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert main(["run", MANIFEST, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "Java is not installed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "manifest"),
    [
        (case, manifest)
        for case, manifest, _ in BAD_MANIFESTS
        if isinstance(manifest, dict) and manifest.get("kind") == "MLJob"
    ],
)
def test_validate_gives_the_operators_messages_for_the_whole_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, manifest: dict
) -> None:
    """The CLI and the operator share one validation: same manifest, same messages."""
    path = write(tmp_path, manifest)
    assert main(["validate", path]) == 1, case
    printed = capsys.readouterr().err.splitlines()
    assert printed == [f"{path}: {error}" for error in validate(manifest)]
