from pathlib import Path

import yaml

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
