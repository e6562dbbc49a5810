"""Offline checks of generated children against the real upstream CRD schemas.

The operator creates children with strict field validation, so the API server refuses a child
with an unknown or ill-typed field, most often one a `template` merged in, after the pipeline
started. This module applies the same structural schemas (the vendored CRDs in
`mljob.third_party`) before anything is created: `validate()` runs it on every child the builders
would create, so `kubectl apply` (through the webhook) and `mljob validate` report the error.

A Kubernetes structural schema is OpenAPI v3 plus rules plain JSON Schema does not know; each CRD
version's schema is converted once (`to_json_schema`) into a JSON Schema that `jsonschema`
checks with the Kubernetes meaning:

- unknown fields are errors where an object lists `properties` and neither sets
  `x-kubernetes-preserve-unknown-fields: true` nor gives `additionalProperties` (the API server
  prunes them, and strict field validation turns pruning into an error);
- `x-kubernetes-int-or-string: true` is an integer or a string;
- `x-kubernetes-embedded-resource: true` also allows `apiVersion`, `kind` and `metadata`;
- `metadata` at the root and of embedded resources is ObjectMeta, which the API server checks
  itself (the CRDs only say `type: object`), so it is checked loosely here; a nested `metadata`
  given only as `type: object` is treated the same way, never rejecting labels or annotations;
- `nullable: true` allows null; other nulls in maps are pruned by the API server before
  validation, so they are dropped here too;
- `x-kubernetes-list-type: set` items are unique, `map` items are unique by their
  `x-kubernetes-list-map-keys` (key defaults applied);
- `format` is ignored (int32/int64 ranges and date-time appear only where we never write);
- CEL rules (`x-kubernetes-validations`) cannot be evaluated offline without a CEL runtime with
  the Kubernetes libraries: they are ignored; the rules a merged template can break are
  hand-written in validation.py (the KubeRay and Spark operator rules).

Lenient where unsure: a check that rejected what the API server accepts would refuse valid
MLJobs, so every rule above errs on accepting.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema.protocols
from jsonschema.exceptions import ValidationError

from mljob import constants as c
from mljob import kinds, third_party

Obj = dict[str, Any]
Path = tuple[str | int, ...]

# The vendored CRD of each child kind the builders create.
CHILD_CRD_FILES = {
    c.SPARK_KIND: "sparkoperator.k8s.io_sparkapplications.yaml",
    c.RAY_JOB_KIND: "ray.io_rayjobs.yaml",
    c.RAY_CLUSTER_KIND: "ray.io_rayclusters.yaml",
    c.RAY_SERVICE_KIND: "ray.io_rayservices.yaml",
}

# JSON Schema keywords carried over as they are (after their subschemas are converted).
_PLAIN_KEYWORDS = (
    "type", "required", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "uniqueItems", "multipleOf", "minProperties", "maxProperties",
)  # fmt: skip
_STRING_MAP: Obj = {"type": "object", "additionalProperties": {"type": "string"}}
# ObjectMeta as far as a child's author writes it; the API server checks the rest.
OBJECT_META: Obj = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}
_LIST_MAP_KEYS = "x-mljob-list-map-keys"  # our keyword: {"keys": [...], "defaults": {...}}
_QUANTITY_HINT = "[KMGTPE]i"  # in the pattern of every resource.Quantity field


@dataclass(frozen=True)
class SchemaError:
    """One problem of a child: where (a path into the child object) and what."""

    path: Path
    message: str
    keyword: str = ""  # the JSON Schema keyword that failed, e.g. "required"

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}"


def format_path(path: Path) -> str:
    """('spec', 'volumes', 0, 'name') -> 'spec.volumes[0].name', as validation.py writes paths."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(root)"


def child_errors(child: Obj) -> list[SchemaError]:
    """Every structural-schema error the API server would report for this child (CEL aside)."""
    validator = validator_for(child["apiVersion"], child["kind"])
    return check(validator, child)


def check(validator: jsonschema.protocols.Validator, obj: Any) -> list[SchemaError]:
    """Errors of obj against a converted schema, sorted by path, in validation.py's words."""
    errors = [e for error in validator.iter_errors(drop_nulls(obj)) for e in _explain(error)]
    return sorted(set(errors), key=lambda e: (format_path(e.path), e.message))


@functools.cache
def validator_for(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """The compiled schema of one child kind and version: loaded, converted and cached once per
    process (the CRD files are about 1 MB each; loading one takes a few hundred ms)."""
    crd = third_party.load_crd(CHILD_CRD_FILES[kind])
    group, _, version = api_version.rpartition("/")
    if group != crd["spec"]["group"]:
        raise ValueError(f"{kind} is in group {crd['spec']['group']}, not {group}")
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]
    return compile_schema(schema["openAPIV3Schema"])


def preload() -> None:
    """Load and compile every child kind's schema now (about 1 s, mostly YAML parsing): the
    operator can call it at startup, off the event loop, so that its first validate() does not
    block kopf for that long."""
    for kind in CHILD_CRD_FILES:
        validator_for(kinds.BY_KIND[kind].api_version, kind)


def compile_schema(openapi: Obj) -> jsonschema.protocols.Validator:
    """A validator for a CRD version's openAPIV3Schema, with the Kubernetes rules."""
    validator: jsonschema.protocols.Validator = _Validator(to_json_schema(openapi, root=True))
    return validator


