"""ScheduledMLJob on the real control plane, without waiting for wall-clock minutes:

- a firing missed while the operator was away is reproduced by writing an old
  status.lastScheduleTime (what a schedule that was not served looks like); with a yearly
  schedule the due firing is known exactly (this year's 1 January 00:00 UTC);
- the timer and the restart catch-up run against an operator of their own whose clock is
  shifted (MLJOB_CLOCK_OFFSET_SECONDS) so that a minute boundary comes seconds after it starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from mljob import schedule
from mljob.testing.operator_process import OperatorProcess

from .k8s import MLJOB, SPARK, create, get, patch_status, wait_for
from .test_pipeline import finish_spark, mljob, spark, wait_phase

pytestmark = pytest.mark.integration

SCHEDULED = ("mljob.io", "v1alpha1", "scheduledmljobs")
YEARLY = "0 0 1 1 *"


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled(name: str, cron: str = YEARLY, steps: list | None = None, **spec: object) -> dict:
    template = mljob(name, *(steps or [spark("prepare")]))
    return {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "ScheduledMLJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": cron,
            "template": {"metadata": {"labels": {"team": "a"}}, "spec": template["spec"]},
            **spec,
        },
    }


def runs(api_client, namespace: str, name: str) -> list[dict]:
    listed = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        *MLJOB[:2], namespace, MLJOB[2], label_selector=f"{schedule.LABEL_SCHEDULE}={name}"
    )
    return sorted(listed["items"], key=lambda r: r["metadata"]["name"])


def status_of(api_client, namespace: str, name: str) -> dict:
    return get(api_client, SCHEDULED, namespace, name).get("status") or {}


def wait_observed(api_client, namespace: str, name: str, generation: int = 1) -> dict:
    def observed():
        status = status_of(api_client, namespace, name)
        return status if status.get("observedGeneration") == generation else None

    return wait_for(observed, f"ScheduledMLJob {name} observed at generation {generation}")


def events(api_client, namespace: str, name: str) -> list[str]:
    listed = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=ScheduledMLJob"
    )
    return [e.reason for e in listed.items]


def wait_events(api_client, namespace: str, name: str, *reasons: str) -> None:
    """Events are posted after the status write that reports the change: wait for them."""
    wait_for(
        lambda: set(reasons) <= set(events(api_client, namespace, name)),
        f"the Events {', '.join(reasons)} on {name}",
    )


def this_years_first_firing() -> datetime:
    return datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)


def pretend_last_scheduled(api_client, namespace: str, name: str, when: datetime) -> None:
    patch_status(api_client, SCHEDULED, namespace, name, {"lastScheduleTime": ts(when)})


@pytest.mark.usefixtures("operator_process")
def test_missed_firings_are_caught_up_once_by_an_owned_run(api_client, namespace):
    made = create(api_client, SCHEDULED, namespace, scheduled("nightly"))
    status = wait_observed(api_client, namespace, "nightly")
    next_year = this_years_first_firing().replace(year=datetime.now(UTC).year + 1)
    assert status["nextScheduleTime"] == ts(next_year)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "Stalled": "False",
    }
    assert runs(api_client, namespace, "nightly") == []

    # Three years without the operator: one run, for the newest missed firing.
    pretend_last_scheduled(api_client, namespace, "nightly", datetime(2000, 1, 1, tzinfo=UTC))
    firing = this_years_first_firing()
    name = schedule.run_name("nightly", firing)
    (run,) = wait_for(lambda: runs(api_client, namespace, "nightly"), "the caught-up run")
    assert run["metadata"]["name"] == name
    owner = run["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "ScheduledMLJob",
        made["metadata"]["uid"],
        True,
    )
    assert run["metadata"]["labels"] == {"team": "a", schedule.LABEL_SCHEDULE: "nightly"}
    assert run["metadata"]["annotations"][schedule.ANNOTATION_SCHEDULED_AT] == ts(firing)
    status = wait_for(
        lambda: (s := status_of(api_client, namespace, "nightly")).get("active") and s,
        "the run listed as active",
    )
    assert status["lastScheduleTime"] == ts(firing)
    assert status["active"] == [{"name": name, "scheduledTime": ts(firing)}]

    # The run is an MLJob like any other: the operator runs it.
    app = wait_for(
        lambda: next(
            (
                a
                for a in children_of(api_client, namespace)
                if a["metadata"]["labels"]["mljob.io/name"] == name
            ),
            None,
        ),
        "the run's SparkApplication",
    )
    finish_spark(api_client, namespace, app["metadata"]["name"])
    wait_phase(api_client, namespace, name, "Succeeded")
    done = wait_for(
        lambda: (s := status_of(api_client, namespace, "nightly")).get("lastRun") and s,
        "the run's outcome in the schedule's status",
    )
    assert done["lastRun"]["name"] == name and done["lastRun"]["phase"] == "Succeeded"
    assert "active" not in done and done["lastSuccessfulTime"]
    wait_events(api_client, namespace, "nightly", "RunCreated", "RunSucceeded")

    # A restart that lost the status write finds the run by its name: no second run.
    pretend_last_scheduled(api_client, namespace, "nightly", datetime(2000, 1, 1, tzinfo=UTC))
    wait_for(
        lambda: status_of(api_client, namespace, "nightly").get("lastScheduleTime") == ts(firing),
        "lastScheduleTime repaired from the existing run",
    )
    assert [r["metadata"]["name"] for r in runs(api_client, namespace, "nightly")] == [name]


def children_of(api_client, namespace: str) -> list[dict]:
    return client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        *SPARK[:2], namespace, SPARK[2]
    )["items"]


def owned_run(owner: dict, name: str, at: datetime, steps: list | None = None) -> dict:
    body = mljob(name, *(steps or [spark("prepare")]))
    body["metadata"] = {
        "name": name,
        "labels": {schedule.LABEL_SCHEDULE: owner["metadata"]["name"]},
        "annotations": {schedule.ANNOTATION_SCHEDULED_AT: ts(at)},
        "ownerReferences": [schedule.owner_reference(owner)],
    }
    return body


def start_with_an_active_run(api_client, namespace: str, policy: str) -> tuple[dict, str]:
    made = create(
        api_client,
        SCHEDULED,
        namespace,
        scheduled("s", suspend=True, concurrencyPolicy=policy),
    )
    wait_observed(api_client, namespace, "s")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    create(api_client, MLJOB, namespace, owned_run(made, schedule.run_name("s", old), old))
    pretend_last_scheduled(api_client, namespace, "s", old)
    wait_for(
        lambda: len(status_of(api_client, namespace, "s").get("active") or []) == 1,
        "the pre-existing run listed as active",
    )
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        *SCHEDULED[:2], namespace, SCHEDULED[2], "s", {"spec": {"suspend": False}}
    )
    return made, schedule.run_name("s", old)


@pytest.mark.usefixtures("operator_process")
def test_forbid_holds_the_firing_while_a_run_is_active(api_client, namespace):
    _, active = start_with_an_active_run(api_client, namespace, "Forbid")
    skipped = wait_for(
        lambda: status_of(api_client, namespace, "s").get("lastSkipped"), "the held firing"
    )
    assert skipped["reason"] == "ConcurrencyForbid"
    assert skipped["scheduledTime"] == ts(this_years_first_firing())
    assert [r["metadata"]["name"] for r in runs(api_client, namespace, "s")] == [active]
    wait_events(api_client, namespace, "s", "ScheduleSkipped")


@pytest.mark.usefixtures("operator_process")
def test_replace_deletes_the_active_run_and_starts_the_new_one(api_client, namespace):
    _, active = start_with_an_active_run(api_client, namespace, "Replace")
    new = schedule.run_name("s", this_years_first_firing())
    wait_for(
        lambda: [r["metadata"]["name"] for r in runs(api_client, namespace, "s")] == [new],
        "the active run replaced by the new one",
    )
    assert active != new
    wait_events(api_client, namespace, "s", "RunReplaced", "RunCreated")


@pytest.mark.usefixtures("operator_process")
def test_history_limit_prunes_the_oldest_finished_runs(api_client, namespace):
    made = create(api_client, SCHEDULED, namespace, scheduled("s", failedJobsHistoryLimit=1))
    wait_observed(api_client, namespace, "s")
    # validate() fails a dependency cycle (the CRD cannot see it): each run fails at once.
    cycle = [spark("a", dependsOn=["b"]), spark("b", dependsOn=["a"])]
    for year in (2019, 2020, 2021):
        at = datetime(year, 1, 1, tzinfo=UTC)
        create(api_client, MLJOB, namespace, owned_run(made, schedule.run_name("s", at), at, cycle))
    newest = schedule.run_name("s", datetime(2021, 1, 1, tzinfo=UTC))
    wait_for(
        lambda: [r["metadata"]["name"] for r in runs(api_client, namespace, "s")] == [newest],
        "the two oldest failed runs pruned",
    )
    # The runs end in any order: lastRun settles on the newest once all three were seen.
    wait_for(
        lambda: (status_of(api_client, namespace, "s").get("lastRun") or {}).get("name") == newest,
        "status.lastRun to name the newest run",
    )
    assert status_of(api_client, namespace, "s")["lastRun"]["phase"] == "Failed"
    wait_events(api_client, namespace, "s", "RunPruned", "RunFailed")


@pytest.mark.usefixtures("operator_process")
def test_an_invalid_template_stalls_the_schedule(api_client, namespace):
    cycle = [spark("a", dependsOn=["b"]), spark("b", dependsOn=["a"])]
    create(api_client, SCHEDULED, namespace, scheduled("bad", steps=cycle))
    status = wait_observed(api_client, namespace, "bad")
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and "spec.template.spec.steps" in stalled["message"]
    wait_events(api_client, namespace, "bad", "InvalidSpec")


# --- the timer and restarts, on an operator with a shifted clock ---------------------------------
@pytest.fixture
def own_namespace(api_client) -> Iterator[str]:
    name = f"s-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    yield name
    client.CoreV1Api(api_client).delete_namespace(name)


@pytest.fixture
def start_operator(control_plane, own_namespace, tmp_path) -> Iterator[Callable]:
    started: list[OperatorProcess] = []

    def start(offset: float) -> OperatorProcess:
        log = tmp_path / f"operator-{len(started)}.log"
        env = {"MLJOB_CLOCK_OFFSET_SECONDS": str(offset)}
        process = OperatorProcess(control_plane, log, namespaces=[own_namespace], env=env)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def offset_to(boundary: datetime, lead: float) -> float:
    """The clock offset that makes the operator's clock reach `boundary` `lead` seconds from now."""
    return (boundary - datetime.now(UTC)).total_seconds() - lead


