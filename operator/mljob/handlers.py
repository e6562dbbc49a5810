"""The kopf glue: watch MLJobs and their children, run the pure planner, apply its actions.

Every MLJob event and every child event runs the same `reconcile(namespace, name)`. Children are
watched with low-level `on.event` handlers and kept in kopf indexes keyed by their owner, so
nothing (no annotation, no finalizer) is ever written on objects that belong to the Spark
operator or KubeRay. The only writes are child creates and deletes, MLJob status patches and
Events. A slow resync loop is the safety net for events whose handling failed (kopf does not
retry `on.event` handlers).

Run it with:  kopf run --all-namespaces -m mljob.handlers   (or `mljob operator`)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
import os
import signal
from collections.abc import Iterable
from typing import Any

import kopf

from mljob import constants as c
from mljob import kube
from mljob.planner import Delete, Plan, plan, record_create_rejected

logger = logging.getLogger("mljob")
Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, MLJob name)

RESYNC_SECONDS = float(os.environ.get("MLJOB_RESYNC_SECONDS", "60"))
# How long a peer's keep-alive counts; a standby replica takes over at most this long after the
# active one died without saying goodbye (SIGKILL, node loss).
PEERING_LIFETIME_SECONDS = int(os.environ.get("MLJOB_PEERING_LIFETIME_SECONDS", "60"))

CHILD_RESOURCES = {
    c.SPARK_KIND: ("sparkoperator.k8s.io", "v1beta2", c.SPARK_PLURAL),
    c.RAY_JOB_KIND: ("ray.io", "v1", c.RAY_JOB_PLURAL),
    c.RAY_CLUSTER_KIND: ("ray.io", "v1", c.RAY_CLUSTER_PLURAL),
}
OWNED = {c.LABEL_NAME: kopf.PRESENT}
CHILD_INDEXES = ("spark_children", "rayjob_children", "raycluster_children")
INDEX_NAMES = ("mljobs", *CHILD_INDEXES)


class _State:
    """Process-wide state of the glue (one operator process = one instance)."""

    def __init__(self) -> None:
        self.api: kube.Api | None = None
        self.locks: dict[Key, asyncio.Lock] = {}
        # The newest MLJob body this process wrote or saw, so a reconcile that runs before our
        # own status patch comes back through the watch does not plan from the older status.
        self.latest: dict[Key, Obj] = {}
        # Children created by this process but not yet seen through the watch.
        self.created: dict[Key, dict[tuple[str, str], Obj]] = {}
        self.indexes: Any = None

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


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
        },
        "status": copy.deepcopy(dict(body.get("status") or {})),
    }


@kopf.index(c.GROUP, c.VERSION, c.PLURAL)
def mljobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Key, Obj]:
    return {(namespace, name): copy.deepcopy(dict(body))}


def _index_children(namespace: str, labels: kopf.Labels, body: kopf.Body) -> dict[Key, Obj]:
    return {(namespace, labels[c.LABEL_NAME]): _slim(body)}


@kopf.index(*CHILD_RESOURCES[c.SPARK_KIND], labels=OWNED)
def spark_children(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    return _index_children(namespace, labels, body)


@kopf.index(*CHILD_RESOURCES[c.RAY_JOB_KIND], labels=OWNED)
def rayjob_children(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    return _index_children(namespace, labels, body)


@kopf.index(*CHILD_RESOURCES[c.RAY_CLUSTER_KIND], labels=OWNED)
def raycluster_children(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any):
    return _index_children(namespace, labels, body)


# --- startup and the safety-net resync ---
@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # Our own Events tell the story; kopf's per-handler Events would only add noise.
    settings.posting.level = logging.WARNING
    settings.peering.lifetime = PEERING_LIFETIME_SECONDS
    state.api = kube.Api.from_environment()
    # Index objects are live views: keep them for the resync loop and for reconcile.
    state.indexes = {name: kwargs[name] for name in INDEX_NAMES}
    memo.resync_task = asyncio.create_task(_resync_forever())


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
                await reconcile(*key)
            except Exception:
                logger.exception("resync of %s/%s failed", *key)


# --- events ---
@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL)
async def mljob_event(
    type: str | None, namespace: str, name: str, body: kopf.Body, **_: Any
) -> None:
    key = (namespace, name)
    if type == "DELETED":
        _forget(key)
        return
    _remember(key, copy.deepcopy(dict(body)))
    await reconcile(namespace, name)


async def _child_event(type: str | None, namespace: str, labels: kopf.Labels) -> None:
    owner = labels.get(c.LABEL_NAME)
    if owner:
        await reconcile(namespace, owner)


@kopf.on.event(*CHILD_RESOURCES[c.SPARK_KIND], labels=OWNED)
async def spark_event(type: str | None, namespace: str, labels: kopf.Labels, **_: Any):
    await _child_event(type, namespace, labels)


@kopf.on.event(*CHILD_RESOURCES[c.RAY_JOB_KIND], labels=OWNED)
async def rayjob_event(type: str | None, namespace: str, labels: kopf.Labels, **_: Any):
    await _child_event(type, namespace, labels)


@kopf.on.event(*CHILD_RESOURCES[c.RAY_CLUSTER_KIND], labels=OWNED)
async def raycluster_event(type: str | None, namespace: str, labels: kopf.Labels, **_: Any):
    await _child_event(type, namespace, labels)


# --- reconcile ---
async def reconcile(namespace: str, name: str) -> None:
    """Plan from the newest MLJob and its observed children, then apply: creates/deletes,
    the status patch (only when it changed), and Events for the transitions."""
    key = (namespace, name)
    async with state.lock(key):
        mljob = _current_mljob(key)
        if mljob is None or mljob["metadata"].get("deletionTimestamp"):
            return
        children = _observed_children(key, mljob["metadata"]["uid"])
        result = plan(mljob, children, _now())
        result = await _apply_actions(mljob, result)
        await _write_status(key, mljob, result)


def _current_mljob(key: Key) -> Obj | None:
    seen = _from_index("mljobs", key)
    latest = state.latest.get(key)
    if seen is None:
        return latest
    if latest is None or _newer(seen, latest):
        state.latest[key] = seen
        return seen
    return latest


def _newer(a: Obj, b: Obj) -> bool:
    """Whether `a` is a newer version of the object than `b` (resourceVersions are etcd
    revisions in practice; on anything else trust the watch)."""
    if a["metadata"].get("uid") != b["metadata"].get("uid"):
        return True
    try:
        return int(a["metadata"]["resourceVersion"]) >= int(b["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return True


def _from_index(index_name: str, key: Key) -> Obj | None:
    store = state.indexes[index_name].get(key)
    return next(iter(store), None) if store else None


def _observed_children(key: Key, uid: str) -> list[Obj]:
    seen: dict[tuple[str, str], Obj] = {}
    for index_name in CHILD_INDEXES:
        index = state.indexes[index_name]
        for child in index.get(key, ()):
            if _owned_by(child, uid):
                seen[(child["kind"], child["metadata"]["name"])] = child
    pending = state.created.get(key, {})
    for child_key in [k for k in pending if k in seen]:
        del pending[child_key]  # the watch has it now
    return [*seen.values(), *pending.values()]


def _owned_by(child: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in child["metadata"].get("ownerReferences") or [])


async def _apply_actions(mljob: Obj, result: Plan) -> Plan:
    assert state.api is not None
    key = (mljob["metadata"]["namespace"], mljob["metadata"]["name"])
    status = result.status
    events = list(result.events)
    for action in result.actions:
        if isinstance(action, Delete):
            await asyncio.to_thread(
                state.api.delete, CHILD_RESOURCES[action.kind], action.namespace, action.name
            )
            logger.info("%s/%s: deleted %s %s", *key, action.kind, action.name)
            continue
        outcome = await asyncio.to_thread(
            state.api.create, CHILD_RESOURCES[action.kind], key[0], action.body
        )
        if isinstance(outcome, kube.Rejected):
            logger.warning("%s/%s: %s %s rejected: %s", *key, action.kind, action.name, outcome)
            rejected = record_create_rejected(status, action.step, outcome.message, _now())
            status = rejected.status
            events += rejected.events
        elif outcome is not None:
            state.created.setdefault(key, {})[(action.kind, action.name)] = outcome
            logger.info("%s/%s: created %s %s", *key, action.kind, action.name)
            _failpoint("after-create")
    return Plan([], status, _dedupe(events))


def _dedupe(events: Iterable) -> list:
    return list(dict.fromkeys(events))


async def _write_status(key: Key, mljob: Obj, result: Plan) -> None:
    assert state.api is not None
    if result.status != (mljob.get("status") or {}):
        updated = await asyncio.to_thread(
            state.api.patch_mljob_status, key[0], key[1], result.status
        )
        if updated is None:
            return  # the MLJob is gone
        _remember(key, updated)
    for event in result.events:
        kopf.event(mljob, type=event.type, reason=event.reason, message=event.message)


def _remember(key: Key, body: Obj) -> None:
    latest = state.latest.get(key)
    if latest is None or _newer(body, latest):
        state.latest[key] = body


def _forget(key: Key) -> None:
    state.latest.pop(key, None)
    state.created.pop(key, None)
    state.locks.pop(key, None)


def _failpoint(name: str) -> None:
    """Crash here, as SIGKILL would, when MLJOB_FAILPOINT names this point: the fault tests
    use it to kill the operator between a child create and the status write that records it."""
    if os.environ.get("MLJOB_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
