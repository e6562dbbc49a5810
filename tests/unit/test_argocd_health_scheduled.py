"""The Argo CD health script for ScheduledMLJob (docs/argocd/mljob.io/ScheduledMLJob), and
kstatus's verdict on the same objects, in the engines Argo CD and Flux use (the gitops-verdict
helper, mljob.testing.gitops). The cases are the script's health_test.yaml, in Argo CD's format;
statuses written by schedule.plan() get the verdicts docs/scheduling.md promises."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from mljob import schedule
from mljob.testing.gitops import verdicts

HERE = Path(__file__).resolve().parents[2] / "docs" / "argocd" / "mljob.io" / "ScheduledMLJob"
SCRIPT = HERE / "health.lua"
CASES = yaml.safe_load((HERE / "health_test.yaml").read_text())["tests"]
# kstatus (Flux, helm --wait) reads only observedGeneration and the Stalled/Reconciling
# conditions: a failed run is not the schedule's failure.
KSTATUS = {
    "testdata/no_status.yaml": "Current",
    "testdata/defaulted_status.yaml": "InProgress",
    "testdata/stale_generation.yaml": "InProgress",
    "testdata/scheduled.yaml": "Current",
    "testdata/running.yaml": "Current",
    "testdata/last_run_failed.yaml": "Current",
    "testdata/invalid.yaml": "Failed",
    "testdata/suspended.yaml": "Current",
}


def load(case: dict) -> dict:
    return yaml.safe_load((HERE / case["inputPath"]).read_text())


def test_health_cases(gitops_verdict):
    got = verdicts(gitops_verdict, [load(c) for c in CASES], SCRIPT)
    assert [line["argocd"] for line in got] == [c["healthStatus"] for c in CASES]
    kstatus = {
        c["inputPath"]: line["kstatus"]["status"] for c, line in zip(CASES, got, strict=True)
    }
    assert kstatus == KSTATUS


def test_every_testdata_file_is_a_case():
    used = {c["inputPath"] for c in CASES}
    assert {f"testdata/{p.name}" for p in (HERE / "testdata").glob("*.yaml")} == used
    assert set(KSTATUS) == used


def test_statuses_the_planner_writes(gitops_verdict):
    base = load(next(c for c in CASES if c["inputPath"] == "testdata/no_status.yaml"))
    base["metadata"].update(generation=1, creationTimestamp="2026-01-01T00:00:00Z")
    base["metadata"]["uid"] = "u"
    now = datetime(2026, 1, 1, 3, tzinfo=UTC)
    fresh = schedule.plan(base, [], now).status
    invalid = copy.deepcopy(base)
    invalid["spec"]["schedule"] = "0 0 30 2 *"
    suspended = copy.deepcopy(base)
    suspended["spec"]["suspend"] = True
    failed_run = {
        "metadata": {
            "name": "nightly-1",
            "annotations": {schedule.ANNOTATION_SCHEDULED_AT: "2026-01-01T02:00:00Z"},
        },
        "status": {"phase": "Failed", "completionTime": "2026-01-01T02:10:00Z", "message": "boom"},
    }
    objects = []
    for obj, runs in [(base, []), (invalid, []), (suspended, []), (base, [failed_run])]:
        obj = copy.deepcopy(obj)
        obj["status"] = schedule.plan(obj, runs, now + timedelta(seconds=1)).status
        objects.append(obj)
    got = verdicts(gitops_verdict, objects, SCRIPT)
    assert [line["argocd"]["status"] for line in got] == [
        "Healthy",
        "Degraded",
        "Suspended",
        "Degraded",
    ]
    assert [line["kstatus"]["status"] for line in got] == [
        "Current",
        "Failed",
        "Current",
        "Current",
    ]
    assert fresh["nextScheduleTime"] == "2026-01-02T02:00:00Z"
