"""A fake cluster for planner tests: applies a Plan's actions like the kopf glue would."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from mljob import constants as c
from mljob.builders import merge_patch
from mljob.planner import (
    Create,
    Delete,
    Patch,
    Plan,
    plan,
    record_create_rejected,
    status_patch,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPARK_DONE = {"applicationState": {"state": "COMPLETED"}, "driverInfo": {}}
RAY_DONE = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}


class World:
    def __init__(self, mljob: dict):
        self.mljob = copy.deepcopy(mljob)
        self.children: dict[tuple[str, str], dict] = {}
        self.created: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.patched: list[tuple[str, str, dict]] = []
        self.events: list = []
        self.now = T0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def reconcile(self, seconds: float = 60) -> Plan:
        """Plan `seconds` after the previous reconcile and apply the actions like the glue."""
        self.advance(seconds)
        result = plan(self.mljob, list(self.children.values()), self.now)
        for action in result.actions:
            self._apply(action)
        self._write_status(result)
        return result

    def apply_rejecting(
        self, result: Plan, nth: int, message: str = "exceeded quota"
    ) -> tuple[Plan, list[str | None]]:
        """Apply a Plan made at `self.now` like the glue does when the API server refuses its
        `nth` create (modulo the number of creates; a plan without creates is applied whole):
        the creates after it are not sent, and the status written is the one of
        record_create_rejected. Returns that Plan and the skipped creates' steps."""
        creates = [a for a in result.actions if isinstance(a, Create)]
        rejected = creates[nth % len(creates)] if creates else None
        skipped: list[str | None] = []
        sent = True  # False after the rejected create: the glue sends no further create
        for action in result.actions:
            if action is rejected:
                sent = False
            elif isinstance(action, Create) and not sent:
                skipped.append(action.step)
            else:
                self._apply(action)
        if rejected is not None:
            old = self.mljob.get("status") or {}
            result = record_create_rejected(
                old,
                result.status,
                rejected.step,
                message,
                self.now,
                skipped,
                namespace=self.mljob["metadata"]["namespace"],
            )
            for action in result.actions:
                self._apply(action)
        self._write_status(result)
        return result, skipped

    def _write_status(self, result: Plan) -> None:
        """Apply the status like the API server applies the glue's merge patch."""
        old = self.mljob.get("status") or {}
        self.mljob["status"] = merge_patch(old, status_patch(old, result.status))
        assert self.mljob["status"] == result.status
        self.events += result.events

    def _apply(self, action) -> None:
        """One action, as the glue applies it (a shared RayCluster may be created again)."""
        if isinstance(action, Create):
            key = (action.kind, action.name)
            again = action.kind == c.RAY_CLUSTER_KIND and key not in self.children
            assert key not in self.created or again, f"created twice: {key}"
            self.created.append(key)
            self.children[key] = copy.deepcopy(action.body)
        elif isinstance(action, Delete):
            self.deleted.append((action.kind, action.name))
            self.children.pop((action.kind, action.name), None)
        elif isinstance(action, Patch):
            self.patched.append((action.kind, action.name, action.patch))
            key = (action.kind, action.name)
            if key in self.children:
                self.children[key] = merge_patch(self.children[key], action.patch)

    def set_status(self, kind: str, name: str, status: dict) -> None:
        self.children[(kind, name)]["status"] = status

    def finish(self, step: str, ok: bool = True) -> None:
        entry = self.step(step)
        if entry["kind"] == c.SPARK_KIND:
            status = (
                SPARK_DONE
                if ok
                else {
                    "applicationState": {"state": "FAILED", "errorMessage": "driver exited 1"},
                    "driverInfo": {},
                }
            )
        else:
            status = (
                RAY_DONE
                if ok
                else {
                    "jobDeploymentStatus": "Failed",
                    "reason": "AppFailed",
                    "message": "OOM",
                }
            )
        self.set_status(entry["kind"], entry["child"], status)

    def edit(self, **spec) -> None:
        """Change the spec like kubectl apply does (a new generation)."""
        self.mljob["spec"].update(spec)
        self.mljob["metadata"]["generation"] += 1

    def step(self, name: str) -> dict:
        return next(e for e in self.mljob["status"]["steps"] if e["name"] == name)

    @property
    def status(self) -> dict:
        return self.mljob["status"]
