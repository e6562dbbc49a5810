"""The kopf glue of ScheduledMLJob: watch the schedules and the MLJobs they own, run the pure
`schedule.plan`, apply its creates and deletes, write status, post Events, and set one timer per
schedule to its next firing (no polling; a slow resync is the safety net, as for MLJobs).

Imported by `mljob operator` (serve.py) next to mljob.handlers. The decisions are in
mljob.schedule; this module only moves data and reports what the API server said.

MLJOB_CLOCK_OFFSET_SECONDS shifts the clock the schedules are planned with (tests only: a
firing "in a minute" is reached in seconds without waiting; the MLJob glue keeps the real clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
import os
import time
from typing import Any

import kopf

from mljob import constants as c
from mljob import kube, metrics, schedule, sharding
from mljob.expectations import newer
from mljob.planner import status_patch

logger = logging.getLogger("mljob.schedule")
Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, ScheduledMLJob name)

MLJOBS = (c.GROUP, c.VERSION, c.PLURAL)
RESYNC_SECONDS = float(os.environ.get("MLJOB_RESYNC_SECONDS", "60"))
CLOCK_OFFSET_SECONDS = float(os.environ.get("MLJOB_CLOCK_OFFSET_SECONDS", "0"))
# Runs this process created (or deleted) and the watch has not shown yet are passed in (or left
# out) for this long, so a reconcile in between neither misses an active run nor deletes twice.
MEMORY_SECONDS = 60.0
# Fire a hair after the firing: asyncio may wake a timer a clock tick early.
TIMER_SLACK_SECONDS = 0.05
SCHEDULED = {schedule.LABEL_SCHEDULE: kopf.PRESENT}


class _State:
    def __init__(self) -> None:
        self.api: kube.Api | None = None
        self.locks: dict[Key, asyncio.Lock] = {}
        self.waiting: set[Key] = set()
        self.latest: dict[Key, Obj] = {}
        self.created: dict[Key, dict[str, tuple[float, Obj]]] = {}
        self.deleted: dict[Key, dict[str, float]] = {}
        self.timers: dict[Key, asyncio.TimerHandle] = {}
        self.indexes: dict[str, Any] = {}

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


state = _State()


def _slim_run(body: kopf.Body) -> Obj:
    """What the schedule planner reads of a run: identity, owners, its firing, its outcome."""
    meta = body.metadata
    status = dict(body.get("status") or {})
    return {
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "labels": dict(meta.labels),
            "annotations": dict(meta.annotations),
            "ownerReferences": [dict(ref) for ref in meta.get("ownerReferences") or []],
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "status": {k: status[k] for k in ("phase", "completionTime", "message") if k in status},
    }


def _owned_schedule(namespace: str | None, name: str | None, **_: Any) -> bool:
    """kopf `when=` filter: only the ScheduledMLJobs of this process's shard (mljob.sharding)."""
    return sharding.owns(namespace, name)


def _owned_run(namespace: str | None, labels: kopf.Labels, **_: Any) -> bool:
    """A run (an MLJob) counts for the shard of its ScheduledMLJob here; as an MLJob it is
    reconciled by its own shard (mljob.handlers)."""
    return sharding.owns(namespace, labels.get(schedule.LABEL_SCHEDULE))


@kopf.index(*schedule.RESOURCE, when=_owned_schedule)
def scheduledmljobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Key, Obj]:
    return {(namespace, name): copy.deepcopy(dict(body))}


@kopf.index(*MLJOBS, labels=SCHEDULED, when=_owned_run)
def scheduled_runs(
    namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Obj]:
    return {(namespace, labels[schedule.LABEL_SCHEDULE]): _slim_run(body)}


@kopf.on.startup()
async def configure_schedules(memo: kopf.Memo, **kwargs: Any) -> None:
    state.api = kube.api()
    state.indexes = {name: kwargs[name] for name in ("scheduledmljobs", "scheduled_runs")}
    memo.schedule_resync_task = asyncio.create_task(_resync_forever())


