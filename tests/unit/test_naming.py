import pytest

from mljob import constants as c
from mljob.naming import is_dns1035_label, ray_cluster_name, step_child_name


@pytest.mark.parametrize(
    ("mljob", "step", "run", "attempt", "kind", "expected"),
    [
        ("churn", "prepare", 1, 1, c.SPARK_KIND, "churn-prepare-r1"),
        ("churn", "train", 3, 1, c.RAY_JOB_KIND, "churn-train-r3"),
        ("churn", "train", 1, 2, c.RAY_JOB_KIND, "churn-train-r1-a2"),
    ],
)
def test_readable_names(mljob, step, run, attempt, kind, expected):
    assert step_child_name(mljob, step, run, attempt, kind) == expected


@pytest.mark.parametrize("kind", [c.SPARK_KIND, c.RAY_JOB_KIND])
@pytest.mark.parametrize("mljob", ["a" * 63, "9lives", "team.churn", "x" * 40])
def test_long_or_odd_names_fit_the_kind_limit_and_are_dns1035(kind, mljob):
    name = step_child_name(mljob, "s" * 30, 12, 10, kind)
    assert is_dns1035_label(name, c.NAME_LIMIT_OF_KIND[kind]), name
    assert name.endswith("-r12-a10")
    assert name == step_child_name(mljob, "s" * 30, 12, 10, kind)  # deterministic


def test_shortened_names_of_different_inputs_differ():
    a = step_child_name("a" * 60, "one", 1, 1, c.RAY_JOB_KIND)
    b = step_child_name("a" * 60, "two", 1, 1, c.RAY_JOB_KIND)
    assert a != b and len(a) <= 47


def test_ray_cluster_name_never_collides_with_a_step_child():
    assert ray_cluster_name("churn", 1) == "churn-r1-ray"
    assert len(ray_cluster_name("c" * 63, 100)) <= c.RAY_CLUSTER_NAME_MAX
    # a step literally named "r1-ray" still gets a different name
    assert step_child_name("churn", "r1-ray", 1, 1, c.RAY_JOB_KIND) != ray_cluster_name("churn", 1)


def test_a_shortened_name_uses_the_whole_limit_and_keeps_a_readable_prefix():
    name = step_child_name("churn" * 10, "train", 1, 1, c.RAY_JOB_KIND)  # 59 chars: over 47
    assert len(name) == c.RAY_JOB_NAME_MAX and name.startswith("churnchurn")
    assert is_dns1035_label(name, c.RAY_JOB_NAME_MAX)


def test_the_kinds_own_limit_applies_not_dns1035s_63():
    name = step_child_name("c" * 44, "train", 1, 1, c.RAY_JOB_KIND)  # 53 chars: valid, too long
    assert len(name) == c.RAY_JOB_NAME_MAX and name.endswith("-r1")


def test_a_cut_never_leaves_a_double_dash():
    # the readable prefix is cut right after a '-': it is dropped, not doubled with the hash's
    for cut in range(20, 40):
        name = step_child_name("a" * cut + "-" + "b" * 40, "s", 1, 1, c.RAY_JOB_KIND)
        assert "--" not in name, name


def test_odd_characters_become_dashes_and_letters_stay():
    name = step_child_name("Team_Churn", "train", 1, 1, c.RAY_JOB_KIND)
    assert name.startswith("team-churn-train-") and name.endswith("-r1"), name
    # a name starting with a letter gets no extra prefix; one starting otherwise gets an 'm'
    assert step_child_name("a1_b", "s", 1, 1, c.RAY_JOB_KIND).startswith("a1-b-s-")
    assert step_child_name("9lives", "s", 1, 1, c.RAY_JOB_KIND).startswith("m9lives-s-")


def test_a_dns1035_label_is_63_characters_at_most_by_default():
    assert is_dns1035_label("a" * 63) and not is_dns1035_label("a" * 64)
