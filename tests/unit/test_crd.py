from pathlib import Path

import yaml

from mljob import constants as c
from mljob import validation

CRD = Path(__file__).resolve().parents[2] / "crds" / "mljob.io_mljobs.yaml"


def _walk(schema, path="(root)"):
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")


def test_every_field_has_a_description_for_kubectl_explain():
    version = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]
    missing = [
        p
        for p, s in _walk(version["schema"]["openAPIV3Schema"])
        if "description" not in s and not p.endswith(".metadata")
    ]
    assert missing == []


def test_names_and_printer_columns():
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["names"]["shortNames"] == ["mlj"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [col["name"] for col in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Step", "Progress", "Age"]


def _spec_schema():
    version = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_validate_knows_exactly_the_fields_of_the_schema():
    spec = _spec_schema()
    step = spec["properties"]["steps"]["items"]["properties"]
    assert set(spec["properties"]) == validation.SPEC_FIELDS
    assert set(step) == validation.STEP_FIELDS
    assert set(step["spark"]["properties"]) == validation.SPARK_FIELDS
    assert set(step["ray"]["properties"]) == validation.RAY_STEP_FIELDS
    assert set(spec["properties"]["rayCluster"]["properties"]) == validation.RAY_CLUSTER_FIELDS
    serve = step["serve"]["properties"]
    assert set(serve) == validation.SERVE_STEP_FIELDS
    assert set(serve["deployments"]["items"]["properties"]) == validation.SERVE_DEPLOYMENT_FIELDS
    assert set(serve["smoke"]["properties"]) == validation.SERVE_SMOKE_FIELDS
    assert serve["smoke"]["properties"]["method"]["enum"] == list(validation.SMOKE_METHODS)


def test_no_default_inside_list_items():
    """A schema default inside a list item makes kubectl apply and Argo CD see a diff on every
    re-apply (the server fills it in); defaults live in the operator instead."""
    version = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]
    walked = _walk(version["schema"]["openAPIV3Schema"])
    assert [p for p, s in walked if "[]" in p and "default" in s] == []


def test_lifecycle_bounds_match_the_code():
    spec = _spec_schema()
    step = spec["properties"]["steps"]["items"]["properties"]
    assert spec["properties"]["onSpecChange"]["enum"] == list(c.SPEC_CHANGE_POLICIES)
    for field in ("startDeadlineSeconds", "activeDeadlineSeconds"):
        assert step[field]["maximum"] == c.MAX_DEADLINE_SECONDS
    assert step["retries"]["maximum"] == c.MAX_RETRIES
    assert step["maxBackoffSeconds"]["maximum"] == c.MAX_BACKOFF_SECONDS
    assert spec["properties"]["activeDeadlineSeconds"]["maximum"] == c.MAX_DEADLINE_SECONDS
