import pytest

from mljob.testing.corpus import (
    BAD_MANIFESTS,
    mljob,
    ray_step,
    shared_cluster_mljob,
    spark_step,
    template_heavy_mljob,
)
from mljob.validation import dependencies, find_cycle, validate


def test_valid_pipeline_has_no_errors():
    assert validate(mljob()) == []


def test_valid_dag_and_shared_cluster():
    steps = [
        spark_step("prepare"),
        {"name": "train", "ray": {"entrypoint": "python t.py"}},
        {"name": "tune", "ray": {"entrypoint": "python u.py"}, "dependsOn": ["prepare"]},
        spark_step("report", dependsOn=["train", "tune"]),
    ]
    assert validate(mljob(steps, rayCluster={"rayVersion": "2.49.0"})) == []


def test_templates_that_set_many_upstream_fields_are_valid():
    assert validate(template_heavy_mljob()) == []


WORKER = {"groupName": "w", "minReplicas": 0, "maxReplicas": 1, "rayStartParams": {}}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            {"headGroupSpec": {"bogusField": 1}},
            "spec.rayCluster.template: RayCluster spec.headGroupSpec.bogusField: unknown field",
        ),
        (  # a list in a template replaces the whole list: its items are the template's
            {
                "workerGroupSpecs": [
                    {**WORKER, "template": {"spec": {"containers": [{"name": "w", "tty": "y"}]}}}
                ]
            },
            "spec.rayCluster.template: RayCluster spec.workerGroupSpecs[0].template.spec"
            ".containers[0].tty: must be true or false, got str",
        ),
        (  # a required field missing in an object the template wrote
            {"autoscalerOptions": {"securityContext": {"seccompProfile": {}}}},
            "spec.rayCluster.template: RayCluster "
            "spec.autoscalerOptions.securityContext.seccompProfile.type: required",
        ),
    ],
)
def test_schema_errors_name_the_mljob_field_they_come_from(template, expected):
    assert validate(shared_cluster_mljob(template=template)) == [expected]


def test_schema_errors_outside_a_template_name_the_step():
    job = mljob([spark_step("prepare")])
    job["spec"]["steps"][0]["spark"]["volumes"] = [{"name": "v", "emptyDir": {"sizeLimit": []}}]
    assert validate(job) == [
        "spec.steps[0].spark: SparkApplication spec.volumes[0].emptyDir.sizeLimit: "
        "must be an integer or a string, got list"
    ]


def test_a_child_the_hand_written_rules_refuse_gets_no_second_message_from_the_schema():
    step = ray_step("train")
    step["ray"]["template"] = {"backoffLimit": "2"}  # also not an integer for the schema
    assert validate(mljob([step])) == ["spec.steps[0].ray.backoffLimit: must be >= 0"]


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [(m, e) for _, m, e in BAD_MANIFESTS],
    ids=[i for i, _, _ in BAD_MANIFESTS],
)
def test_bad_manifest_is_rejected_with_a_specific_message(manifest, expected):
    errors = validate(manifest)
    assert any(expected in e for e in errors), errors


def test_every_message_names_a_field_path():
    for _, manifest, _ in BAD_MANIFESTS:
        for error in validate(manifest):
            path = error.split(": ", 1)[0]
            assert path and " " not in path.replace("(root)", ""), error


def test_implicit_dependencies_follow_list_order_and_explicit_empty_means_none():
    steps = [spark_step("a"), spark_step("b"), spark_step("c", dependsOn=[])]
    assert dependencies(steps) == {"a": [], "b": ["a"], "c": []}


def test_cycle_through_an_implicit_dependency_is_found():
    steps = [spark_step("a", dependsOn=["b"]), spark_step("b")]
    assert find_cycle(steps) == ["a", "b", "a"]


def test_deep_chain_has_no_cycle():
    assert find_cycle([spark_step(f"s{i}") for i in range(50)]) == []
