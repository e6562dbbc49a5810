"""What the kopf glue asks of kopf per watch event (issue 14, CPU per pipeline): the handlers
as registered with kopf, read from its registry (no cluster, nothing run)."""

from __future__ import annotations

import asyncio

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
