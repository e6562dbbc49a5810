"""Random child status changes never start a step before its dependencies succeeded and never
create a child twice (World.reconcile asserts the latter on every create)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mljob_corpus import mljob, ray_step, spark_step
from planner_world import World

from mljob import constants as c
from mljob.states import child_state
from mljob.validation import dependencies

SPARK_STATES = [
    "",
    "SUBMITTED",
    "RUNNING",
    "SUCCEEDING",
    "FAILING",
    "UNKNOWN",
    "COMPLETED",
    "FAILED",
]
RAY_STATES = [
    ("", ""),
    ("Initializing", ""),
    ("Running", "RUNNING"),
    ("Retrying", ""),
    ("Complete", "SUCCEEDED"),
    ("Complete", "STOPPED"),
    ("Failed", "RUNNING"),
]

PIPELINES = {
    "chain": [spark_step("a"), ray_step("b"), spark_step("c")],
    "diamond": [
        spark_step("a"),
        ray_step("b", dependsOn=["a"]),
        spark_step("c", dependsOn=["a"]),
        ray_step("d", dependsOn=["b", "c"]),
    ],
    "forest": [
        spark_step("a", dependsOn=[]),
        spark_step("b", dependsOn=[]),
        ray_step("c", dependsOn=["a"]),
    ],
}
SHARED = {"rayVersion": "2.49.0"}


def _status_for(kind, pick):
    if kind == c.SPARK_KIND:
        return {
            "applicationState": {"state": SPARK_STATES[pick % len(SPARK_STATES)]},
            "driverInfo": {},
        }
    deployment, job = RAY_STATES[pick % len(RAY_STATES)]
    return {"jobDeploymentStatus": deployment, "jobStatus": job}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pipeline=st.sampled_from(sorted(PIPELINES)),
    shared=st.booleans(),
    moves=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50), st.booleans()), max_size=40),
)
def test_no_early_start_and_no_double_create(pipeline, shared, moves):
    steps = PIPELINES[pipeline]
    if shared:
        steps = [
            {
                "name": s["name"],
                "ray": {"entrypoint": "x"},
                **({"dependsOn": s["dependsOn"]} if "dependsOn" in s else {}),
            }
            if "ray" in s
            else s
            for s in steps
        ]
    world = World(mljob(steps, **({"rayCluster": SHARED} if shared else {})))
    deps = dependencies(steps)
    succeeded: set[str] = set()  # the truth, kept by the test from the children it drove
    for child_pick, state_pick, delete_finished in [(0, 0, False), *moves]:
        for action in world.reconcile().actions:
            if getattr(action, "step", None):
                missing = set(deps[action.step]) - succeeded
                assert not missing, f"{action.step} started before {missing} succeeded"
        live = sorted(k for k in world.children if k[0] != c.RAY_CLUSTER_KIND)
        if not live:
            continue
        kind, name = live[child_pick % len(live)]
        child = world.children[(kind, name)]
        if child_state(child).phase in c.TERMINAL_PHASES:
            if delete_finished:  # e.g. Spark timeToLiveSeconds
                del world.children[(kind, name)]
            continue
        world.set_status(kind, name, _status_for(kind, state_pick))
        if child_state(child).phase == c.SUCCEEDED:
            succeeded.add(child["metadata"]["labels"][c.LABEL_STEP])
    final = world.reconcile()
    assert all(
        getattr(a, "step", None) is None or not set(deps[a.step]) - succeeded for a in final.actions
    )
    assert {e["name"] for e in world.status["steps"] if e["phase"] == c.SUCCEEDED} == succeeded
