"""The status TypedDicts name exactly the fields of the CRD's status schema."""

from __future__ import annotations

from typing import Any, get_args, get_origin, get_type_hints, is_typeddict

import yaml

from mljob import status

CRD = "crds/mljob.io_mljobs.yaml"


def schema_status() -> dict[str, Any]:
    with open(CRD) as file:
        crd = yaml.safe_load(file)
    version = crd["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["status"]


def shape_of_schema(schema: dict[str, Any]) -> Any:
    """{field: shape} for objects, [shape] for arrays, the type name for scalars."""
    if schema.get("type") == "object" and "additionalProperties" in schema:
        return {str: shape_of_schema(schema["additionalProperties"])}  # a map
    if schema.get("type") == "object":
        return {k: shape_of_schema(v) for k, v in schema["properties"].items()}
    if schema.get("type") == "array":
        return [shape_of_schema(schema["items"])]
    return schema["type"]


SCALARS = {str: "string", int: "integer", bool: "boolean"}


def shape_of_type(hint: Any) -> Any:
    if is_typeddict(hint):
        return {k: shape_of_type(v) for k, v in get_type_hints(hint).items()}
    if get_origin(hint) is list:
        return [shape_of_type(get_args(hint)[0])]
    if get_origin(hint) is dict:
        return {str: shape_of_type(get_args(hint)[1])}
    return SCALARS[hint]


def test_the_status_types_are_the_crd_status_schema():
    assert shape_of_type(status.MLJobStatus) == shape_of_schema(schema_status())


def test_required_step_fields_are_always_written():
    # the planner writes these on every entry (steps.new_entry); the rest may be absent
    assert status.StepStatus.__required_keys__ == {
        "name",
        "kind",
        "child",
        "phase",
        "childState",
        "attempts",
        "message",
    }
