"""What must always hold, whatever the pipeline and whatever happens to it.

Random DAGs of Spark and Ray steps (pipeline_gen.pipelines: shared RayCluster or not, retries,
backoffs, step and pipeline deadlines, TTL, onSpecChange) go through random child outcomes and
operator events (children succeeding, failing, changing state or killed by someone else, the
shared RayCluster deleted, suspend toggled, the spec edited, a status write lost after a create,
a late watch, a create refused by the API server), each followed by one reconcile run as the
glue runs it (pipeline_gen.GlueWorld, through expectations.Memory). After every reconcile:

- safety: a step's child is created only when every dependency's step is Succeeded, with a
  child this test made succeed; a child is never created twice (GlueWorld asserts it), and a
  step never gets more attempts than its retries allow;
- terminal stays terminal: a Succeeded or Failed run stays so (only a spec change starts another);
- nothing starts after the pipeline failed;
- the shared RayCluster exists exactly while a Ray step of its run may still need it: never
  once the run ended with no Ray job left on it, always while a RayJob of the run is live;
- every created child of the run is recorded in status (its step's current child or one of its
  failed attempts; the shared RayCluster in status.rayCluster);

and at the end, liveness: once the children succeed whenever they run (and suspend is off), the
run reaches Succeeded, unless it had failed already or the pipeline deadline ran out.

`pytest tests/unit/test_planner_property.py --hypothesis-show-statistics` prints how the
examples ended (docs/testing.md has a run).
"""

from __future__ import annotations

import re

from hypothesis import event, given
from hypothesis import strategies as st
from pipeline_gen import MOVES, GlueWorld, child_status, done_status, pipelines

from mljob import constants as c
from mljob.planner import Create
from mljob.validation import dependencies

TERMINAL = c.TERMINAL_PHASES
DEADLINES = {
    c.CHILD_STATE_PIPELINE_DEADLINE,
    c.CHILD_STATE_START_DEADLINE,
    c.CHILD_STATE_ACTIVE_DEADLINE,
}


def _step_of(world: GlueWorld, key: tuple[str, str]) -> str:
    return world.children[key]["metadata"]["labels"][c.LABEL_STEP]


def _succeeded_in_run(world: GlueWorld, kind: str, step: str, run: int) -> bool:
    """Whether this test made a child of `step` in `run` succeed (any attempt)."""
    name = re.compile(rf"^{re.escape(world.mljob['metadata']['name'])}-{step}-r{run}(-a\d+)?$")
    return any(k == kind and name.match(n) for k, n in world.succeeded)


def _check_plan(world: GlueWorld, before: dict, written, sent: list[Create], allowed) -> None:
    """Safety, terminal stays terminal, nothing starts after a failure."""
    after = world.mljob["status"]
    same_run = bool(before) and before.get("run") == after.get("run")
    # A spec change may wait for the live children of an ended run (WaitForRunning): the run
    # number moves on only when they finish, and the phase says Running meanwhile.
    unchanged = before.get("observedGeneration") == after.get("observedGeneration")
    if same_run and unchanged and before.get("phase") in TERMINAL:
        assert after["phase"] == before["phase"], f"a {before['phase']} run became {after['phase']}"
    if before.get("phase") == c.FAILED and same_run:
        assert not sent, f"started {[a.name for a in sent]} after the pipeline failed"
    status = written.status
    entries = {e["name"]: e for e in status["steps"]}
    deps = dependencies(world.mljob["spec"]["steps"])
    for create in sent:
        if create.step is None:
            continue
        for dep in deps[create.step]:
            entry = entries[dep]
            assert entry["phase"] == c.SUCCEEDED, f"{create.step} started before {dep} succeeded"
            if entry.get("cachedFromRun"):  # the cache: its child succeeded in that earlier run
                earlier = entry["cachedFromRun"]
                assert earlier < status["run"], f"{dep} cached from run {earlier}, not earlier"
                assert _succeeded_in_run(world, entry["kind"], dep, earlier), (
                    f"{dep} cached from run {earlier}, where it never succeeded"
                )
            else:
                assert (entry["kind"], entry["child"]) in world.succeeded, f"{dep} never succeeded"
    for entry in status["steps"]:
        assert entry["attempts"] <= allowed[entry["name"]], f"{entry['name']}: too many attempts"
        failures = entry.get("failures") or []
        assert len(failures) <= c.MAX_FAILURE_HISTORY, f"{entry['name']}: failures unbounded"
        if failures:  # the last ones, in order
            assert [f["attempt"] for f in failures] == sorted(f["attempt"] for f in failures)
    if status.get("phase") == c.FAILED and not any(
        e["childState"] == c.CHILD_STATE_CREATE_REJECTED for e in status["steps"]
    ):
        assert not [a for a in sent if a.step], "a step started in the plan that failed the run"


