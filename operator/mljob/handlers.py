"""The kopf glue: watch MLJobs and their children, run the pure planner, apply its actions.

Every MLJob event and every child event runs the same `reconcile(namespace, name)`. Children are
watched with low-level `on.event` handlers and kept in kopf indexes keyed by their owner, so
nothing (no annotation, no finalizer) is ever written on objects that belong to the Spark
operator or KubeRay. The only writes are child creates and deletes, MLJob status patches and
Events. A slow resync loop is the safety net for events whose handling failed (kopf does not
retry `on.event` handlers).

Run it with `mljob operator` (the container entrypoint; it calls kopf.run with this module).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import datetime
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from mljob import constants as c
from mljob import expectations, kinds, kube, metrics, schemas, sharding
from mljob.expectations import Created, Key
from mljob.planner import (
    Create,
    Delete,
    Patch,
    Plan,
    Update,
    plan,
    posted_events,
    progress_only,
    record_create_rejected,
    status_patch,
)

logger = logging.getLogger("mljob")
Obj = dict[str, Any]

RESYNC_SECONDS = float(os.environ.get("MLJOB_RESYNC_SECONDS", "60"))
# How long a peer's keep-alive counts; a standby replica takes over at most this long after the
# active one died without saying goodbye (SIGKILL, node loss).
PEERING_LIFETIME_SECONDS = int(os.environ.get("MLJOB_PEERING_LIFETIME_SECONDS", "60"))
# How long a created child is passed to the planner before the watch shows it; past it, it is
# read from the API server (tests shorten it to force that read).
CREATED_MEMORY_SECONDS = float(
    os.environ.get("MLJOB_CREATED_MEMORY_SECONDS", expectations.CREATED_MEMORY_SECONDS)
)
# How long a child's progress alone may wait for the next status write (0: never held back).
STATUS_DEBOUNCE_SECONDS = float(
    os.environ.get("MLJOB_STATUS_DEBOUNCE_SECONDS", expectations.STATUS_DEBOUNCE_SECONDS)
)

CHILD_RESOURCES = {k.kind: k.resource for k in kinds.CHILD_KINDS}
OWNED = {c.LABEL_NAME: kopf.PRESENT}
EVENT_SOURCE = "mljob-operator"
# kopf hands each index to the handlers as a keyword argument named by the index handler's id.
CHILD_INDEXES = tuple(f"{k.plural}_children" for k in kinds.CHILD_KINDS)
INDEX_NAMES = ("mljobs", *CHILD_INDEXES)


class _State:
    """Process-wide state of the glue (one operator process = one instance): the API client,
    kopf's indexes, and the memory between reconciles (mljob.expectations, unit-tested there)."""

    def __init__(self) -> None:
        self.api: kube.Api | None = None
        self.indexes: Any = None
        self.memory = expectations.Memory(
            created_ttl=CREATED_MEMORY_SECONDS, debounce=STATUS_DEBOUNCE_SECONDS
        )
        # A handler's context, for the resync's reconciles: see _remember_event_context.
        self.event_context: contextvars.Context | None = None


state = _State()


# --- indexes: the MLJobs and their children, as the watches last saw them -------------------------
def _slim(body: kopf.Body) -> Obj:
    """What the planner needs of an object: identity, labels, owners, status. Dropping the
    spec keeps the operator's memory flat however large the children's specs are."""
    meta = body.metadata
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "labels": dict(meta.labels),
            "ownerReferences": [dict(ref) for ref in meta.get("ownerReferences") or []],
            # A RayService's status is about its spec only when observedGeneration matches.
            "generation": meta.get("generation"),
        },
        "status": copy.deepcopy(dict(body.get("status") or {})),
    }


# --- sharding: with `mljob operator --shards N`, this process sees only its share --------------
def _owned_mljob(namespace: str | None, name: str | None, **_: Any) -> bool:
    """kopf `when=` filter of every MLJob handler and index: only the MLJobs of this process's
    shard (mljob.sharding) are indexed, reconciled, resynced, written. kopf itself writes nothing
    on an MLJob (no annotation, no finalizer: only index and event handlers), so a shard never
    touches another shard's MLJobs."""
    return sharding.owns(namespace, name)


def _owned_child(namespace: str | None, labels: kopf.Labels, **_: Any) -> bool:
    """The same for children: the shard of their owner MLJob (label mljob.io/name)."""
    return sharding.owns(namespace, labels.get(c.LABEL_NAME))