def to_json_schema(schema: Obj, *, root: bool = False) -> Obj:
    """A Kubernetes structural schema as plain JSON Schema (rules in the module docstring)."""
    out: Obj = {k: schema[k] for k in _PLAIN_KEYWORDS if k in schema}
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]  # the anyOf that says the same is dropped below
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema and not schema.get("x-kubernetes-int-or-string"):
            out[key] = [to_json_schema(s) for s in schema[key]]
    if "not" in schema:
        out["not"] = to_json_schema(schema["not"])
    if isinstance(schema.get("items"), dict):
        out["items"] = to_json_schema(schema["items"])
    _convert_list_type(schema, out)
    if schema.get("nullable"):
        _allow_null(out)
    properties = {
        name: OBJECT_META if _is_object_meta(name, sub, root) else to_json_schema(sub)
        for name, sub in (schema.get("properties") or {}).items()
    }
    if schema.get("x-kubernetes-embedded-resource"):
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties["metadata"] = OBJECT_META
    if properties:
        out["properties"] = properties
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = to_json_schema(additional)
    elif isinstance(additional, bool):
        out["additionalProperties"] = additional
    elif properties and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False  # pruned, so refused by strict field validation
    return out


def drop_nulls(value: Any) -> Any:
    """A copy without null map values: the API server prunes them before validating."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def _is_object_meta(name: str, sub: Obj, root: bool) -> bool:
    # ObjectMeta at the root, or a nested `metadata` the CRD leaves as a bare object. Ones with
    # generated properties (pod templates) or a value schema (RayJob spec.metadata, a map of
    # strings) are checked like any other object.
    bare = not sub.get("properties") and "additionalProperties" not in sub
    return name == "metadata" and (root or bare)


def _allow_null(out: Obj) -> None:
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list):
        out["type"] = [*kind, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]


def _convert_list_type(schema: Obj, out: Obj) -> None:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    elif list_type == "map" and schema.get("x-kubernetes-list-map-keys"):
        item_properties = (schema.get("items") or {}).get("properties") or {}
        keys = list(schema["x-kubernetes-list-map-keys"])
        defaults = {
            k: item_properties[k]["default"]
            for k in keys
            if "default" in (item_properties.get(k) or {})
        }
        out[_LIST_MAP_KEYS] = {"keys": keys, "defaults": defaults}


def _unique_list_map_keys(
    validator: Any, spec: Obj, instance: Any, schema: Obj
) -> Iterator[ValidationError]:
    """x-kubernetes-list-type: map: no two items with the same keys (defaults applied first)."""
    if not isinstance(instance, list):
        return
    seen: dict[str, int] = {}
    for i, item in enumerate(instance):
        if not isinstance(item, dict):
            continue
        values = {k: item.get(k, spec["defaults"].get(k)) for k in spec["keys"]}
        key = json.dumps(values, sort_keys=True)
        if key in seen:
            named = ", ".join(f"{k}={v!r}" for k, v in values.items() if v is not None)
            yield ValidationError(f"duplicate entry ({named}), also at [{seen[key]}]", path=(i,))
        seen.setdefault(key, i)


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, validators={_LIST_MAP_KEYS: _unique_list_map_keys}
)

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _json_type(value: Any) -> str:
    """The Python type name, as validation.py's messages say it (`got str`)."""
    return "null" if value is None else type(value).__name__


def _explain(error: ValidationError) -> Iterator[SchemaError]:
    """A jsonschema error in validation.py's terms; unknown and missing fields name the field."""
    path = tuple(error.absolute_path)
    # jsonschema types these as possibly unset; in an error from a validation they are set.
    kind: Any = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if kind == "additionalProperties" and value is False:
        known = schema.get("properties") or {}
        for key in instance:
            if key not in known:
                yield SchemaError((*path, key), "unknown field", kind)
    elif kind == "required":
        for key in value:
            if isinstance(instance, dict) and key not in instance:
                yield SchemaError((*path, key), "required", kind)
    elif kind == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted if t != "null")
        yield SchemaError(path, f"must be {names}, got {_json_type(instance)}")
    elif kind == "enum":
        allowed = ", ".join(str(v) for v in value if v is not None)
        yield SchemaError(path, f"must be one of {allowed}, got {instance!r}")
    elif kind == "pattern" and _QUANTITY_HINT in value:
        yield SchemaError(path, f'not a Kubernetes quantity (e.g. "4", 500m, 16Gi): {instance!r}')
    elif kind == "pattern":
        yield SchemaError(path, f"must match {value}, got {instance!r}")
    elif kind in ("minimum", "maximum"):
        bound = ">=" if kind == "minimum" else "<="
        yield SchemaError(path, f"must be {bound} {value}, got {instance!r}")
    elif kind in ("minLength", "maxLength", "minItems", "maxItems"):
        least = "at least" if kind.startswith("min") else "at most"
        unit = "characters" if kind.endswith("Length") else "items"
        yield SchemaError(path, f"{least} {value} {unit}, got {len(instance)}")
    elif kind == "uniqueItems":
        yield SchemaError(path, "duplicate items (the list is a set)")
    else:
        yield SchemaError(path, error.message)
