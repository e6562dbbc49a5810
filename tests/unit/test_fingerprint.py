"""Step fingerprints and the cache records (mljob.fingerprint): pure, unit and property tests."""

from __future__ import annotations

import copy
import random

from hypothesis import given
from hypothesis import strategies as st

from mljob import fingerprint as fp
from mljob.testing.corpus import mljob, ray_step, spark_step


def three_steps() -> dict:
    """prepare -> train -> evaluate, plus `report` that depends on nothing."""
    return mljob(
        [
            spark_step("prepare", cache=True),
            ray_step("train", cache=True),
            ray_step("evaluate"),
            ray_step("report", dependsOn=[]),
        ]
    )["spec"]


ENGINE_FIELDS = {"entrypoint", "arguments", "rayVersion", "image", "sparkConf"}


def changed(spec: dict, step: str, **fields) -> dict:
    """A copy of `spec` with fields of one step set (engine fields in its spark/ray block)."""
    spec = copy.deepcopy(spec)
    target = next(s for s in spec["steps"] if s["name"] == step)
    engine = next(k for k in ("spark", "ray") if k in target)
    for key, value in fields.items():
        (target[engine] if key in ENGINE_FIELDS else target)[key] = value
    return spec


def diff(a: dict, b: dict) -> set[str]:
    before, after = fp.fingerprints(a), fp.fingerprints(b)
    return {name for name in before if before[name] != after[name]}


def test_a_step_change_changes_it_and_what_depends_on_it_only():
    spec = three_steps()
    assert diff(spec, changed(spec, "train", entrypoint="python /app/train.py --rounds 9")) == {
        "train",
        "evaluate",
    }
    assert diff(spec, changed(spec, "prepare", arguments=["--rows", "5"])) == {
        "prepare",
        "train",
        "evaluate",
    }
    assert diff(spec, changed(spec, "report", rayVersion="2.60.0")) == {"report"}


def test_the_cache_key_is_part_of_it_and_run_control_fields_are_not():
    spec = three_steps()
    assert diff(spec, changed(spec, "prepare", cacheKey="2026-01-02")) == {
        "prepare",
        "train",
        "evaluate",
    }
    steering = {"retries": 3, "backoffSeconds": 1, "activeDeadlineSeconds": 60, "cache": False}
    assert diff(spec, changed(spec, "prepare", outputs=["features/"], **steering)) == set()
    assert diff(spec, {**spec, "suspend": True, "labels": {"a": "b"}}) == set()


def test_the_image_it_resolves_to_and_pipeline_env_count():
    spec = three_steps()
    assert diff(spec, {**spec, "image": "other:2"}) == {"prepare", "train", "evaluate", "report"}
    assert diff(spec, changed(spec, "train", image="registry.example.com/churn:1.4")) == set()
    assert diff(spec, {**spec, "env": [{"name": "A", "value": "1"}]}) == set(fp.fingerprints(spec))


def test_it_is_pinned():
    """A new operator version must not turn every hit into a miss: the hash is stable."""
    spec = mljob([spark_step("prepare", cache=True, cacheKey="v1")])["spec"]
    assert fp.fingerprints(spec) == {"prepare": "86a064acb62fcf33"}


def _shuffled(value, rng: random.Random):
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@given(st.integers(0, 2**32))
def test_key_order_is_irrelevant(seed):
    spec = three_steps()
    spec["steps"][0]["spark"]["sparkConf"] = {f"k{i}": str(i) for i in range(6)}
    reordered = _shuffled(spec, random.Random(seed))
    assert fp.fingerprints(reordered) == fp.fingerprints(spec)


@st.composite
def dags(draw) -> dict:
    """A random valid DAG of Ray steps: each may depend on earlier ones only."""
    count = draw(st.integers(1, 5))
    steps = []
    for i in range(count):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=i)) if i else []
        step = ray_step(f"s{i}", dependsOn=[f"s{d}" for d in deps])
        step["ray"]["entrypoint"] = f"python /app/s{i}.py --v {draw(st.integers(0, 3))}"
        steps.append(step)
    return mljob(steps)["spec"]


def _downstream(spec: dict, name: str) -> set[str]:
    below = {name}
    for step in spec["steps"]:  # dependencies come earlier in the list
        if below & set(step.get("dependsOn") or []):
            below.add(step["name"])
    return below


@given(dags(), st.data())
def test_a_change_reaches_exactly_the_steps_below_it(spec, data):
    victim = data.draw(st.sampled_from([s["name"] for s in spec["steps"]]))
    edited = changed(spec, victim, entrypoint="python /app/other.py")
    assert diff(spec, edited) == _downstream(spec, victim)


def record(step: str, fingerprint: str, run: int, **inputs: int) -> fp.CacheRecord:
    return {"step": step, "fingerprint": fingerprint, "run": run, "inputs": dict(inputs)}


def test_lookup_needs_the_same_step_fingerprint_and_inputs_and_takes_the_newest():
    records = [record("train", "f1", 1, prepare=1), record("train", "f1", 3, prepare=2)]
    assert fp.lookup(records, "train", "f1", {"prepare": 2}) == records[1]
    assert fp.lookup(records, "train", "f1", {"prepare": 1}) == records[0]
    assert fp.lookup(records, "train", "f1", {"prepare": 5}) is None
    assert fp.lookup(records, "train", "f2", {"prepare": 1}) is None
    assert fp.lookup(records, "evaluate", "f1", {"prepare": 1}) is None


def test_remember_replaces_the_same_step_and_fingerprint_and_is_bounded():
    records = [record("a", "f", 1), record("b", "f", 1)]
    assert fp.remember(records, record("a", "f", 2)) == [record("b", "f", 1), record("a", "f", 2)]
    many: list[fp.CacheRecord] = []
    for i in range(fp.MAX_CACHE_RECORDS + 5):
        many = fp.remember(many, record("s", f"f{i}", i))
    assert len(many) == fp.MAX_CACHE_RECORDS and many[-1]["run"] == fp.MAX_CACHE_RECORDS + 4


def test_input_runs_take_a_cached_dependency_from_its_run():
    assert fp.input_runs(["a", "b"], {"a": 2, "b": None}, 5) == {"a": 2, "b": 5}
