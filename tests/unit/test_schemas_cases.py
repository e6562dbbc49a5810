"""mljob.schemas on small hand-written structural schemas: each Kubernetes rule of the module
docstring, and the exact words of each error (validation.py's style), one case at a time."""

from __future__ import annotations

from typing import Any

import pytest

from mljob.schemas import SchemaError, check, compile_schema

Obj = dict[str, Any]


def errors(schema: Obj, obj: Any) -> list[SchemaError]:
    return check(compile_schema(schema), obj)


def texts(schema: Obj, obj: Any) -> list[str]:
    return [str(e) for e in errors(schema, obj)]


def obj_schema(**properties: Obj) -> Obj:
    return {"type": "object", "properties": properties}


# --- ObjectMeta ----------------------------------------------------------------------------------
def test_root_metadata_is_object_meta_even_when_the_crd_spells_it_out() -> None:
    schema = obj_schema(metadata=obj_schema(name={"type": "string"}))
    assert errors(schema, {"metadata": {"name": "x", "labels": {"app": "churn"}}}) == []
    assert texts(schema, {"metadata": {"labels": {"app": 1}}}) == [
        "metadata.labels.app: must be a string, got int"
    ]


def test_a_bare_nested_metadata_is_object_meta() -> None:
    schema = obj_schema(template=obj_schema(metadata={"type": "object"}))
    assert texts(schema, {"template": {"metadata": {"labels": {"app": 1}}}}) == [
        "template.metadata.labels.app: must be a string, got int"
    ]


def test_a_nested_metadata_with_a_value_schema_keeps_it() -> None:
    """RayJob spec.metadata is a map of strings, not ObjectMeta."""
    strings = {"type": "object", "additionalProperties": {"type": "string"}}
    schema = obj_schema(spec=obj_schema(metadata=strings))
    assert texts(schema, {"spec": {"metadata": {"labels": {"a": "b"}}}}) == [
        "spec.metadata.labels: must be a string, got dict"
    ]


def test_an_embedded_resource_takes_api_version_kind_and_metadata() -> None:
    schema = obj_schema(
        template={**obj_schema(spec={"type": "object"}), "x-kubernetes-embedded-resource": True}
    )
    ok = {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}
    assert errors(schema, ok) == []
    assert texts(schema, {"template": {"apiVersion": 1, "kind": 2}}) == [
        "template.apiVersion: must be a string, got int",
        "template.kind: must be a string, got int",
    ]


# --- unknown fields ------------------------------------------------------------------------------
def test_unknown_fields_are_named_with_their_keyword() -> None:
    schema = obj_schema(a={"type": "string"})
    assert errors(schema, {"a": "x", "b": 1}) == [
        SchemaError(("b",), "unknown field", "additionalProperties")
    ]


def test_additional_properties_false_without_properties_refuses_every_field() -> None:
    assert texts({"type": "object", "additionalProperties": False}, {"x": 1}) == [
        "x: unknown field"
    ]


def test_a_value_schema_for_additional_properties_is_converted_too() -> None:
    values = {"type": "object", "additionalProperties": obj_schema(n={"type": "integer"})}
    assert texts(values, {"k": {"n": 1, "m": 2}}) == ["k.m: unknown field"]


# --- combinators ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        ({"allOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"a": 1, "b": 2}, {"a": 1}),
        ({"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"b": 2}, {"c": 3}),
        ({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"a": 1}, {"a": 1, "b": 2}),
        ({"not": {"required": ["a"]}}, {"b": 1}, {"a": 1}),
    ],
)
def test_combinators_are_kept(schema: Obj, good: Obj, bad: Obj) -> None:
    assert errors({"type": "object", **schema}, good) == []
    assert errors({"type": "object", **schema}, bad) != []


def test_combinators_are_converted_with_the_kubernetes_rules() -> None:
    """A subschema of anyOf listing properties refuses unknown fields as any other."""
    schema = {"type": "object", "anyOf": [obj_schema(a={"type": "string"})]}
    assert errors(schema, {"a": "x"}) == []
    assert errors(schema, {"a": "x", "b": 1}) != []


