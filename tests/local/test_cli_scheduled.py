"""`mljob validate` and `mljob render` read a ScheduledMLJob too (issue 13): validate gives the
webhook's messages (validate_scheduled: cron, time zone, the template as the run it creates);
render prints the MLJob one firing creates, which render turns into children in turn."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mljob import schedule
from mljob.cli import main

from .conftest import EXAMPLE

SCHEDULED = {
    "apiVersion": "mljob.io/v1alpha1",
    "kind": "ScheduledMLJob",
    "metadata": {"name": "churn-nightly", "namespace": "team-a"},
    "spec": {
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Berlin",
        "template": {
            "metadata": {"labels": {"team": "a"}},
            "spec": yaml.safe_load((EXAMPLE / "mljob.yaml").read_text())["spec"],
        },
    },
}


def write(tmp_path: Path, document: dict, name: str = "scheduled.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_validate_accepts_a_valid_schedule(tmp_path: Path, capsys) -> None:
    assert main(["validate", write(tmp_path, SCHEDULED)]) == 0
    assert capsys.readouterr().out.strip().endswith(": valid")


def test_validate_prints_the_webhooks_messages_for_the_schedule_and_its_template(
    tmp_path: Path, capsys
) -> None:
    bad = copy.deepcopy(SCHEDULED)
    bad["spec"].update(schedule="0 25 * * *", timeZone="Mars/Olympus", failedJobsHistoryLimit=-1)
    bad["spec"]["template"]["spec"]["steps"][0]["outputs"] = ["../elsewhere"]
    path = write(tmp_path, bad)
    assert main(["validate", path]) == 1
    printed = capsys.readouterr().err.splitlines()
    assert printed == [f"{path}: {error}" for error in schedule.validate_scheduled(bad)]
    text = "\n".join(printed)
    for field in ("spec.schedule", "spec.timeZone", "spec.failedJobsHistoryLimit"):
        assert f"{path}: {field}: " in text
    assert f"{path}: spec.template.spec.steps[0].outputs[0]: '../elsewhere'" in text


def test_render_prints_the_mljob_of_one_firing(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, SCHEDULED)
    assert main(["render", path, "--at", "2026-01-02T01:00:00Z", "--uid", "u-1"]) == 0
    run = yaml.safe_load(capsys.readouterr().out)
    firing = datetime(2026, 1, 2, 1, tzinfo=UTC)
    expected = copy.deepcopy(SCHEDULED)
    expected["metadata"]["uid"] = "u-1"
    assert run == schedule.build_run(expected, firing)
    assert run["metadata"]["name"] == "churn-nightly-29455260"  # unix minutes of the firing
    assert run["metadata"]["labels"] == {"team": "a", "mljob.io/scheduled-by": "churn-nightly"}
    assert run["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert run["spec"] == SCHEDULED["spec"]["template"]["spec"]

    # ... and that MLJob renders into the children of its run
    assert main(["render", write(tmp_path, run, "run.yaml")]) == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds[0] == "SparkApplication" and "RayJob" in kinds


def test_render_defaults_to_the_next_firing(tmp_path: Path, capsys) -> None:
    before = datetime.now(UTC)
    assert main(["render", write(tmp_path, SCHEDULED)]) == 0
    run = yaml.safe_load(capsys.readouterr().out)
    fired = datetime.fromisoformat(run["metadata"]["annotations"]["mljob.io/scheduled-at"])
    cron = schedule.parse_cron("0 2 * * *", "Europe/Berlin")
    assert fired in (cron.next_after(before), cron.next_after(datetime.now(UTC)))


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("tomorrow", "--at 'tomorrow': not an RFC 3339 time"),
        ("2026-01-02T01:00:00", "--at '2026-01-02T01:00:00': give a time zone"),
    ],
)
def test_render_refuses_a_bad_firing_time_in_one_line(tmp_path: Path, capsys, at, message) -> None:
    assert main(["render", write(tmp_path, SCHEDULED), "--at", at]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_render_refuses_an_invalid_schedule(tmp_path: Path, capsys) -> None:
    bad = copy.deepcopy(SCHEDULED)
    bad["spec"]["schedule"] = "every night"
    assert main(["render", write(tmp_path, bad)]) == 2
    assert "is invalid: spec.schedule:" in capsys.readouterr().err


def test_other_kinds_are_named_in_the_message(tmp_path: Path, capsys) -> None:
    other = {**SCHEDULED, "kind": "CronJob"}
    assert main(["validate", write(tmp_path, other)]) == 2
    assert "kind is 'CronJob', expected MLJob or ScheduledMLJob" in capsys.readouterr().err
    # `mljob run` still takes an MLJob only
    assert main(["run", write(tmp_path, SCHEDULED)]) == 2
    assert "kind is 'ScheduledMLJob', expected MLJob" in capsys.readouterr().err
