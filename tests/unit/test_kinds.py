"""The child-kind table agrees with the vendored upstream CRDs, the chart's RBAC and the code
that still keeps its own per-kind values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mljob import admission, builders, handlers, kinds, metrics, schemas, states, third_party
from mljob import constants as c
from mljob.local import plan as local_plan
from mljob.testing.corpus import mljob, ray_step, spark_step

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "charts" / "mljob-operator" / "templates" / "_helpers.tpl"
VENDORED = {name for files in third_party.CRD_FILES.values() for name in files}


def crd_of(kind: kinds.ChildKind) -> dict:
    file_name = f"{kind.group}_{kind.plural}.yaml"  # the upstream file naming (controller-gen)
    assert file_name in VENDORED, file_name
    return third_party.load_crd(file_name)


@pytest.mark.parametrize("kind", kinds.CHILD_KINDS, ids=lambda k: k.kind)
def test_each_kind_is_a_served_version_of_its_vendored_crd(kind):
    crd = crd_of(kind)
    assert crd["spec"]["group"] == kind.group
    assert crd["spec"]["names"]["kind"] == kind.kind
    assert crd["spec"]["names"]["plural"] == kind.plural
    served = {v["name"] for v in crd["spec"]["versions"] if v.get("served")}
    assert kind.version in served
    assert kind.api_version == f"{kind.group}/{kind.version}"
    assert schemas.CHILD_CRD_FILES[kind.kind] == f"{kind.group}_{kind.plural}.yaml"


@pytest.mark.parametrize("kind", kinds.CHILD_KINDS, ids=lambda k: k.kind)
def test_a_suspendable_kind_has_spec_suspend_in_its_crd(kind):
    crd = crd_of(kind)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == kind.version)
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    if kind is kinds.RAY_SERVICE:  # deliberately not: suspending tears a serving model down
        assert "suspend" in spec and not kind.suspendable
        return
    assert ("suspend" in spec) == kind.suspendable


def test_the_chart_lets_the_operator_manage_every_kind():
    text = HELPERS.read_text()
    for kind in kinds.CHILD_KINDS:
        rule = re.search(
            rf"- apiGroups: \[{re.escape(kind.group)}\]\s*\n\s*resources: \[{kind.plural}\]\s*\n"
            r"\s*verbs: \[([^\]]*)\]",
            text,
        )
        assert rule, f"no RBAC rule for {kind.plural}.{kind.group} in {HELPERS.name}"
        verbs = {v.strip() for v in rule.group(1).split(",")}
        assert {"get", "list", "watch", "create", "delete", "patch"} <= verbs, kind.plural


def test_the_table_is_the_one_the_rest_of_the_code_uses():
    assert [k.kind for k in kinds.CHILD_KINDS] == [
        c.SPARK_KIND,
        c.RAY_JOB_KIND,
        c.RAY_CLUSTER_KIND,
        c.RAY_SERVICE_KIND,
    ]
    assert {k.kind: k.name_limit for k in kinds.CHILD_KINDS} == c.NAME_LIMIT_OF_KIND
    assert {
        k.kind: (k.group, k.version, k.plural) for k in kinds.CHILD_KINDS
    } == handlers.CHILD_RESOURCES
    assert len(set(handlers.INDEX_NAMES)) == len(kinds.CHILD_KINDS) + 1
    assert metrics.ENGINES == {
        c.SPARK_KIND: "spark",
        c.RAY_JOB_KIND: "ray",
        c.RAY_SERVICE_KIND: "serve",
    }
    assert {k.engine for k in kinds.STEP_KINDS} == {
        local_plan.SPARK_ENGINE,
        local_plan.RAY_ENGINE,
        local_plan.SERVE_ENGINE,
    }


def test_kopf_registers_one_index_and_one_event_handler_per_kind():
    import kopf

    registry = kopf.get_default_registry()
    for kind, index_id in zip(kinds.CHILD_KINDS, handlers.CHILD_INDEXES, strict=True):
        resource = kopf.Resource(kind.group, kind.version, kind.plural)
        indexers = registry._indexing.get_all_handlers()
        assert [h.id for h in indexers if h.selector.check(resource)] == [index_id]
        watchers = registry._watching.get_all_handlers()
        assert [h.id for h in watchers if h.selector.check(resource)] == [f"{kind.plural}_event"]


def test_builders_write_each_kinds_api_version_and_name_limit():
    shared = mljob([spark_step("prep"), ray_step("train")], rayCluster={"rayVersion": "2.49.0"})
    objects = [builders.build_step_child(shared, step, 1, 1) for step in shared["spec"]["steps"]]
    objects.append(kinds.RAY_CLUSTER.build(shared, 1))
    for obj in objects:
        kind = kinds.BY_KIND[obj["kind"]]
        assert obj["apiVersion"] == kind.api_version
        assert len(obj["metadata"]["name"]) <= kind.name_limit
    assert [o["kind"] for o in objects] == [c.SPARK_KIND, c.RAY_JOB_KIND, c.RAY_CLUSTER_KIND]


def test_step_dispatch():
    assert kinds.of_step(spark_step("a")) is kinds.SPARK_APPLICATION
    assert kinds.of_step(ray_step("b")) is kinds.RAY_JOB
    assert builders.step_kind(spark_step("a")) == c.SPARK_KIND
    assert local_plan.engine_of(ray_step("b")) == local_plan.RAY_ENGINE
    assert states.child_state({"kind": c.SPARK_KIND}).phase == c.PENDING
    assert states.child_state({"kind": c.RAY_JOB_KIND}).phase == c.PENDING
    with pytest.raises(ValueError, match="not a step child kind"):
        states.child_state({"kind": c.RAY_CLUSTER_KIND})


@pytest.mark.parametrize(
    ("steps", "shared", "expected"),
    [
        (["spark"], False, ["create sparkapplications.sparkoperator.k8s.io"]),
        (["ray"], True, ["create rayjobs.ray.io", "create rayclusters.ray.io"]),
        (["spark"], True, ["create sparkapplications.sparkoperator.k8s.io"]),  # no Ray step
        (
            ["ray", "spark"],
            False,
            ["create sparkapplications.sparkoperator.k8s.io", "create rayjobs.ray.io"],
        ),
    ],
)
def test_admission_asks_for_every_kind_the_mljob_produces(steps, shared, expected):
    made = [spark_step(f"s{i}") if e == "spark" else ray_step(f"s{i}") for i, e in enumerate(steps)]
    job = mljob(made, **({"rayCluster": {"rayVersion": "2.49.0"}} if shared else {}))
    assert [str(p) for p in admission.child_permissions(job)] == expected


def test_a_step_without_an_engine_field_is_taken_as_ray():
    assert kinds.of_step({"name": "x"}) is kinds.RAY_JOB


def test_child_state_names_a_kind_it_cannot_map():
    with pytest.raises(ValueError, match="not a step child kind: 'RayCluster'"):
        kinds.child_state({"kind": "RayCluster", "status": {}})