def _check_world(world: GlueWorld) -> None:
    """The shared RayCluster and the children of the run, against the status just written."""
    status = world.mljob["status"]
    run = str(status["run"])
    entries = {e["name"]: e for e in status["steps"]}
    of_run = [
        k for k in world.children if world.children[k]["metadata"]["labels"][c.LABEL_RUN] == run
    ]
    for kind, name in of_run:
        if kind == c.RAY_CLUSTER_KIND:
            assert (status.get("rayCluster") or {}).get("name") == name, f"{name} not in status"
            continue
        entry = entries[_step_of(world, (kind, name))]
        recorded = {entry["child"], *(f["child"] for f in entry.get("failures") or [])}
        attempt = re.search(r"-a(\d+)$", name)
        # the current child, a failed attempt, or one older than the failures status keeps
        old = int(attempt.group(1)) if attempt else 1
        assert name in recorded or old < entry["attempts"] - c.MAX_FAILURE_HISTORY + 1, (
            f"{kind} {name} is not recorded in status"
        )
    if not world.mljob["spec"].get("rayCluster"):
        return
    clusters = [k for k in of_run if k[0] == c.RAY_CLUSTER_KIND]
    ray_live = [
        e
        for e in status["steps"]
        if e["kind"] == c.RAY_JOB_KIND
        and e["attempts"]
        and e["phase"] in (c.PENDING, c.RUNNING)
        and (c.RAY_JOB_KIND, e["child"]) in world.children
    ]
    if status["phase"] in TERMINAL and not ray_live:
        assert not clusters, f"{clusters} kept after the run ended with no Ray job on it"
    if ray_live:
        assert clusters, f"no shared RayCluster while {[e['name'] for e in ray_live]} run on it"


@given(mljob_body=pipelines(), moves=st.lists(MOVES, min_size=20, max_size=60))
def test_what_must_always_hold(mljob_body, moves):
    world = GlueWorld(mljob_body)
    allowed = {s["name"]: 1 + s.get("retries", 0) for s in mljob_body["spec"]["steps"]}
    pending: dict[str, object] = {}  # glue events that shape the next reconcile
    for move, pick, state_pick, seconds in [("wait", 0, 0, 1), *moves]:
        before = dict(world.mljob.get("status") or {})
        late = bool(pending.pop("late", False))
        lose = bool(pending.pop("lose", False))
        reject = pending.pop("reject", None)
        _, written, sent = world.glue_reconcile(
            1 if late else seconds, late=late, lose_status=lose, reject=reject
        )
        if not lose:  # else the status write was lost: the next reconcile must repair it
            _check_plan(world, before, written, sent, allowed)
            _check_world(world)
        live = world.live()
        if move in ("late-watch", "lost-status", "reject"):
            pending[{"late-watch": "late", "lost-status": "lose", "reject": "reject"}[move]] = (
                pick if move == "reject" else True
            )
        elif move == "suspend":
            world.mljob["spec"]["suspend"] = not world.mljob["spec"].get("suspend")
        elif move == "edit":
            world.edit(labels={"edit": str(pick)})
        elif move == "lose-cluster":
            for key in [k for k in world.children if k[0] == c.RAY_CLUSTER_KIND]:
                world.kill(key)
        elif live and move in ("succeed", "fail", "state", "kill"):
            key = live[pick % len(live)]
            if move == "kill":
                world.kill(key)
            elif move == "state":
                world.set_child(key, child_status(key[0], state_pick))
            else:
                world.set_child(key, done_status(key[0], ok=move == "succeed"))
    # Liveness: from here on every child succeeds as soon as it runs, and suspend is off.
    world.glue_reconcile(1)  # the last event's consequences
    phase = world.status["phase"]
    event(f"phase after the random events: {phase}")
    world.mljob["spec"]["suspend"] = False
    wait = 1.0
    for _ in range(40):
        for key in world.live():
            world.set_child(key, done_status(key[0]))
        before = dict(world.status)
        result, written, sent = world.glue_reconcile(wait)
        _check_plan(world, before, written, sent, allowed)
        _check_world(world)
        if world.status["phase"] in TERMINAL:
            break
        # no longer than the next retry: no deadline expires that a success would have beaten
        wait = max(result.requeue_after or 1.0, 1.0)
    else:
        raise AssertionError(f"no terminal phase after 40 rounds: {world.status['message']}")
    event(f"final phase: {world.status['phase']}")
    if world.status["phase"] == c.FAILED and phase != c.FAILED:
        # only a deadline that ran out meanwhile (a retry's wait counts against the pipeline's)
        causes = {e["childState"] for e in world.status["steps"]}
        assert causes & DEADLINES, world.status["message"]
