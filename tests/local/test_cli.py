"""`mljob validate` and `mljob render`: the operator's validation and builders, offline."""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mljob import builders
from mljob.cli import build_parser, main
from mljob.manifests import ManifestError, read_mljob
from mljob.testing.corpus import BAD_FILES, BAD_MANIFESTS, GOOD_FILE
from mljob.validation import validate

from .conftest import EXAMPLE

MANIFEST = str(EXAMPLE / "mljob.yaml")
MLJOB = str(Path(sys.executable).parent / "mljob")  # the console script pip installed


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


def test_render_prints_the_builders_objects(capsys: pytest.CaptureFixture[str]) -> None:
    uid = "5f0c4d36-6a7e-4a39-9d5e-0c7c1a2b3c4d"
    assert main(["render", MANIFEST, "-n", "team-a", "--uid", uid]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    mljob = yaml.safe_load(Path(MANIFEST).read_text())
    mljob["metadata"].update(namespace="team-a", uid=uid)
    spark_step, train_step, evaluate_step, serve_step = mljob["spec"]["steps"]
    assert documents == [
        builders.build_spark_application(mljob, spark_step, 1, 1),
        builders.build_ray_job(mljob, train_step, 1, 1),
        builders.build_ray_job(mljob, evaluate_step, 1, 1),
        builders.build_step_child(mljob, serve_step, 1, 1),
    ]
    assert documents[-1]["kind"] == "RayService"


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


# The corpus's messages are checked once, on the pure function (tests/unit/test_validation.py);
# here only the wiring: a few manifests, each message printed as validate() gives it, exit 1.
_MLJOB_CASES = [
    (case, manifest)
    for case, manifest, _ in BAD_MANIFESTS
    if isinstance(manifest, dict) and manifest.get("kind") == "MLJob"
]
_WIRING_CASES = [_MLJOB_CASES[0], _MLJOB_CASES[len(_MLJOB_CASES) // 2], _MLJOB_CASES[-1]]


@pytest.mark.parametrize(("case", "manifest"), _WIRING_CASES, ids=[c for c, _ in _WIRING_CASES])
def test_validate_prints_every_message_of_validate_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, manifest: dict
) -> None:
    """The CLI and the operator share one validation: same manifest, same messages."""
    path = write(tmp_path, manifest)
    assert main(["validate", path]) == 1, case
    printed = capsys.readouterr().err.splitlines()
    assert printed and printed == [f"{path}: {error}" for error in validate(manifest)]


def test_validate_prints_several_messages_one_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = next(m for _, m in _MLJOB_CASES if len(validate(m)) > 1)
    path = write(tmp_path, manifest)
    assert main(["validate", path]) == 1
    assert len(capsys.readouterr().err.splitlines()) == len(validate(manifest))


# --- bad files (issue 15): every message through the one reader, the wiring for a few ---------
def _bad_path(tmp_path: Path, kind: str) -> Path:
    """A path that is not a readable file: missing, a directory, under a file, a FIFO."""
    path = tmp_path / f"{kind}.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "under-a-file":
        (tmp_path / "file").write_bytes(GOOD_FILE)
        path = tmp_path / "file" / "mljob.yaml"
    elif kind == "fifo":
        os.mkfifo(path)  # nobody writes: reading must not hang
    return path


BAD_PATHS = [
    ("missing", ": no such file"),
    ("directory", ": is a directory; expected an MLJob manifest file"),
    ("under-a-file", ": cannot open: not a directory"),
    ("fifo", ": nothing to read (a pipe with no writer)"),
]


@pytest.mark.parametrize(("case", "content", "fragment"), BAD_FILES, ids=[c for c, *_ in BAD_FILES])
def test_the_reader_says_what_is_wrong_with_each_bad_file(
    tmp_path: Path, case: str, content: bytes, fragment: str
) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    with pytest.raises(ManifestError) as raised:
        read_mljob(path)
    message = str(raised.value)
    assert message.startswith(str(path)) and fragment in message, message
    assert "\n" not in message


@pytest.mark.parametrize(("kind", "fragment"), BAD_PATHS, ids=[k for k, _ in BAD_PATHS])
def test_the_reader_says_why_a_path_is_not_a_readable_file(
    tmp_path: Path, kind: str, fragment: str
) -> None:
    path = _bad_path(tmp_path, kind)
    with pytest.raises(ManifestError, match=f"^{re.escape(str(path) + fragment)}"):
        read_mljob(path)


def test_the_reader_accepts_what_kubectl_accepts(tmp_path: Path) -> None:
    """The refusals above are not refusing everything: a byte-order mark, CRLF line ends,
    comments and empty documents around the one MLJob are fine."""
    path = tmp_path / "mljob.yaml"
    text = b"\xef\xbb\xbf# churn\r\n---\r\n" + GOOD_FILE.replace(b"\n", b"\r\n") + b"---\n"
    path.write_bytes(text)
    assert read_mljob(path) == yaml.safe_load(GOOD_FILE)


def test_the_reader_reads_a_pipe_that_has_a_writer(tmp_path: Path) -> None:
    """`mljob validate <(generate)` works: only a pipe nobody writes to is refused."""
    read_end, write_end = os.pipe()
    os.write(write_end, GOOD_FILE)
    os.close(write_end)
    try:
        assert read_mljob(f"/dev/fd/{read_end}")["kind"] == "MLJob"
    finally:
        os.close(read_end)


def _file_commands() -> list[str]:
    """Every `mljob` subcommand with a FILE argument, from the parser itself (a new one is
    covered without editing this test)."""
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return sorted(
        name
        for name, parser in subparsers.choices.items()
        if any(action.dest == "file" for action in parser._actions)
    )


def test_the_commands_that_read_files_are_known() -> None:
    assert {"run", "validate", "render"} <= set(_file_commands())


@pytest.mark.parametrize("command", _file_commands())
def test_every_file_command_answers_a_bad_file_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """The wiring: each command reads through the one reader and exits 2 with its message
    (a few files of each sort; the reader tests above check every message)."""
    files = {name: content for name, content, _ in BAD_FILES}
    cases = [
        (tmp_path / "latin-1.yaml", files["latin-1"], "not UTF-8"),
        (tmp_path / "two.yaml", files["two-documents"], "2 YAML documents"),
        (tmp_path / "deep.yaml", files["too-deep"], "nested more than"),
        (_bad_path(tmp_path, "directory"), None, "is a directory"),
        (_bad_path(tmp_path, "missing"), None, "no such file"),
    ]
    monkeypatch.chdir(tmp_path)  # `run` would create ./mljob-runs had it started
    for path, content, fragment in cases:
        if content is not None:
            path.write_bytes(content)
        assert main([command, str(path)]) == 2, path
        out, err = capsys.readouterr()
        assert err.startswith(f"mljob: error: {path}") and fragment in err, err
        assert err.count("\n") == 1 and not out
    assert not (tmp_path / "mljob-runs").exists()


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    """The original defect, through the console script: non-UTF-8 bytes used to end in
    UnicodeDecodeError's traceback."""
    path = tmp_path / "latin-1.yaml"
    path.write_bytes(GOOD_FILE + b"# caf\xe9\n")
    for command in _file_commands():
        result = subprocess.run(
            [MLJOB, command, str(path)], capture_output=True, text=True, check=False
        )
        assert (result.returncode, result.stdout) == (2, ""), (command, result)
        assert result.stderr == f"mljob: error: {path}:5:6: not UTF-8 text (byte 0xe9); " + (
            "is it a binary file or another encoding?\n"
        ), command


def _without_root_file_access() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    capability bounding set, so root's exec'd program obeys file permissions."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    """No permission to read. chmod 000 stops nothing for root, so as root the command runs
    without the capabilities that let root read any file."""
    path = tmp_path / "secret.yaml"
    path.write_bytes(GOOD_FILE)
    path.chmod(0)
    as_root = os.geteuid() == 0
    try:
        result = subprocess.run(
            [MLJOB, "validate", str(path)],
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=_without_root_file_access if as_root else None,
        )
    except subprocess.SubprocessError as error:
        pytest.fail(f"as root, cannot drop CAP_DAC_OVERRIDE to make a file unreadable: {error}")
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == f"mljob: error: {path}: cannot open: permission denied\n"


def test_the_operator_checks_its_webhook_certificate_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mljob operator` takes files too: a missing or broken certificate is one line at start,
    not a kopf traceback later."""
    import mljob.serve

    def must_not_start(*_: object) -> None:
        raise AssertionError("the operator started with a bad webhook certificate")

    monkeypatch.setattr(mljob.serve, "serve", must_not_start)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    args = ["operator", "--webhook-port=9443", f"--webhook-cert={cert}", f"--webhook-key={key}"]
    assert main(args) == 2
    assert (
        capsys.readouterr().err
        == f"mljob: error: {cert}: no such file (webhook certificate or key)\n"
    )
    cert.write_bytes(b"\xff not PEM")
    key.write_bytes(b"")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not a usable webhook certificate and key" in err and err.count("\n") == 1


def test_dev_cluster_takes_its_options_and_reports_a_bad_workdir_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--workdir reaches the control plane (it used to be dropped by argparse.REMAINDER), and
    a workdir that is a file is one line, before anything starts."""
    workdir = tmp_path / "a-file"
    workdir.write_text("")
    assert main(["dev-cluster", "--workdir", str(workdir)]) == 2
    assert (
        capsys.readouterr().err
        == f"mljob: error: dev-cluster: [Errno 17] File exists: '{workdir}'\n"
    )
