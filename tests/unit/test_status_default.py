"""The MLJob CRD defaults `status` to {observedGeneration: 0} (docs/gitops.md: kstatus and Argo CD
read a fresh MLJob as not yet observed). The operator's first plan and its status patch must be
the same as for an MLJob with no status at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from planner_world import T0

from mljob.planner import plan, status_patch
from mljob.testing.corpus import mljob, ray_step, spark_step

CRD = Path(__file__).resolve().parents[2] / "crds" / "mljob.io_mljobs.yaml"
DEFAULTED = {"observedGeneration": 0}


def test_the_crd_defaults_status_to_observed_generation_zero():
    crd = yaml.safe_load(CRD.read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["default"] == DEFAULTED
    assert status["properties"]["observedGeneration"]["type"] == "integer"


@pytest.mark.parametrize(
    "job",
    [
        mljob(),
        mljob(steps=[spark_step("a"), ray_step("b", dependsOn=["a"])], suspend=True),
        mljob(steps=[spark_step("a"), spark_step("a")]),  # invalid: the Failed path
    ],
    ids=["pipeline", "suspended", "invalid"],
)
def test_a_defaulted_status_plans_like_no_status(job):
    bare = plan(job, [], T0)
    defaulted = plan({**job, "status": dict(DEFAULTED)}, [], T0)
    assert defaulted.actions == bare.actions
    assert defaulted.status == bare.status
    assert defaulted.events == bare.events
    assert defaulted.status["observedGeneration"] == job["metadata"].get("generation", 1)


def test_the_first_status_patch_writes_the_whole_status_over_the_default():
    job = mljob()
    new = plan({**job, "status": dict(DEFAULTED)}, [], T0).status
    assert status_patch(DEFAULTED, new) == new
