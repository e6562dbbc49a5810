"""A fake cluster for planner tests: applies a Plan's actions like the kopf glue would."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from mljob import constants as c
from mljob.planner import Create, Delete, Plan, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPARK_DONE = {"applicationState": {"state": "COMPLETED"}, "driverInfo": {}}
RAY_DONE = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}


class World:
    def __init__(self, mljob: dict):
        self.mljob = copy.deepcopy(mljob)
        self.children: dict[tuple[str, str], dict] = {}
        self.created: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.events: list = []
        self.tick = 0

    def reconcile(self) -> Plan:
        self.tick += 1
        result = plan(self.mljob, list(self.children.values()), T0 + timedelta(minutes=self.tick))
        for action in result.actions:
            if isinstance(action, Create):
                key = (action.kind, action.name)
                assert key not in self.created, f"created twice: {key}"
                self.created.append(key)
                self.children[key] = copy.deepcopy(action.body)
            elif isinstance(action, Delete):
                self.deleted.append((action.kind, action.name))
                self.children.pop((action.kind, action.name), None)
        self.mljob["status"] = result.status
        self.events += result.events
        return result

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

    def step(self, name: str) -> dict:
        return next(e for e in self.mljob["status"]["steps"] if e["name"] == name)

    @property
    def status(self) -> dict:
        return self.mljob["status"]
