import pytest

from mljob.testing.corpus import BAD_MANIFESTS, mljob, spark_step
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
