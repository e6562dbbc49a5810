"""What the kopf glue asks of kopf per watch event (issue 14, CPU per pipeline): the handlers
as registered with kopf, read from its registry (no cluster, nothing run)."""

from __future__ import annotations

import asyncio
import contextvars

import kopf

import mljob.admission
import mljob.handlers as handlers
import mljob.schedule_handlers  # registers its handlers, as `mljob operator` does


def registry() -> kopf.OperatorRegistry:
    assert mljob.admission  # registered too
    return kopf.get_default_registry()


def test_no_handler_needs_kopfs_diff_base():
    """handlers.NoDiffBase skips kopf's per-event deep copy of every object: that is right only
    while no on.create/update/delete/resume/field handler and no daemon or timer exists. Adding
    one: remove `settings.persistence.diffbase_storage = NoDiffBase()` from handlers.configure
    (kopf's default keeps the diff base in an annotation on each object)."""
    assert list(registry()._changing.get_all_handlers()) == []
    assert list(registry()._spawning.get_all_handlers()) == []


def test_the_diff_base_is_never_built_nor_read():
    storage = handlers.NoDiffBase()
    body = kopf.Body({"metadata": {"name": "x"}, "spec": {"a": 1}})
    assert storage.build(body=body) is None
    assert storage.fetch(body=body) is None


def test_the_per_event_index_handlers_run_inline_on_the_loop():
    """kopf runs a sync handler in its thread pool: a thread hop per watch event."""
    ours = {
        h.id: h.fn
        for h in registry()._indexing.get_all_handlers()
        if h.fn.__module__ == handlers.__name__
    }
    assert set(ours) == {"mljobs", *handlers.CHILD_INDEXES}
    assert all(asyncio.iscoroutinefunction(fn) for fn in ours.values())
    assert all(
        asyncio.iscoroutinefunction(h.fn)
        for h in registry()._watching.get_all_handlers()
        if h.fn.__module__ == handlers.__name__
    )


def test_a_resync_reconcile_posts_its_events_with_kopfs_queue_from_a_handlers_context():
    """kopf.event() reads kopf's Event queue from context variables that kopf sets in the tasks
    that run handlers; the resync task (started by a startup handler) lacks them, so its
    reconciles run in a handler's context remembered by handlers._remember_event_context."""
    from kopf._core.engines import posting  # where kopf keeps the Event queue (kopf < 2)

    body = {"apiVersion": "mljob.io/v1alpha1", "kind": "MLJob", "metadata": {"name": "x"}}

    async def post() -> None:
        kopf.event(body, type="Normal", reason="StepStarted", message="from the resync")

    async def scenario() -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()

        async def handler() -> None:  # what kopf sets up around every handler it runs
            posting.settings_var.set(kopf.OperatorSettings())
            posting.event_queue_var.set(queue)
            posting.event_queue_loop_var.set(asyncio.get_running_loop())
            handlers._remember_event_context()

        await asyncio.create_task(handler(), context=contextvars.Context())
        # the resync task: a context of its own, without kopf's variables
        resync = asyncio.create_task(
            handlers._in_event_context(post()), context=contextvars.Context()
        )
        await resync
        return queue

    saved = handlers.state.event_context
    handlers.state.event_context = None
    try:
        queue = asyncio.run(scenario())
    finally:
        handlers.state.event_context = saved
    assert queue.qsize() == 1 and queue.get_nowait().message == "from the resync"