# The index functions are `async` although they never await: kopf runs a sync handler in its
# thread pool (a thread hop, a task and a context copy per watch event), an async one inline.
@kopf.index(c.GROUP, c.VERSION, c.PLURAL, when=_owned_mljob)
async def mljobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Key, Obj]:
    key = (namespace, name)
    if state.memory.is_own_write(key, body):
        # The echo of our own status patch: the same object as the patch's answer, which the
        # memory holds already (a deep copy of a whole MLJob per echo was 10 % of the loop).
        return {key: state.memory.latest[key]}
    return {key: copy.deepcopy(dict(body))}


async def _index_children(
    namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Obj]:
    return {(namespace, labels[c.LABEL_NAME]): _slim(body)}


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base, kept for nothing. On every watch event kopf builds a deep copy of the
    object without its status (the "essence") and diffs it with the last handled one, for the
    on.create/update/delete/resume/field handlers. This operator has none: index and event
    handlers only (tests/unit/test_kopf_glue.py checks the registry), so the copy, a whole
    RayJob spec per child event, is skipped."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


# --- startup and the safety-net resync ---
@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # Our own Events tell the story; kopf's per-handler Events would only add noise.
    settings.posting.level = logging.WARNING
    # `kubectl describe` shows Events "From" the reporting component: us, not kopf.
    settings.posting.reporting_component = EVENT_SOURCE
    settings.posting.reporting_instance = os.environ.get("HOSTNAME") or "mljob-operator"
    settings.posting.event_name_prefix = "mljob-"
    settings.peering.lifetime = PEERING_LIFETIME_SECONDS
    settings.persistence.diffbase_storage = NoDiffBase()
    state.api = kube.api()
    # API calls run in threads: as many as the connection pool (the default is cpus + 4).
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(kube.POOL_SIZE))
    # validate() checks children against the upstream CRD schemas: parse them now, in a thread,
    # not in the first reconcile, where they would block the event loop for about a second.
    await asyncio.to_thread(schemas.preload)
    # Index objects are live views: keep them for the resync loop and for reconcile.
    state.indexes = {name: kwargs[name] for name in INDEX_NAMES}
    memo.resync_task = asyncio.create_task(_resync_forever())
    metrics.watch_phases(_known_phases)
    metrics.count_watch_streams()


def _known_phases() -> list[str | None]:
    """status.phase of every MLJob this process knows (called from the metrics thread)."""
    return state.memory.known_phases()


@kopf.on.probe(id="mljobs")
def known_mljobs(**_: Any) -> int:
    """Reported by kopf's /healthz (liveness and readiness): the MLJobs this process knows."""
    return len(state.memory.latest)


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("resync_task")
    if task:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _resync_forever() -> None:
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        index = state.indexes["mljobs"]
        for key in list(index):
            try:
                await _in_event_context(reconcile(*key, trigger="resync"))
            except Exception:
                logger.exception("resync of %s/%s failed", *key, extra=_log_fields(key))
            # A reconcile with nothing to write never yields: without this, a resync of
            # thousands of MLJobs would hold the event loop (and every event) for seconds.
            await asyncio.sleep(0)


# --- events ---
@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, when=_owned_mljob)
async def mljob_event(
    type: str | None, namespace: str, name: str, body: kopf.Body, **_: Any
) -> None:
    key = (namespace, name)
    _remember_event_context()
    if type == "DELETED":
        _forget(key)
        return
    if state.memory.is_own_write(key, dict(body)):
        return  # the watch echoing our own status patch: nothing new to plan from
    # No copy of the body here: the `mljobs` index, filled before handlers run, holds it, and
    # reconcile takes the newer of it and our last write.
    await reconcile(namespace, name, trigger="mljob")


