"""The ScheduledMLJob CRD: generated from the MLJob CRD (its template is the MLJob spec schema,
byte for byte), described for kubectl explain, and agreeing with mljob.schedule's fields and
status types."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from typing import get_type_hints

import yaml

from mljob import schedule

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "mljob.io_scheduledmljobs.yaml"
MLJOB_CRD = REPO / "crds" / "mljob.io_mljobs.yaml"


def _generator():
    path = REPO / "scripts" / "gen-scheduledmljob-crd"
    loader = importlib.machinery.SourceFileLoader("gen_scheduledmljob_crd", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _schema() -> dict:
    return yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _walk(schema, path="(root)"):
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")


def test_the_crd_file_is_what_the_generator_writes():
    generator = _generator()
    assert CRD.read_text() == generator.render(MLJOB_CRD.read_text()), (
        "crds/mljob.io_scheduledmljobs.yaml is stale: run scripts/gen-scheduledmljob-crd"
    )
    assert generator.NAME_MAX == schedule.NAME_MAX
    assert generator.MAX_HISTORY == schedule.MAX_HISTORY
    assert generator.MAX_DEADLINE == schedule.MAX_STARTING_DEADLINE


def test_the_template_spec_is_the_mljob_spec_schema():
    mljob = yaml.safe_load(MLJOB_CRD.read_text())["spec"]["versions"][0]
    mljob_spec = mljob["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template_spec = _schema()["properties"]["spec"]["properties"]["template"]["properties"]["spec"]
    assert {k: v for k, v in template_spec.items() if k != "description"} == {
        k: v for k, v in mljob_spec.items() if k != "description"
    }


def test_every_field_has_a_description_for_kubectl_explain():
    missing = [
        p for p, s in _walk(_schema()) if "description" not in s and not p.endswith(".metadata")
    ]
    assert missing == []


def test_spec_fields_and_enums_agree_with_the_code():
    spec = _schema()["properties"]["spec"]["properties"]
    assert set(spec) == schedule.SPEC_FIELDS
    assert tuple(spec["concurrencyPolicy"]["enum"]) == schedule.CONCURRENCY_POLICIES
    template = spec["template"]["properties"]
    assert set(template) == schedule.TEMPLATE_FIELDS
    assert set(template["metadata"]["properties"]) == schedule.TEMPLATE_METADATA_FIELDS


def _typed_fields(typed) -> set[str]:
    return set(get_type_hints(typed))


def test_status_schema_names_exactly_the_status_types_fields():
    status = _schema()["properties"]["status"]["properties"]
    assert set(status) == _typed_fields(schedule.ScheduleStatus)
    assert set(status["active"]["items"]["properties"]) == _typed_fields(schedule.RunRef)
    assert set(status["lastRun"]["properties"]) == _typed_fields(schedule.LastRun)
    assert set(status["lastSkipped"]["properties"]) == _typed_fields(schedule.Skipped)
    assert set(status["conditions"]["items"]["properties"]) == _typed_fields(schedule.Condition)


def test_names_printer_columns_and_status_subresource():
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["names"]["kind"] == schedule.KIND
    assert crd["spec"]["names"]["plural"] == schedule.PLURAL
    assert crd["spec"]["names"]["shortNames"] == ["smlj"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {col["name"]: col["jsonPath"] for col in version["additionalPrinterColumns"]}
    assert columns["Last Schedule"] == ".status.lastScheduleTime"
    assert columns["Next Run"] == ".status.nextScheduleTime"
    assert columns["Last Run"] == ".status.lastRun.phase"