@kopf.on.cleanup()
async def stop_schedules(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("schedule_resync_task")
    if task:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for timer in state.timers.values():
        timer.cancel()


async def _resync_forever() -> None:
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        for key in list(state.indexes["scheduledmljobs"]):
            try:
                await reconcile(*key)
            except Exception:
                logger.exception("resync of ScheduledMLJob %s/%s failed", *key)


@kopf.on.event(*schedule.RESOURCE, when=_owned_schedule)
async def scheduled_event(
    type: str | None, namespace: str, name: str, body: kopf.Body, **_: Any
) -> None:
    key = (namespace, name)
    if type == "DELETED":
        _forget(key)
        return
    latest = state.latest.get(key)
    if latest is not None and latest["metadata"].get("resourceVersion") == body.metadata.get(
        "resourceVersion"
    ):
        return  # the echo of our own status write
    await reconcile(namespace, name)


@kopf.on.event(*MLJOBS, labels=SCHEDULED, when=_owned_run, id="scheduled_run_event")
async def scheduled_run_event(namespace: str, labels: kopf.Labels, **_: Any) -> None:
    await reconcile(namespace, labels[schedule.LABEL_SCHEDULE])


async def reconcile(namespace: str, name: str) -> None:
    key = (namespace, name)
    if key in state.waiting:
        return  # a reconcile already waiting will read what this trigger saw
    state.waiting.add(key)
    async with state.lock(key):
        state.waiting.discard(key)
        scheduled = _current(key)
        if scheduled is None or scheduled["metadata"].get("deletionTimestamp"):
            return
        runs = _observed_runs(key, scheduled["metadata"]["uid"])
        result = schedule.plan(scheduled, runs, _now())
        status, events = await _apply(key, scheduled, result)
        await _write(key, scheduled, status, [*result.events, *events])
        _set_timer(key, result.requeue_after)


def _current(key: Key) -> Obj | None:
    store = state.indexes["scheduledmljobs"].get(key)
    seen = next(iter(store), None) if store else None
    latest = state.latest.get(key)
    if seen is None:
        return latest
    if latest is None or newer(seen, latest):
        state.latest[key] = seen
        return seen
    return latest


def _owned_by(run: Obj, uid: str) -> bool:
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in run["metadata"].get("ownerReferences") or []
    )


def _observed_runs(key: Key, uid: str) -> list[Obj]:
    seen = {
        run["metadata"]["name"]: run
        for run in state.indexes["scheduled_runs"].get(key, ())
        if _owned_by(run, uid)
    }
    horizon = time.monotonic() - MEMORY_SECONDS
    created = state.created.get(key, {})
    for name in [n for n, (t, _) in created.items() if n in seen or t < horizon]:
        del created[name]
    deleted = state.deleted.get(key, {})
    for name in [n for n, t in deleted.items() if n not in seen or t < horizon]:
        del deleted[name]
    runs = {**{n: body for n, (_, body) in created.items()}, **seen}
    return [body for name, body in runs.items() if name not in deleted]


async def _apply(
    key: Key, scheduled: Obj, result: schedule.SchedulePlan
) -> tuple[schedule.ScheduleStatus, list[schedule.Event]]:
    assert state.api is not None
    status, events = result.status, []
    for action in result.actions:
        if isinstance(action, schedule.DeleteRun):
            await asyncio.to_thread(state.api.delete, MLJOBS, action.namespace, action.name)
            state.deleted.setdefault(key, {})[action.name] = time.monotonic()
            state.created.get(key, {}).pop(action.name, None)
            logger.info("ScheduledMLJob %s/%s: deleted %s run %s", *key, action.why, action.name)
            continue
        outcome = await asyncio.to_thread(state.api.create, MLJOBS, key[0], action.body)
        if isinstance(outcome, kube.Exists) and not _owned_by(
            outcome.body, scheduled["metadata"]["uid"]
        ):
            message = f"an MLJob named {action.name} exists and is not owned by this schedule"
            outcome = kube.Rejected(409, message)
        if isinstance(outcome, kube.Rejected):
            logger.warning("ScheduledMLJob %s/%s: run %s rejected: %s", *key, action.name, outcome)
            old = scheduled.get("status") or {}
            status, events = schedule.record_create_rejected(old, status, action, outcome.message)
            continue
        body = outcome.body if isinstance(outcome, kube.Exists) else outcome
        state.created.setdefault(key, {})[action.name] = (time.monotonic(), body)
        verb = "found existing" if isinstance(outcome, kube.Exists) else "created"
        logger.info("ScheduledMLJob %s/%s: %s run %s", *key, verb, action.name)
    return status, events


async def _write(
    key: Key, scheduled: Obj, status: schedule.ScheduleStatus, events: list[schedule.Event]
) -> None:
    assert state.api is not None
    patch = status_patch(scheduled.get("status") or {}, status)
    if patch:
        updated = await asyncio.to_thread(
            state.api.patch_status, schedule.RESOURCE, key[0], key[1], patch
        )
        if updated is None:
            return  # the schedule is gone
        latest = state.latest.get(key)
        if latest is None or newer(updated, latest):
            state.latest[key] = updated
    for event in events:
        kopf.event(scheduled, type=event.type, reason=event.reason, message=event.message)
        metrics.EVENTS.labels(event.type, event.reason).inc()
        metrics.EVENT_POSTS.inc()


def _set_timer(key: Key, delay: float | None) -> None:
    timer = state.timers.pop(key, None)
    if timer is not None:
        timer.cancel()
    if delay is None:
        return
    loop = asyncio.get_running_loop()
    state.timers[key] = loop.call_later(
        max(delay, 0.0) + TIMER_SLACK_SECONDS, lambda: asyncio.create_task(reconcile(*key))
    )


def _forget(key: Key) -> None:
    for table in (state.latest, state.created, state.deleted, state.locks):
        table.pop(key, None)
    state.waiting.discard(key)
    _set_timer(key, None)


def _now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC)
    return now + datetime.timedelta(seconds=CLOCK_OFFSET_SECONDS)