def test_int_or_string_is_an_integer_or_a_string() -> None:
    schema = obj_schema(
        port={
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        }
    )
    assert errors(schema, {"port": 8080}) == [] and errors(schema, {"port": "http"}) == []
    assert texts(schema, {"port": 1.5}) == ["port: must be an integer or a string, got float"]


# --- nulls ---------------------------------------------------------------------------------------
def test_nullable_allows_null_where_nulls_are_not_pruned() -> None:
    """Nulls in maps are dropped before the check (the API server prunes them); in a list they
    stay, so there `nullable` matters."""
    nullable = {"type": "array", "items": {"type": "string", "nullable": True}}
    assert errors(nullable, ["a", None]) == []
    assert texts(nullable, [5]) == ["[0]: must be a string, got int"]
    strict = {"type": "array", "items": {"type": "string"}}
    assert texts(strict, [None]) == ["[0]: must be a string, got null"]


def test_a_nullable_int_or_string_allows_null_too() -> None:
    schema = {
        "type": "array",
        "items": {"x-kubernetes-int-or-string": True, "nullable": True},
    }
    assert errors(schema, [None, 1, "a"]) == []


def test_a_nullable_enum_allows_null_and_names_the_values() -> None:
    schema = {"type": "array", "items": {"type": "string", "enum": ["a", "b"], "nullable": True}}
    assert errors(schema, [None, "a"]) == []
    assert texts(schema, ["c"]) == ["[0]: must be one of a, b, got 'c'"]


# --- lists ---------------------------------------------------------------------------------------
def list_map(**extra: Any) -> Obj:
    item = obj_schema(name={"type": "string"}, protocol={"type": "string", "default": "TCP"})
    return {"type": "array", "items": item, "x-kubernetes-list-type": "map", **extra}


def test_a_list_map_refuses_two_items_with_the_same_keys_defaults_applied() -> None:
    schema = list_map(**{"x-kubernetes-list-map-keys": ["name", "protocol"]})
    items = [{"name": "a"}, {"name": "a", "protocol": "UDP"}, {"name": "a", "protocol": "TCP"}]
    assert texts(schema, items) == ["[2]: duplicate entry (name='a', protocol='TCP'), also at [0]"]


def test_a_list_map_checks_every_item_after_one_of_another_type() -> None:
    schema = list_map(**{"x-kubernetes-list-map-keys": ["name"]})
    found = texts(schema, ["x", {"name": "a"}, {"name": "a"}])
    assert "[2]: duplicate entry (name='a'), also at [1]" in found


def test_a_list_map_without_keys_is_not_checked_for_duplicates() -> None:
    assert errors(list_map(), [{"name": "a"}, {"name": "a"}]) == []


def test_a_set_refuses_duplicates() -> None:
    schema = {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
    assert texts(schema, ["a", "a"]) == ["(root): duplicate items (the list is a set)"]


# --- the words of each error ---------------------------------------------------------------------
def test_required_names_only_the_missing_fields() -> None:
    schema = {"type": "object", "required": ["a", "b"]}
    assert errors(schema, {"a": 1}) == [SchemaError(("b",), "required", "required")]


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        ({"type": "string", "pattern": "^a+$"}, "b", "must match ^a+$, got 'b'"),
        ({"type": "integer", "minimum": 1}, 0, "must be >= 1, got 0"),
        ({"type": "integer", "maximum": 5}, 7, "must be <= 5, got 7"),
        ({"type": "string", "minLength": 2}, "a", "at least 2 characters, got 1"),
        ({"type": "string", "maxLength": 3}, "abcde", "at most 3 characters, got 5"),
        ({"type": "array", "minItems": 1}, [], "at least 1 items, got 0"),
        ({"type": "array", "maxItems": 2}, [1, 2, 3], "at most 2 items, got 3"),
        ({"type": "boolean"}, "yes", "must be true or false, got str"),
        ({"type": "object"}, [], "must be a mapping, got list"),
    ],
)
def test_each_keyword_in_validation_words(schema: Obj, value: Any, message: str) -> None:
    assert texts(obj_schema(f=schema), {"f": value}) == [f"f: {message}"]
