"""The Argo CD health script for MLJob, run by a real Lua 5.1 (lupa) in a sandbox that offers only
what the script may use in Argo CD's gopher-lua: the base and table libraries. The cases are
the script's health_test.yaml, in Argo CD's own format."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lupa import lua51 as lupa  # the dev extra; Lua 5.1 as in gopher-lua

HERE = Path(__file__).resolve().parents[2] / "docs" / "argocd" / "mljob.io" / "MLJob"
SCRIPT = (HERE / "health.lua").read_text()
CASES = yaml.safe_load((HERE / "health_test.yaml").read_text())["tests"]

# Lua 5.1 base library (as gopher-lua has it) and the table library; nothing else.
BASE = [
    "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawset",
    "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "unpack",
    "xpcall", "_VERSION",
]  # fmt: skip

SANDBOX = """
local script, base_names, obj = ...
local env = {table = {}}
for _, name in ipairs(base_names) do env[name] = _G[name] end
for name, fn in pairs(table) do env.table[name] = fn end
env._G = env
env.obj = obj
-- No string methods either: ("x"):upper() must fail as string.upper would.
getmetatable("").__index = nil
local chunk = assert(loadstring(script, "health.lua"))
setfenv(chunk, env)
return chunk()
"""


def run_health(obj: dict) -> dict:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    names = lua.table_from(BASE)
    result = lua.execute(SANDBOX, SCRIPT, names, lua.table_from(obj, recursive=True))
    return dict(result.items())


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_cases(case):
    obj = yaml.safe_load((HERE / case["inputPath"]).read_text())
    assert run_health(obj) == case["healthStatus"]


def test_every_testdata_file_is_a_case():
    used = {c["inputPath"] for c in CASES}
    assert {f"testdata/{p.name}" for p in (HERE / "testdata").glob("*.yaml")} == used


@pytest.mark.parametrize(
    "forbidden",
    ['string.format("%s", "x")', '("x"):upper()', "math.floor(1)", 'os.getenv("HOME")'],
)
def test_sandbox_refuses_libraries_beyond_base_and_table(forbidden):
    """The sandbox is strict enough to catch a script that would break in Argo CD."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = f"local x = {forbidden}\nreturn {{status = 'Healthy'}}"
    with pytest.raises(lupa.LuaError):
        lua.execute(SANDBOX, script, lua.table_from(BASE), lua.table_from({}))


def test_the_runtime_is_lua_5_1():
    assert lupa.LuaRuntime().eval("_VERSION") == "Lua 5.1"


def test_argocd_cm_snippet_carries_the_script_unchanged():
    snippet = yaml.safe_load((HERE.parents[1] / "argocd-cm.yaml").read_text())
    key = "resource.customizations.health.mljob.io_MLJob"
    assert snippet["data"][key] == SCRIPT


def test_example_application_deploys_the_churn_manifest():
    repo = HERE.parents[3]
    app = yaml.safe_load((repo / "examples" / "argocd" / "application.yaml").read_text())
    source = app["spec"]["source"]
    manifest = repo / source["path"] / source["directory"]["include"]
    assert yaml.safe_load(manifest.read_text())["kind"] == "MLJob"
    assert app["spec"]["syncPolicy"]["automated"]["selfHeal"] is True
