"""The glue's memory and decisions (mljob.expectations), without kopf: an injected clock, fake
timers, plain dicts for what the watch and the API server return."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mljob import expectations as ex

KEY = ("team-a", "churn")
UID = "uid-1"


def mljob_body(version: str | None, uid: str = UID, phase: str | None = None) -> dict:
    meta = {"name": "churn", "namespace": "team-a", "uid": uid}
    if version is not None:
        meta["resourceVersion"] = version
    return {"metadata": meta, "status": {"phase": phase} if phase else {}}


def child(name: str, owner: str | None = UID, kind: str = "RayJob") -> dict:
    refs = [{"kind": "MLJob", "name": "churn", "uid": owner}] if owner else []
    return {"kind": kind, "metadata": {"name": name, "ownerReferences": refs}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memory(clock: Clock) -> ex.Memory:
    return ex.Memory(clock=clock, created_ttl=60.0)


# --- which body is newer --------------------------------------------------------------------------
def test_a_higher_or_equal_resource_version_is_newer():
    assert ex.newer(mljob_body("11"), mljob_body("10"))
    assert ex.newer(mljob_body("10"), mljob_body("10"))
    assert not ex.newer(mljob_body("9"), mljob_body("10"))
    # compared as numbers, not as text
    assert ex.newer(mljob_body("100"), mljob_body("99"))


def test_another_uid_is_always_newer_whatever_the_resource_version():
    """A deleted and re-created MLJob of the same name: its body wins even with an older-looking
    resourceVersion (etcd revisions only grow, but never compare two objects' versions)."""
    assert ex.newer(mljob_body("1", uid="uid-2"), mljob_body("50"))


@pytest.mark.parametrize("version", [None, "not-a-number"])
def test_an_unparsable_resource_version_trusts_the_watch(version):
    assert ex.newer(mljob_body(version), mljob_body("10"))
    assert ex.newer(mljob_body("10"), mljob_body(version))


def test_current_takes_the_newer_of_the_watch_and_the_own_write(memory):
    assert memory.current(KEY, None) is None
    seen = mljob_body("10", phase="Pending")
    assert memory.current(KEY, seen) is seen  # the first one is kept
    written = mljob_body("12", phase="Running")
    memory.remember(KEY, written)
    # the watch has not delivered our write yet: plan from what we wrote, not the older body
    assert memory.current(KEY, seen) is written
    assert memory.current(KEY, None) is written  # the index lost it: our write still counts
    later = mljob_body("13", phase="Running")
    assert memory.current(KEY, later) is later
    assert memory.latest[KEY] is later


def test_remember_never_goes_back_to_an_older_body(memory):
    memory.remember(KEY, mljob_body("12"))
    memory.remember(KEY, mljob_body("11"))
    assert memory.latest[KEY]["metadata"]["resourceVersion"] == "12"


def test_a_recreated_mljob_replaces_the_remembered_body(memory):
    memory.remember(KEY, mljob_body("50", phase="Succeeded"))
    recreated = mljob_body("3", uid="uid-2")
    assert memory.current(KEY, recreated) is recreated


def test_a_404_on_the_status_patch_remembers_nothing(memory):
    """patch_mljob_status answers None on a 404: the MLJob is gone; the glue stops there (no
    Events on a deleted object) and keeps no body of it."""
    assert memory.status_written(KEY, None) is False
    assert KEY not in memory.latest
    assert memory.status_written(KEY, mljob_body("7")) is True
    assert memory.latest[KEY]["metadata"]["resourceVersion"] == "7"


def test_the_echo_of_our_own_write_is_recognised(memory):
    assert not memory.is_own_write(KEY, mljob_body("7"))  # nothing written yet
    memory.status_written(KEY, mljob_body("7"))
    assert memory.is_own_write(KEY, mljob_body("7"))
    assert not memory.is_own_write(KEY, mljob_body("8"))  # someone else changed it since
    assert not memory.is_own_write(("team-a", "other"), mljob_body("7"))


def test_bodies_without_a_resource_version_are_never_taken_for_an_echo(memory):
    memory.remember(KEY, mljob_body(None))
    assert not memory.is_own_write(KEY, mljob_body(None))


def test_known_phases(memory):
    memory.remember(KEY, mljob_body("1", phase="Running"))
    memory.remember(("team-b", "x"), mljob_body("1"))
    assert sorted(memory.known_phases(), key=str) == [None, "Running"]


# --- children created but not seen yet ------------------------------------------------------------
def test_owned_by_reads_the_owner_uid():
    assert ex.owned_by(child("a"), UID)
    assert not ex.owned_by(child("a", owner="someone-else"), UID)
    assert not ex.owned_by(child("a", owner=None), UID)


def test_children_are_the_owned_indexed_ones_plus_the_created_not_yet_seen(memory, clock):
    ours = child("churn-a-r1")
    foreign = child("churn-b-r1", owner="uid-of-another")
    assert memory.children(KEY, UID, [ours, foreign]) == [ours]
    created = child("churn-c-r1", kind="SparkApplication")
    memory.expect(KEY, created)
    # the watch has not delivered it: passed in (else the planner takes it as deleted)
    assert memory.children(KEY, UID, [ours]) == [ours, created]
    clock.now += 10
    seen = child("churn-c-r1", kind="SparkApplication")
    assert memory.children(KEY, UID, [ours, seen]) == [ours, seen]
    assert memory.created[KEY] == {}  # the watch has it now: forgotten
    assert memory.children(KEY, UID, [ours]) == [ours]  # and then deleted: not passed any more


def test_the_watch_copy_wins_over_the_created_body(memory):
    memory.expect(KEY, child("churn-a-r1"))
    seen = {**child("churn-a-r1"), "status": {"jobStatus": "RUNNING"}}
    assert memory.children(KEY, UID, [seen]) == [seen]


def test_a_created_child_the_watch_never_delivers_is_forgotten_after_the_ttl(memory, clock):
    created = child("churn-a-r1")
    memory.expect(KEY, created)
    clock.now += 60
    assert memory.children(KEY, UID, []) == [created]  # not past the TTL yet
    clock.now += 0.5
    assert memory.children(KEY, UID, []) == []
    assert memory.created[KEY] == {}


def test_a_created_child_the_watch_is_late_with_is_read_before_it_counts_as_deleted(memory, clock):
    """Under load the watch can be more than the TTL behind (issue 14: a step failed as
    'deleted' while its child ran): past the TTL the glue reads the child, and `confirm` keeps
    it (as read, for another TTL) or forgets it (gone)."""
    late, gone, seen = child("churn-a-r1"), child("churn-b-r1"), child("churn-c-r1")
    for created in (late, gone, seen):
        memory.expect(KEY, created)
    clock.now += 60
    assert memory.overdue(KEY, [seen]) == []  # not past the TTL yet
    clock.now += 0.5
    assert memory.overdue(KEY, [seen]) == [("RayJob", "churn-a-r1"), ("RayJob", "churn-b-r1")]
    read = {**late, "status": {"jobStatus": "RUNNING"}}
    memory.confirm(KEY, ("RayJob", "churn-a-r1"), read)
    memory.confirm(KEY, ("RayJob", "churn-b-r1"), None)
    memory.confirm(KEY, ("RayJob", "churn-z-r1"), read)  # not ours to remember: ignored
    assert memory.overdue(KEY, [seen]) == []
    assert memory.children(KEY, UID, [seen]) == [seen, read]
    clock.now += 60
    assert memory.children(KEY, UID, [seen]) == [seen, read]  # a whole TTL again
    clock.now += 0.5
    assert memory.overdue(KEY, [seen]) == [("RayJob", "churn-a-r1")]  # and read again


def test_a_child_of_the_same_kind_and_name_is_one_child_per_kind(memory):
    memory.expect(KEY, child("churn-x", kind="RayJob"))
    cluster = child("churn-x", kind="RayCluster")
    assert memory.children(KEY, UID, [cluster]) == [cluster, child("churn-x", kind="RayJob")]


def test_a_child_deleted_by_this_process_is_not_passed_any_more(memory):
    memory.expect(KEY, child("churn-a-r1"))
    memory.deleted(KEY, "RayJob", "churn-a-r1")
    memory.deleted(KEY, "RayJob", "never-created")  # harmless
    memory.deleted(("team-b", "x"), "RayJob", "churn-a-r1")
    assert memory.children(KEY, UID, []) == []


def test_after_a_uid_change_the_old_mljobs_created_children_are_not_passed(memory):
    memory.expect(KEY, child("churn-a-r1", owner=UID))
    assert memory.children(KEY, "uid-2", []) == []


# --- what a create's answer means -----------------------------------------------------------------
def test_a_created_child_is_ours():
    body = child("churn-a-r1")
    assert ex.create_outcome(body, "RayJob", "churn-a-r1", UID) == ex.Created(body)


def test_a_409_on_a_child_this_mljob_owns_is_adopted():
    """Deterministic names: a create answered 409 after a lost status write finds our own
    child, which the planner then adopts."""
    body = child("churn-a-r1")
    outcome = ex.create_outcome(ex.Exists(body), "RayJob", "churn-a-r1", UID)
    assert outcome == ex.Created(body, adopted=True)


@pytest.mark.parametrize("owner", ["uid-of-another-mljob", None])
def test_a_409_on_a_child_owned_by_someone_else_is_refused(owner):
    body = child("churn-a-r1", owner=owner)
    outcome = ex.create_outcome(ex.Exists(body), "RayJob", "churn-a-r1", UID)
    assert outcome == ex.Rejected(
        409, "a RayJob named churn-a-r1 exists and is not owned by this MLJob"
    )


def test_a_rejection_is_passed_on():
    rejected = ex.Rejected(403, "exceeded quota")
    assert ex.create_outcome(rejected, "RayJob", "churn-a-r1", UID) is rejected


@pytest.mark.parametrize("status", [400, 403, 422])
def test_400_403_422_reject_the_body_for_good(status):
    assert ex.create_error(status, "why") == ex.Rejected(status, "why")


@pytest.mark.parametrize("status", [401, 404, 409, 429, 500, 503, 504])
def test_other_errors_are_not_rejections(status):
    """A 5xx, a throttle or a conflict is raised by kube.Api: the next reconcile tries again."""
    assert ex.create_error(status, "why") is None


# --- coalescing, timers, forgetting ---------------------------------------------------------------
def test_one_reconcile_waits_per_mljob_and_the_others_coalesce(memory):
    assert memory.try_wait(KEY)
    assert not memory.try_wait(KEY)  # coalesced into the waiting one
    assert memory.try_wait(("team-a", "other"))  # another MLJob waits on its own
    memory.done_waiting(KEY)
    assert memory.try_wait(KEY)  # the waiter got the lock: the next trigger waits again


def test_one_lock_per_mljob(memory):
    assert memory.lock(KEY) is memory.lock(KEY)
    assert memory.lock(KEY) is not memory.lock(("team-a", "other"))


def test_a_new_timer_replaces_and_cancels_the_pending_one(memory):
    first, second = FakeTimer(), FakeTimer()
    memory.replace_timer(KEY, first)
    memory.replace_timer(KEY, second)
    assert first.cancelled and not second.cancelled
    memory.replace_timer(KEY, None)
    assert second.cancelled and KEY not in memory.timers


def test_the_first_terminal_sighting_counts_until_taken(memory):
    memory.saw_terminal(KEY, 5.0)
    memory.saw_terminal(KEY, 7.0)
    assert memory.take_terminal(KEY) == 5.0
    assert memory.take_terminal(KEY) is None


def test_forgetting_a_deleted_mljob_drops_everything_known_of_it(memory):
    timer = FakeTimer()
    memory.remember(KEY, mljob_body("3"))
    memory.expect(KEY, child("churn-a-r1"))
    memory.saw_terminal(KEY, 1.0)
    memory.try_wait(KEY)  # a reconcile that was cancelled while it waited for the lock
    memory.lock(KEY)
    memory.replace_timer(KEY, timer)
    memory.forget(KEY)
    assert KEY not in memory.latest and KEY not in memory.created
    assert KEY not in memory.terminal_seen and KEY not in memory.locks
    assert KEY not in memory.timers and timer.cancelled
    # else a new MLJob of the same name is taken as coalesced and never reconciled
    assert memory.try_wait(KEY)


def test_the_module_and_the_webhook_do_not_import_kopf_or_the_handlers():
    """The memory is tested without kopf; the webhook does not reach into the kopf glue."""
    root = Path(ex.__file__).parent
    for module in ("expectations.py", "admission.py"):
        tree = ast.parse((root / module).read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            f"{node.module}.{alias.name}" if node.module == "mljob" else str(node.module)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert not {"mljob.handlers", "mljob.serve"} & imported, module
        if module == "expectations.py":
            assert not any(name.split(".")[0] in ("kopf", "kubernetes") for name in imported)


# --- a reconcile that raised is tried again soon (issue 14: the wave-2 stall) --------------------
def test_a_failed_reconcile_is_retried_after_a_doubling_backoff_up_to_a_cap(memory):
    delays = [memory.reconcile_failed(KEY) for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert max(delays) == ex.RETRY_MAX_SECONDS < 60  # always before the resync


def test_a_success_or_a_deletion_starts_the_backoff_afresh(memory):
    memory.reconcile_failed(KEY)
    memory.reconcile_failed(KEY)
    memory.reconcile_succeeded(KEY)
    assert memory.reconcile_failed(KEY) == 0.5
    memory.forget(KEY)
    assert memory.reconcile_failed(KEY) == 0.5
    assert memory.reconcile_failed(("team-b", "other")) == 0.5  # per MLJob
