"""Random pipelines and a world that runs them through the glue's memory and the planner, for
the property tests (test_planner_property.py, test_step_machine.py).

`pipelines()` draws DAG shapes of Spark and Ray steps (list order or explicit `dependsOn`),
on a shared RayCluster or not (started on demand or eagerly), with retries, backoffs, step
and pipeline deadlines, a TTL and an onSpecChange policy. `GlueWorld` applies plans like
handlers.py does, through the same `expectations.Memory`: what the planner sees is the watch's
index plus the children the glue created and the watch has not delivered yet, so a late watch,
a lost status write after a create (the operator killed between the two) and a refused create
can be played.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st
from planner_world import RAY_DONE, SPARK_DONE, World

from mljob import constants as c
from mljob.builders import merge_patch
from mljob.expectations import Memory
from mljob.planner import Create, Delete, Patch, Plan, plan, record_create_rejected, status_patch
from mljob.states import child_state
from mljob.testing.corpus import mljob, ray_step, spark_step

NAMES = "abcdef"
SPARK_STATES = ["", "SUBMITTED", "RUNNING", "SUSPENDED", "UNKNOWN", "COMPLETED", "FAILED"]
RAY_STATES = [
    ("", ""),
    ("Initializing", ""),
    ("Running", "RUNNING"),
    ("Complete", "SUCCEEDED"),
    ("Complete", "STOPPED"),
    ("Failed", "RUNNING"),
]
SPARK_FAILED = {"applicationState": {"state": "FAILED", "errorMessage": "exit 1"}, "driverInfo": {}}
RAY_FAILED = {"jobDeploymentStatus": "Failed", "reason": "AppFailed", "message": "OOM"}


@st.composite
def pipelines(draw: Any, max_steps: int = 5) -> dict[str, Any]:
    """A valid MLJob: 1 to `max_steps` Spark/Ray steps in a random DAG, and its run controls."""
    shared = draw(st.booleans())
    step_list: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, max_steps))):
        name = NAMES[i]
        extra: dict[str, Any] = {}
        if i and draw(st.booleans()):  # explicit dependencies on earlier steps, maybe none
            extra["dependsOn"] = draw(st.lists(st.sampled_from(NAMES[:i]), unique=True))
        elif not i and draw(st.booleans()):
            extra["dependsOn"] = []
        # up to 7 attempts: more than status.steps[].failures keeps (MAX_FAILURE_HISTORY)
        retries = draw(st.sampled_from([0, 0, 1, 2, 6]))
        if retries:
            extra["retries"] = retries
            backoff = draw(st.sampled_from([None, 0, 5, 30]))
            if backoff is not None:
                extra["backoffSeconds"] = backoff
        if draw(st.booleans()):  # the cache (issue 13): a later run may skip the step
            extra["cache"] = True
        deadline = draw(st.sampled_from([None, None, None, "start", "active"]))
        if deadline == "start":
            extra["startDeadlineSeconds"] = 120
        elif deadline == "active":
            extra["activeDeadlineSeconds"] = 900
        if draw(st.sampled_from(["spark", "ray"])) == "spark":
            step_list.append(spark_step(name, **extra))
        elif shared:
            step_list.append({"name": name, "ray": {"entrypoint": "python /app/x.py"}, **extra})
        else:
            step_list.append(ray_step(name, **extra))
    spec: dict[str, Any] = {}
    if shared and any("ray" in s for s in step_list):
        spec["rayCluster"] = {"rayVersion": "2.49.0"}
        policy = draw(st.sampled_from([None, c.START_ON_DEMAND, c.START_EAGER]))
        if policy is not None:
            spec["rayCluster"]["startPolicy"] = policy
    deadline = draw(st.sampled_from([None, None, 3600]))
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    ttl = draw(st.sampled_from([None, None, 0, 600]))
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    spec["onSpecChange"] = draw(st.sampled_from([c.WAIT_FOR_RUNNING, c.CANCEL_RUNNING]))
    return mljob(step_list, **spec)


# What happens between two reconciles. Weighted towards children succeeding so that most
# examples reach a terminal phase through the random events alone.
EVENTS = st.sampled_from(
    ["succeed"] * 12
    + ["state"] * 3
    + ["fail", "kill", "lose-cluster", "suspend", "edit", "wait"]
    + ["lost-status", "late-watch", "reject"]
)
MOVES = st.tuples(EVENTS, st.integers(0, 50), st.integers(0, 50), st.sampled_from([1, 10, 60, 600]))


def child_status(kind: str, pick: int) -> dict[str, Any]:
    if kind == c.SPARK_KIND:
        return {"applicationState": {"state": SPARK_STATES[pick % len(SPARK_STATES)]}}
    deployment, job = RAY_STATES[pick % len(RAY_STATES)]
    return {"jobDeploymentStatus": deployment, "jobStatus": job}


def done_status(kind: str, ok: bool = True) -> dict[str, Any]:
    if kind == c.SPARK_KIND:
        return copy.deepcopy(SPARK_DONE if ok else SPARK_FAILED)
    return copy.deepcopy(RAY_DONE if ok else RAY_FAILED)


class GlueWorld(World):
    """The World of planner_world, with the glue's memory between the watch and the planner."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self.memory = Memory(clock=lambda: self.now.timestamp())
        self.index: dict[tuple[str, str], dict[str, Any]] = {}  # what the watch delivered
        self.succeeded: set[tuple[str, str]] = set()  # children this test made succeed
        # Created by a reconcile whose status write was lost, and not recorded since: if someone
        # deletes one before the next reconcile adopts it, the operator cannot know it existed
        # and creates it again (the one double create allowed: two faults in a row).
        self.unrecorded: set[tuple[str, str]] = set()

    def deliver(self) -> None:
        """The watch catches up with the cluster."""
        self.index = copy.deepcopy(self.children)
        self.memory.children(self.key, self.mljob["metadata"]["uid"], self.index.values())

    def live(self, with_cluster: bool = False) -> list[tuple[str, str]]:
        return sorted(
            k
            for k, child in self.children.items()
            if (with_cluster and k[0] == c.RAY_CLUSTER_KIND)
            or (k[0] != c.RAY_CLUSTER_KIND and child_state(child).phase in (c.PENDING, c.RUNNING))
        )

    def set_child(self, key: tuple[str, str], status: dict[str, Any]) -> None:
        self.children[key]["status"] = status
        if child_state(self.children[key]).phase == c.SUCCEEDED:
            self.succeeded.add(key)

    def kill(self, key: tuple[str, str]) -> None:
        """Someone else deletes a child (the watch delivers its creation, then its deletion)."""
        self.deliver()
        del self.children[key]
        self.index.pop(key, None)

    def glue_reconcile(
        self,
        seconds: float,
        *,
        late: bool = False,
        lose_status: bool = False,
        reject: int | None = None,
    ) -> tuple[Plan, Plan, list[Create]]:
        """One reconcile as handlers.py runs it, `seconds` after the previous one: the planner's
        input comes through the memory (`late`: the watch has not delivered the children created
        since the last reconcile), the actions are applied in order (`reject`: the API server
        refuses the plan's `reject`-th create, modulo their number, and no later create is sent),
        then the status is written (`lose_status`: that write is lost, e.g. the operator was
        killed between the creates and the status patch). Returns the plan, the status plan
        written (record_create_rejected's after a refusal) and the creates sent."""
        if not late:
            self.deliver()
        self.advance(seconds)
        uid = self.mljob["metadata"]["uid"]
        children = self.memory.children(self.key, uid, list(self.index.values()))
        result = plan(self.mljob, children, self.now)
        creates = [a for a in result.actions if isinstance(a, Create)]
        refused = creates[reject % len(creates)] if creates and reject is not None else None
        sent: list[Create] = []
        skipped: list[str | None] = []
        after_refusal = False  # the glue sends no create after a refused one
        for action in result.actions:
            if isinstance(action, Create):
                if action is refused or after_refusal:
                    if after_refusal:
                        skipped.append(action.step)
                    after_refusal = True
                    continue
                key = (action.kind, action.name)
                if key in self.children:  # a 409: adopted (ours; after a lost status write)
                    self.memory.expect(self.key, copy.deepcopy(self.children[key]))
                    continue
                again = action.kind == c.RAY_CLUSTER_KIND or key in self.unrecorded
                assert key not in self.created or again, (
                    f"created again after it was deleted: {key}"
                )
                self.created.append(key)
                self.children[key] = copy.deepcopy(action.body)
                self.memory.expect(self.key, copy.deepcopy(action.body))
                sent.append(action)
            elif isinstance(action, Delete):
                self.deleted.append((action.kind, action.name))
                self.children.pop((action.kind, action.name), None)
                self.memory.deleted(self.key, action.kind, action.name)
            elif isinstance(action, Patch):
                self.patched.append((action.kind, action.name, action.patch))
                key = (action.kind, action.name)
                if key in self.children:
                    self.children[key] = merge_patch(self.children[key], action.patch)
        written = result
        old = self.mljob.get("status") or {}
        if refused is not None:
            written = record_create_rejected(
                old,
                result.status,
                refused.step,
                "exceeded quota",
                self.now,
                skipped,
                namespace=self.key[0],
            )
            for action in written.actions:  # the shared RayCluster of a run this ended
                assert isinstance(action, Delete), action
                self.deleted.append((action.kind, action.name))
                self.children.pop((action.kind, action.name), None)
                self.memory.deleted(self.key, action.kind, action.name)
        if lose_status:
            self.unrecorded |= {(a.kind, a.name) for a in sent}
        else:
            self.mljob["status"] = merge_patch(old, status_patch(old, written.status))
            assert self.mljob["status"] == written.status
            self.events += written.events
            self.unrecorded -= recorded(written.status)
        return result, written, sent


def recorded(status: dict[str, Any]) -> set[tuple[str, str]]:
    """The children a status knows: each step's current and failed attempts, the shared cluster."""
    known = (
        {(c.RAY_CLUSTER_KIND, status["rayCluster"]["name"])} if status.get("rayCluster") else set()
    )
    for entry in status.get("steps") or []:
        for name in [entry["child"], *(f["child"] for f in entry.get("failures") or [])]:
            known.add((entry["kind"], name))
    return known
