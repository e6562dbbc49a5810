"""The structural-schema check (mljob.schemas): the Kubernetes rules plain JSON Schema does not
know, table-driven on a small CRD-like schema, then on the real vendored CRDs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mljob import builders, kinds, schemas
from mljob import constants as c
from mljob.testing.corpus import mljob, ray_step, spark_step

QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
INT_OR_STRING = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
EMBEDDED_META = {  # what controller-gen's generateEmbeddedObjectMeta writes for pod templates
    "type": "object",
    "properties": {"labels": STRING_MAP, "annotations": STRING_MAP, "name": {"type": "string"}},
}


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


# A CRD version's openAPIV3Schema in the shape controller-gen writes, one field per rule.
CRD_SCHEMA = obj(
    apiVersion={"type": "string"},
    kind={"type": "string"},
    metadata={"type": "object"},
    spec={
        **obj(
            mode={"type": "string", "enum": ["cluster", "client"]},
            replicas={"type": "integer", "format": "int32", "minimum": 0},
            port=INT_OR_STRING,
            cpu={**INT_OR_STRING, "pattern": QUANTITY},
            raw={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            partial={**obj(known={"type": "string"}), "x-kubernetes-preserve-unknown-fields": True},
            selector=STRING_MAP,
            deep=obj(a=obj(b=obj(c={"type": "integer"}))),
            note={"type": "string", "nullable": True},
            notes={"type": "array", "items": {"type": "string", "nullable": True}},
            names={"type": "array", "items": {"type": "string"}},
            tags={"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            template=obj(
                metadata=EMBEDDED_META,
                spec=obj(
                    containers={
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            **obj(
                                name={"type": "string"},
                                image={"type": "string"},
                                ports={
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                                    "items": {
                                        **obj(
                                            containerPort={"type": "integer"},
                                            protocol={"type": "string", "default": "TCP"},
                                        ),
                                        "required": ["containerPort"],
                                    },
                                },
                            ),
                            "required": ["name"],
                        },
                    }
                ),
            ),
            embedded={
                **obj(spec=obj(x={"type": "integer"})),
                "x-kubernetes-embedded-resource": True,
            },
            wrapper=obj(metadata={"type": "object"}),
            rule={"type": "string", "x-kubernetes-validations": [{"rule": "self == 'never'"}]},
            when={"type": "string", "format": "date-time"},
        ),
        "required": ["mode"],
    },
)
VALID: dict[str, Any] = {
    "apiVersion": "example.com/v1",
    "kind": "Thing",
    "metadata": {"name": "t", "namespace": "n", "labels": {"a": "b"}, "uid": "u"},
    "spec": {"mode": "cluster"},
}


def with_spec(**fields: Any) -> dict[str, Any]:
    thing = copy.deepcopy(VALID)
    thing["spec"].update(fields)
    return thing


CONTAINER = {"name": "main", "image": "x"}

# (id, object, the errors as `path: message`)
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("valid", VALID, []),
    # unknown fields, at several depths
    ("unknown-at-root", {**VALID, "extra": 1}, ["extra: unknown field"]),
    ("unknown-in-spec", with_spec(bogus=1), ["spec.bogus: unknown field"]),
    ("unknown-deep", with_spec(deep={"a": {"b": {"z": 1}}}), ["spec.deep.a.b.z: unknown field"]),
    (
        "unknown-in-list-item",
        with_spec(template={"spec": {"containers": [{**CONTAINER, "imagee": "y"}]}}),
        ["spec.template.spec.containers[0].imagee: unknown field"],
    ),
    ("two-unknown", with_spec(b=1, a=2), ["spec.a: unknown field", "spec.b: unknown field"]),
    # wrong types, enums, bounds, required
    ("string-for-int", with_spec(replicas="3"), ["spec.replicas: must be an integer, got str"]),
    ("bool-for-int", with_spec(replicas=True), ["spec.replicas: must be an integer, got bool"]),
    ("below-minimum", with_spec(replicas=-1), ["spec.replicas: must be >= 0, got -1"]),
    ("map-value", with_spec(selector={"k": 1}), ["spec.selector.k: must be a string, got int"]),
    ("enum", with_spec(mode="local"), ["spec.mode: must be one of cluster, client, got 'local'"]),
    ("required", {**VALID, "spec": {}}, ["spec.mode: required"]),
    (
        "required-in-list-item",
        with_spec(template={"spec": {"containers": [{"image": "x"}]}}),
        ["spec.template.spec.containers[0].name: required"],
    ),
    # x-kubernetes-int-or-string
    ("int-or-string-int", with_spec(port=8080), []),
    ("int-or-string-string", with_spec(port="http"), []),
    (
        "int-or-string-bool",
        with_spec(port=True),
        ["spec.port: must be an integer or a string, got bool"],
    ),
    (
        "int-or-string-float",
        with_spec(port=1.5),
        ["spec.port: must be an integer or a string, got float"],
    ),
    ("quantity-int", with_spec(cpu=2), []),
    ("quantity-string", with_spec(cpu="500m"), []),
    (
        "quantity-bad",
        with_spec(cpu="lots"),
        ["spec.cpu: not a Kubernetes quantity (e.g. \"4\", 500m, 16Gi): 'lots'"],
    ),
    # x-kubernetes-preserve-unknown-fields
    ("preserve-subtree", with_spec(raw={"any": {"thing": [1, {"x": None}]}}), []),
    ("preserve-with-properties", with_spec(partial={"known": "k", "other": 1}), []),
    (
        "preserve-still-types-known",
        with_spec(partial={"known": 1}),
        ["spec.partial.known: must be a string, got int"],
    ),
    # ObjectMeta: root, embedded resource, pod template, bare nested metadata
    (
        "root-metadata",
        {**VALID, "metadata": {**VALID["metadata"], "annotations": {"x": "y"}, "generation": 2}},
        [],
    ),
    (
        "root-label-value",
        {**VALID, "metadata": {"name": "t", "labels": {"a": 1}}},
        ["metadata.labels.a: must be a string, got int"],
    ),
    (
        "pod-template-metadata",
        with_spec(template={"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}}}),
        [],
    ),
    (
        "pod-template-metadata-unknown",  # the API server prunes what the generated schema lacks
        with_spec(template={"metadata": {"ownerReferences": []}}),
        ["spec.template.metadata.ownerReferences: unknown field"],
    ),
    (
        "embedded-resource",
        with_spec(
            embedded={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "labels": {"a": "b"}},
                "spec": {"x": 1},
            }
        ),
        [],
    ),
    (
        "embedded-unknown",
        with_spec(embedded={"spec": {"y": 1}}),
        ["spec.embedded.spec.y: unknown field"],
    ),
    ("bare-nested-metadata", with_spec(wrapper={"metadata": {"labels": {"a": "b"}, "x": 1}}), []),
    # nullable, and the nulls the API server prunes
    ("nullable", with_spec(note=None), []),
    ("null-pruned", with_spec(replicas=None), []),
    ("nullable-item", with_spec(notes=[None, "a"]), []),  # list items are not pruned
    ("null-item", with_spec(names=[None]), ["spec.names[0]: must be a string, got null"]),
    ("null-required", {**VALID, "spec": {"mode": None}}, ["spec.mode: required"]),
    # list types
    ("set", with_spec(tags=["a", "b"]), []),
    (
        "set-duplicate",
        with_spec(tags=["a", "a"]),
        ["spec.tags: duplicate items (the list is a set)"],
    ),
    (
        "map-duplicate-key",
        with_spec(template={"spec": {"containers": [CONTAINER, {**CONTAINER, "image": "y"}]}}),
        ["spec.template.spec.containers[1]: duplicate entry (name='main'), also at [0]"],
    ),
    (
        "map-key-default",
        with_spec(
            template={
                "spec": {
                    "containers": [
                        {
                            **CONTAINER,
                            "ports": [
                                {"containerPort": 80},
                                {"containerPort": 80, "protocol": "TCP"},
                            ],
                        }
                    ]
                }
            }
        ),
        [
            "spec.template.spec.containers[0].ports[1]: duplicate entry "
            "(containerPort=80, protocol='TCP'), also at [0]"
        ],
    ),
    (
        "map-distinct-keys",
        with_spec(
            template={
                "spec": {
                    "containers": [
                        {
                            **CONTAINER,
                            "ports": [
                                {"containerPort": 80},
                                {"containerPort": 80, "protocol": "UDP"},
                            ],
                        }
                    ]
                }
            }
        ),
        [],
    ),
    # what cannot or need not be checked offline
    ("cel-ignored", with_spec(rule="anything"), []),
    ("format-ignored", with_spec(when="not a date"), []),
]


@pytest.mark.parametrize(
    ("thing", "expected"), [(o, e) for _, o, e in CASES], ids=[i for i, _, _ in CASES]
)
def test_structural_schema_rules(thing, expected):
    validator = schemas.compile_schema(CRD_SCHEMA)
    assert [str(e) for e in schemas.check(validator, thing)] == expected


def test_conversion_does_not_change_the_crd_schema():
    before = copy.deepcopy(CRD_SCHEMA)
    schemas.compile_schema(CRD_SCHEMA)
    assert before == CRD_SCHEMA


@pytest.mark.parametrize(
    ("path", "text"),
    [((), "(root)"), (("spec",), "spec"), (("spec", "volumes", 0, "name"), "spec.volumes[0].name")],
)
def test_paths_are_written_as_validation_writes_them(path, text):
    assert schemas.format_path(path) == text


# --- the real vendored CRDs --------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(schemas.CHILD_CRD_FILES))
def test_every_child_kind_compiles_once_for_the_version_the_builders_write(kind):
    validator = schemas.validator_for(kinds.BY_KIND[kind].api_version, kind)
    assert validator is schemas.validator_for(kinds.BY_KIND[kind].api_version, kind)


def test_preload_compiles_every_child_kind():
    schemas.validator_for.cache_clear()
    schemas.preload()
    assert schemas.validator_for.cache_info().currsize == len(schemas.CHILD_CRD_FILES)


def test_a_child_of_another_group_is_refused():
    with pytest.raises(ValueError, match="not example"):
        schemas.validator_for("example.com/v1", c.RAY_JOB_KIND)


def real_children() -> list[dict[str, Any]]:
    job = mljob([spark_step("prepare"), ray_step("train")])
    return [builders.build_step_child(job, step, 1, 1) for step in job["spec"]["steps"]]


def test_real_crds_accept_built_children_and_refuse_what_the_api_server_refuses():
    app, ray_job = real_children()
    assert schemas.child_errors(app) == [] and schemas.child_errors(ray_job) == []
    app["spec"]["driver"]["template"] = {"spec": {"anything": [1]}}  # preserve-unknown-fields
    assert schemas.child_errors(app) == []
    app["spec"]["driver"]["coress"] = 1
    app["spec"]["type"] = "Go"
    assert [str(e) for e in schemas.child_errors(app)] == [
        "spec.driver.coress: unknown field",
        "spec.type: must be one of Java, Python, Scala, R, got 'Go'",
    ]
    head = ray_job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    head["metadata"]["annotations"] = {"a": "b"}
    head["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 2  # int-or-string
    assert schemas.child_errors(ray_job) == []
    head["spec"]["containers"][0]["env"].append({"name": "MLJOB_RUN", "value": "2"})
    last = len(head["spec"]["containers"][0]["env"]) - 1
    assert [str(e) for e in schemas.child_errors(ray_job)] == [
        f"spec.rayClusterSpec.headGroupSpec.template.spec.containers[0].env[{last}]: "
        "duplicate entry (name='MLJOB_RUN'), also at [1]"
    ]