def test_the_timer_fires_at_the_minute_and_a_restart_catches_up_once(
    api_client, own_namespace, start_operator
):
    namespace = own_namespace
    made = create(api_client, SCHEDULED, namespace, scheduled("m", "* * * * *"))
    # The first minute boundary after the schedule's creation, reached by the operator's clock
    # about 15 s from now (it usually starts in less): nothing before it is due; the timer fires it.
    created = datetime.fromisoformat(made["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    boundary = created.replace(second=0) + timedelta(minutes=1)
    operator = start_operator(offset_to(boundary, 15))
    first = schedule.run_name("m", boundary)
    # (On a loaded machine the operator may start after its clock passed the boundary; then its
    # first reconcile fires it instead of the timer: the run is the same.)
    wait_for(
        lambda: [r["metadata"]["name"] for r in runs(api_client, namespace, "m")] == [first],
        "the run of the first firing, from the timer",
        timeout=40,
    )
    # The run is created before the status write that records its firing: wait for that write.
    wait_for(
        lambda: status_of(api_client, namespace, "m").get("lastScheduleTime") == ts(boundary),
        "lastScheduleTime recorded as the first firing",
    )

    # The operator dies and comes back 3.5 minutes (of its clock) later: one run, the newest.
    operator.kill()
    later = boundary + timedelta(minutes=3, seconds=30)
    start_operator(offset_to(later, 0))
    newest = schedule.run_name("m", boundary + timedelta(minutes=3))
    wait_for(
        lambda: (
            [r["metadata"]["name"] for r in runs(api_client, namespace, "m")]
            == sorted([first, newest])
        ),
        "exactly one caught-up run",
        timeout=30,
    )
    # Fence: the status write that follows the catch-up's create records that firing; nothing
    # else is due until the next one, 30 s of its clock away.
    caught_up = (boundary + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    wait_for(
        lambda: status_of(api_client, namespace, "m").get("lastScheduleTime") == caught_up,
        "status.lastScheduleTime to record the caught-up firing",
    )
    assert len(runs(api_client, namespace, "m")) == 2
