"""The glue's per-MLJob memory is dropped whole when an MLJob is deleted."""

from __future__ import annotations

from mljob import handlers


def test_forgetting_a_deleted_mljob_drops_everything_known_of_it():
    key = ("team-a", "churn")
    state = handlers.state
    state.latest[key] = {"metadata": {"name": "churn"}}
    state.created[key] = {("RayJob", "churn-train-r1"): (0.0, {})}
    state.terminal_seen[key] = 1.0
    state.waiting.add(key)  # a reconcile that was cancelled while it waited for the lock
    state.lock(key)
    handlers._forget(key)
    assert key not in state.latest and key not in state.created
    assert key not in state.terminal_seen and key not in state.locks
    # else a new MLJob of the same name is taken as coalesced and never reconciled
    assert key not in state.waiting
