"""The Argo CD health script for MLJob, run in the engine Argo CD embeds: gopher-lua, in the
sandbox Argo CD builds for a health script from argocd-cm (the gitops-verdict helper,
mljob.testing.gitops; built from the Go module proxy once). The cases are the script's
health_test.yaml, in Argo CD's own format. tests/integration/test_gitops_verdicts.py runs the
same script, and kstatus, on MLJobs the operator really wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mljob.testing.gitops import verdicts

HERE = Path(__file__).resolve().parents[2] / "docs" / "argocd" / "mljob.io" / "MLJob"
SCRIPT = HERE / "health.lua"
CASES = yaml.safe_load((HERE / "health_test.yaml").read_text())["tests"]
OBJ = {"apiVersion": "mljob.io/v1alpha1", "kind": "MLJob", "metadata": {"name": "x"}}


def health(binary: Path, objects: list[dict], script: Path = SCRIPT) -> list[dict | None]:
    return [line["argocd"] for line in verdicts(binary, objects, script)]


def test_health_cases(gitops_verdict):
    objects = [yaml.safe_load((HERE / case["inputPath"]).read_text()) for case in CASES]
    got = dict(zip([c["inputPath"] for c in CASES], health(gitops_verdict, objects), strict=True))
    assert got == {c["inputPath"]: c["healthStatus"] for c in CASES}


def test_every_testdata_file_is_a_case():
    used = {c["inputPath"] for c in CASES}
    assert {f"testdata/{p.name}" for p in (HERE / "testdata").glob("*.yaml")} == used


def probe(binary: Path, tmp_path: Path, expression: str) -> dict | None:
    """Run `return {status = "Healthy", message = <expression>}` as a health script."""
    script = tmp_path / "probe.lua"
    script.write_text(f'return {{status = "Healthy", message = {expression}}}\n')
    return health(binary, [OBJ], script)[0]


@pytest.mark.parametrize(
    "expression",
    [
        'string.format("%s", "x")',  # no string library...
        '("x"):upper()',  # ...so no string methods either
        "math.floor(1)",
        'os.getenv("HOME")',  # the safe os is not a global
        "io.write('x')",
        "debug.traceback()",
        "coroutine.running()",
        "table.time()",  # the safe os registers under the table library's name, but adds nothing
    ],
)
def test_argocd_opens_no_library_beyond_package_base_and_table(
    gitops_verdict, tmp_path, expression
):
    result = probe(gitops_verdict, tmp_path, expression)
    assert result is not None and "attempt to" in result.get("error", ""), result


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("_VERSION", "Lua 5.1"),
        ("tostring(ipairs) ~= nil and type(table.insert)", "function"),
        ('type(require("os").time())', "number"),  # the preloaded safe os: time and date only
        ('tostring(require("os").getenv)', "nil"),
        ("type(obj.metadata)", "table"),
    ],
)
def test_what_a_health_script_does_have(gitops_verdict, tmp_path, expression, value):
    assert probe(gitops_verdict, tmp_path, expression) == {"status": "Healthy", "message": value}


def test_the_script_has_a_verdict_for_any_object(gitops_verdict):
    """Never an error, whatever the status holds (Argo CD would show the error instead)."""
    odd = [
        {**OBJ, "status": {}},
        {**OBJ, "status": {"phase": "Running", "conditions": []}},
        {**OBJ, "metadata": {"name": "x", "generation": 4}, "status": {"phase": "Unknown"}},
        {**OBJ, "status": {"phase": "Failed"}},
    ]
    results = health(gitops_verdict, odd)
    assert [r["status"] for r in results] == [
        "Progressing",
        "Progressing",
        "Progressing",
        "Degraded",
    ]


def test_argocd_cm_snippet_carries_the_script_unchanged():
    snippet = yaml.safe_load((HERE.parents[1] / "argocd-cm.yaml").read_text())
    key = "resource.customizations.health.mljob.io_MLJob"
    assert snippet["data"][key] == SCRIPT.read_text()
    assert not any(k.startswith("resource.customizations.useOpenLibs") for k in snippet["data"])


def test_example_application_deploys_the_churn_manifest():
    repo = HERE.parents[3]
    app = yaml.safe_load((repo / "examples" / "argocd" / "application.yaml").read_text())
    source = app["spec"]["source"]
    manifest = repo / source["path"] / source["directory"]["include"]
    assert yaml.safe_load(manifest.read_text())["kind"] == "MLJob"
    assert app["spec"]["syncPolicy"]["automated"]["selfHeal"] is True