async def _child_event(
    type: str | None, namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> None:
    owner = labels.get(c.LABEL_NAME)
    _remember_event_context()
    if not owner:
        return
    if type != "DELETED" and _is_terminal(body):
        state.memory.saw_terminal((namespace, owner), time.perf_counter())
    await reconcile(namespace, owner, trigger="child")


def _remember_event_context() -> None:
    """kopf.event() finds kopf's Event queue in context variables that kopf sets in the tasks
    that run handlers; the resync task, started by a startup handler, has none, so a resync
    reconcile that posted an Event raised LookupError after its status write (the Events were
    lost, and the timers it set inherited the same context). Keep the first handler's context
    for the resync's reconciles."""
    if state.event_context is None:
        state.event_context = contextvars.copy_context()


async def _in_event_context(coro: Any) -> Any:
    context = state.event_context
    if context is None:  # no event handled yet, so nothing known to reconcile either
        return await coro
    return await asyncio.create_task(coro, context=context.copy())


def _is_terminal(body: kopf.Body) -> bool:
    kind = kinds.BY_KIND.get(body.get("kind"))
    if kind is None or kind.state is None:
        return False
    return kind.state(dict(body)).phase in c.TERMINAL_PHASES


# One index and one event handler per child kind, all alike (ids: `<plural>_children`, the
# index's keyword name, and `<plural>_event`).
for _kind, _index_id in zip(kinds.CHILD_KINDS, CHILD_INDEXES, strict=True):
    kopf.index(*_kind.resource, labels=OWNED, when=_owned_child, id=_index_id)(_index_children)
    kopf.on.event(*_kind.resource, labels=OWNED, when=_owned_child, id=f"{_kind.plural}_event")(
        _child_event
    )


# --- reconcile ---
async def reconcile(namespace: str, name: str, trigger: str = "mljob") -> None:
    """Plan from the newest MLJob and its observed children, then apply: creates/deletes,
    the status patch (only when it changed), and Events for the transitions. One that raises
    is tried again after a short backoff (expectations.Memory.reconcile_failed): the event that
    triggered it may be the last one this MLJob gets (a child's terminal state)."""
    key = (namespace, name)
    metrics.RECONCILES.labels(trigger).inc()
    try:
        with (
            metrics.RECONCILE_DURATION.time(),
            metrics.RECONCILE_ERRORS.labels(trigger).count_exceptions(),
        ):
            await _reconcile(key)
    except Exception:
        if key not in state.memory.latest:
            raise  # not known (deleted meanwhile): nothing to try again
        delay = state.memory.reconcile_failed(key)
        logger.exception(
            "reconcile of %s/%s failed; trying again in %.1f s", *key, delay, extra=_log_fields(key)
        )
        _schedule(key, delay, trigger="retry")
    else:
        state.memory.reconcile_succeeded(key)


async def _reconcile(key: Key) -> None:
    # Coalesce: a reconcile already waiting for this MLJob's lock has not read anything yet, so
    # it will plan from what this trigger saw (indexes are updated before handlers run).
    memory = state.memory
    if key not in memory.latest and _from_index("mljobs", key) is None:
        # An MLJob this process does not know: deleted (its children's DELETED events come
        # after its own) or another shard's. Nothing to plan, and nothing to keep: a lock made
        # here would outlive it (the heap census found one per deleted MLJob).
        memory.take_terminal(key)
        return
    if not memory.try_wait(key):
        return
    async with memory.lock(key):
        memory.done_waiting(key)
        terminal_seen = memory.take_terminal(key)
        mljob = memory.current(key, _from_index("mljobs", key))
        if mljob is None or mljob["metadata"].get("deletionTimestamp"):
            return
        indexed = [child for name in CHILD_INDEXES for child in state.indexes[name].get(key, ())]
        for kind, name in memory.overdue(key, indexed):
            assert state.api is not None
            live = await asyncio.to_thread(state.api.find, CHILD_RESOURCES[kind], key[0], name)
            memory.confirm(key, (kind, name), live)
        children = memory.children(key, mljob["metadata"]["uid"], indexed)
        result = plan(mljob, children, _now())
        result, started_step = await _apply_actions(mljob, result)
        if started_step and terminal_seen is not None:
            metrics.STEP_TRANSITION.observe(time.perf_counter() - terminal_seen)
        held = await _write_status(key, mljob, result)
        _schedule(key, _earliest(result.requeue_after, held))


def _from_index(index_name: str, key: Key) -> Obj | None:
    store = state.indexes[index_name].get(key)
    return next(iter(store), None) if store else None


async def _apply_actions(mljob: Obj, result: Plan) -> tuple[Plan, bool]:
    """Apply the plan's actions in order (a cancelled run's deletes come before the new run's
    creates); also say whether a step's child was created. After a rejected create no further
    create of this plan is applied: it may be a RayJob on the refused shared RayCluster, and a
    failed pipeline starts nothing new anyway."""
    key = (mljob["metadata"]["namespace"], mljob["metadata"]["name"])
    rejection: tuple[str | None, str] | None = None
    skipped: list[str | None] = []
    started_step = False
    for action in result.actions:
        extra = _log_fields(key, result.status.get("run"), getattr(action, "step", None))
        if not isinstance(action, Create | Update):
            await _change(key, action, extra)
        elif rejection is not None:
            skipped.append(action.step)
        elif (rejected := await _create(key, action, extra)) is not None:
            rejection = (action.step, rejected.message)
        else:
            started_step = started_step or action.step is not None
    if rejection is None:
        return result, started_step
    old = mljob.get("status") or {}
    refused = record_create_rejected(
        old, result.status, *rejection, _now(), skipped, namespace=key[0]
    )
    for action in refused.actions:  # the shared RayCluster of a run the refusal ended
        if isinstance(action, Delete | Patch):
            await _change(key, action, _log_fields(key, result.status.get("run")))
    return Plan([], refused.status, refused.events, result.requeue_after), started_step


async def _create(
    key: Key, action: Create | Update, extra: dict[str, Any]
) -> expectations.Rejected | None:
    assert state.api is not None
    resource = CHILD_RESOURCES[action.kind]
    if isinstance(action, Update):
        updated = await asyncio.to_thread(state.api.update, resource, key[0], action.body)
        if isinstance(updated, expectations.Rejected):
            return updated
        if updated is not None:
            logger.info("%s/%s: updated %s %s", *key, action.kind, action.name, extra=extra)
            return None
        # It is gone (deleted since the planner saw it): create it instead.
    answer = await asyncio.to_thread(state.api.create, resource, key[0], action.body)
    owner_uid = action.body["metadata"]["ownerReferences"][0]["uid"]
    outcome = expectations.create_outcome(answer, action.kind, action.name, owner_uid)
    if not isinstance(outcome, Created):
        logger.warning(
            "%s/%s: %s %s rejected: %s", *key, action.kind, action.name, outcome, extra=extra
        )
        return outcome
    state.memory.expect(key, outcome.body)
    verb = "found existing" if outcome.adopted else "created"
    logger.info("%s/%s: %s %s %s", *key, verb, action.kind, action.name, extra=extra)
    _failpoint("after-create")
    return None


async def _change(key: Key, action: Delete | Patch, extra: dict[str, Any]) -> None:
    assert state.api is not None
    resource = CHILD_RESOURCES[action.kind]
    if isinstance(action, Delete):
        await asyncio.to_thread(state.api.delete, resource, action.namespace, action.name)
        state.memory.deleted(key, action.kind, action.name)
        logger.info("%s/%s: deleted %s %s", *key, action.kind, action.name, extra=extra)
    else:
        await asyncio.to_thread(
            state.api.patch_child, resource, action.namespace, action.name, action.patch
        )
        logger.info(
            "%s/%s: patched %s %s: %s", *key, action.kind, action.name, action.patch, extra=extra
        )


def _log_fields(key: Key, run: int | None = None, step: str | None = None) -> dict[str, Any]:
    """Fields for `extra=`: kopf's JSON log format (`--log-format json`) emits them."""
    fields: dict[str, Any] = {"namespace": key[0], "mljob": key[1]}
    if run is not None:
        fields["run"] = run
    if step is not None:
        fields["step"] = step
    return fields


async def _write_status(key: Key, mljob: Obj, result: Plan) -> float | None:
    """Patch the status (unless only a child's progress changed and may wait: then say in how
    many seconds it is due), then post the plan's Events."""
    assert state.api is not None
    old = mljob.get("status") or {}
    quiet = not result.actions and not result.events
    held = state.memory.defer_status(key, quiet and progress_only(old, result.status))
    if held is not None:
        return held
    patch = status_patch(old, result.status)
    if patch:
        updated = await asyncio.to_thread(state.api.patch_mljob_status, key[0], key[1], patch)
        if not state.memory.status_written(key, updated):
            return None  # a 404: the MLJob is gone
        metrics.observe_status(old, result.status)
    for event in result.events:
        metrics.EVENTS.labels(event.type, event.reason).inc()
    for event in posted_events(result.events):
        kopf.event(mljob, type=event.type, reason=event.reason, message=event.message)
        metrics.EVENT_POSTS.inc()
    return None


def _schedule(key: Key, delay: float | None, trigger: str = "timer") -> None:
    """Reconcile again after `delay` seconds (a retry's backoff, a deadline, the TTL, a held
    status write, a failed reconcile): the one pending timer per MLJob is replaced by each new
    plan's."""
    if delay is None:
        state.memory.replace_timer(key, None)
        return
    loop = asyncio.get_running_loop()
    timer = loop.call_later(
        max(delay, 0.0), lambda: asyncio.create_task(reconcile(*key, trigger=trigger))
    )
    state.memory.replace_timer(key, timer)


def _earliest(*delays: float | None) -> float | None:
    return min((d for d in delays if d is not None), default=None)


def _forget(key: Key) -> None:
    state.memory.forget(key)


def _failpoint(name: str) -> None:
    """Crash here, as SIGKILL would, when MLJOB_FAILPOINT names this point: the fault tests
    use it to kill the operator between a child create and the status write that records it."""
    if os.environ.get("MLJOB_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
