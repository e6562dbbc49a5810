"""Random child status changes never start a step before its dependencies succeeded and never
create a child twice (World.reconcile asserts the latter on every create)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planner_world import World

from mljob import constants as c
from mljob.states import child_state
from mljob.testing.corpus import mljob, ray_step, spark_step
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


RETRY_PIPELINES = {
    "chain": [
        spark_step("a", retries=2, backoffSeconds=30),
        ray_step("b", retries=1, startDeadlineSeconds=120),
        spark_step("c", activeDeadlineSeconds=300),
    ],
    "diamond": [
        spark_step("a", retries=1, backoffSeconds=0),
        ray_step("b", dependsOn=["a"], retries=3, backoffSeconds=5, maxBackoffSeconds=20),
        spark_step("c", dependsOn=["a"], startDeadlineSeconds=60, retries=1),
        ray_step("d", dependsOn=["b", "c"], retries=2),
    ],
}
# What can happen between two reconciles: a child changes state, a child is deleted by someone
# else, the user flips suspend, time passes.
MOVES = st.tuples(
    st.sampled_from(["state", "state", "state", "delete", "suspend", "wait"]),
    st.integers(0, 50),
    st.integers(0, 50),
    st.sampled_from([1, 10, 60, 600]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pipeline=st.sampled_from(sorted(RETRY_PIPELINES)),
    pipeline_deadline=st.sampled_from([None, 3600]),
    moves=st.lists(MOVES, max_size=50),
)
def test_retries_deadlines_suspend_keep_the_invariants(pipeline, pipeline_deadline, moves):
    steps = RETRY_PIPELINES[pipeline]
    extra = {"activeDeadlineSeconds": pipeline_deadline} if pipeline_deadline else {}
    world = World(mljob(steps, **extra))
    deps = dependencies(steps)
    allowed = {s["name"]: 1 + s.get("retries", 0) for s in steps}
    creates: dict[str, int] = {}
    succeeded: set[str] = set()
    for move, child_pick, state_pick, seconds in [("wait", 0, 0, 1), *moves]:
        for action in world.reconcile(seconds=seconds).actions:
            step = getattr(action, "step", None)
            if not step:
                continue
            assert step not in succeeded, f"{step} ran again after it succeeded"
            assert not set(deps[step]) - succeeded, f"{step} started before its dependencies"
            creates[step] = creates.get(step, 0) + 1
            assert creates[step] <= allowed[step], f"{step}: more attempts than retries allow"
        for entry in world.status["steps"]:
            assert entry["attempts"] <= allowed[entry["name"]]
            assert len(entry.get("failures") or []) <= c.MAX_FAILURE_HISTORY
        if move == "suspend":
            world.mljob["spec"]["suspend"] = not world.mljob["spec"].get("suspend")
            continue
        live = sorted(k for k, child in world.children.items() if _is_live(child))
        if move == "wait" or not live:
            continue
        kind, name = live[child_pick % len(live)]
        if move == "delete":
            del world.children[(kind, name)]
            continue
        world.set_status(kind, name, _status_for(kind, state_pick))
        if child_state(world.children[(kind, name)]).phase == c.SUCCEEDED:
            succeeded.add(world.children[(kind, name)]["metadata"]["labels"][c.LABEL_STEP])
    world.reconcile(seconds=0)
    recorded = {e["name"] for e in world.status["steps"] if e["phase"] == c.SUCCEEDED}
    assert recorded == succeeded


def _is_live(child):
    return child_state(child).phase in (c.PENDING, c.RUNNING)
