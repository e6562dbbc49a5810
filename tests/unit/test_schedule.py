"""ScheduledMLJob's pure core (mljob.schedule): the cron maths across DST, validation of hostile
input, and plan(): firings, restart catch-up, the starting deadline, concurrency policies,
history pruning, idempotent names. Property tests drive a simulated world through plan()."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mljob import schedule as s
from mljob.testing.corpus import mljob as corpus_mljob
from mljob.testing.corpus import spark_step

T0 = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled(schedule: str = "*/10 * * * *", created: datetime = T0, **spec: object) -> dict:
    template = corpus_mljob([spark_step("prepare")])
    return {
        "apiVersion": "mljob.io/v1alpha1",
        "kind": "ScheduledMLJob",
        "metadata": {
            "name": "nightly",
            "namespace": "team-a",
            "uid": "u-1",
            "generation": 1,
            "creationTimestamp": ts(created),
        },
        "spec": {
            "schedule": schedule,
            "template": {"metadata": {"labels": {"team": "a"}}, "spec": template["spec"]},
            **spec,
        },
    }


def run(name: str, at: datetime, phase: str = "", completed: datetime | None = None) -> dict:
    status: dict = {"phase": phase} if phase else {}
    if completed:
        status["completionTime"] = ts(completed)
    return {
        "metadata": {
            "name": name,
            "annotations": {s.ANNOTATION_SCHEDULED_AT: ts(at)},
            "ownerReferences": [{"uid": "u-1", "controller": True}],
        },
        "status": status,
    }


def with_status(obj: dict, status: dict) -> dict:
    obj = copy.deepcopy(obj)
    obj["status"] = status
    return obj


def created(result: s.SchedulePlan) -> list[str]:
    return [a.name for a in result.actions if isinstance(a, s.CreateRun)]


def deleted(result: s.SchedulePlan, why: str | None = None) -> list[str]:
    return [
        a.name
        for a in result.actions
        if isinstance(a, s.DeleteRun) and (why is None or a.why == why)
    ]


# --- parsing and validation -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("", "a cron expression is required"),
        ("* * *", "has 3 fields"),
        ("0 0 * * * *", "has 6 fields"),  # no seconds field
        ("61 * * * *", "Bad minute"),
        ("0 25 * * *", "Bad hour"),
        ("0 0 30 2 *", "Bad day-of-month"),  # never fires
        ("@fortnightly", "unknown macro"),
        ("TZ=Europe/Berlin 0 2 * * *", "use spec.timeZone"),
        ("CRON_TZ=UTC 0 2 * * *", "use spec.timeZone"),
        ("x" * 300, "at most 256"),
    ],
)
def test_bad_cron_is_rejected_with_a_reason(schedule, message):
    with pytest.raises(s.ScheduleError, match=message):
        s.parse_cron(schedule)


@pytest.mark.parametrize(("macro", "expression"), sorted(s.MACROS.items()))
def test_macros(macro, expression):
    assert s.parse_cron(macro).expression == expression
    assert s.parse_cron(macro.upper()).expression == expression


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "Local", "", 3])
def test_bad_time_zone(zone):
    if zone == "":
        assert s.parse_time_zone(zone) is UTC
        return
    with pytest.raises(s.ScheduleError):
        s.parse_time_zone(zone)


def test_valid_schedule_has_no_errors():
    assert s.validate_scheduled(scheduled(timeZone="Europe/Berlin")) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedule": "every night"}, "spec.schedule: "),
        ({"timeZone": "Europe/Atlantis"}, "spec.timeZone: unknown time zone"),
        ({"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy: one of Allow, Forbid"),
        ({"successfulJobsHistoryLimit": -1}, "spec.successfulJobsHistoryLimit: an integer"),
        ({"failedJobsHistoryLimit": 1000}, "spec.failedJobsHistoryLimit: an integer"),
        ({"startingDeadlineSeconds": -5}, "spec.startingDeadlineSeconds: an integer"),
        ({"startingDeadlineSeconds": True}, "spec.startingDeadlineSeconds: an integer"),
        ({"suspend": "yes"}, "spec.suspend: must be true or false"),
        ({"jobTemplate": {}}, "spec.jobTemplate: unknown field"),
        ({"template": None}, "spec.template: required"),
    ],
)
def test_hostile_spec_fields_are_rejected(change, message):
    obj = scheduled()
    obj["spec"].update(change)
    errors = s.validate_scheduled(obj)
    assert any(message in e for e in errors), errors


def test_template_is_checked_by_the_mljobs_own_validate():
    obj = scheduled()
    steps = obj["spec"]["template"]["spec"]["steps"]
    steps.append({**spark_step("train"), "dependsOn": ["evaluate"]})
    steps.append({**spark_step("evaluate"), "dependsOn": ["train"]})
    errors = s.validate_scheduled(obj)
    assert any(e.startswith("spec.template.spec.steps") and "cycle" in e for e in errors), errors


def test_template_metadata_may_not_use_the_operators_prefix_or_other_fields():
    obj = scheduled()
    obj["spec"]["template"]["metadata"] = {"labels": {"mljob.io/run": "1"}, "name": "x"}
    errors = s.validate_scheduled(obj)
    assert "spec.template.metadata.name: only labels and annotations are allowed" in errors
    assert any("prefix is reserved" in e for e in errors)


def test_name_leaves_room_for_the_minute_suffix():
    obj = scheduled()
    obj["metadata"]["name"] = "a" * (s.NAME_MAX + 1)
    assert any("at most 54 characters" in e for e in s.validate_scheduled(obj))
    obj["metadata"]["name"] = "a" * s.NAME_MAX
    assert not any(e.startswith("metadata.name") for e in s.validate_scheduled(obj))


# --- cron maths across DST --------------------------------------------------------------------
BERLIN = ZoneInfo("Europe/Berlin")


def firings(cron: s.Cron, start: datetime, end: datetime) -> list[datetime]:
    out, t = [], start
    while (t := cron.next_after(t)) is not None and t <= end:
        out.append(t)
    return out


def test_fixed_time_in_the_skipped_hour_runs_once_right_after_the_jump():
    cron = s.parse_cron("30 2 * * *", "Europe/Berlin")  # 2025-03-30 02:00 -> 03:00 in Berlin
    day = firings(
        cron, datetime(2025, 3, 29, 23, tzinfo=UTC), datetime(2025, 3, 30, 22, tzinfo=UTC)
    )
    assert [t.astimezone(BERLIN).strftime("%H:%M %Z") for t in day] == ["03:00 CEST"]


def test_fixed_time_in_the_repeated_hour_runs_once():
    cron = s.parse_cron("30 2 * * *", "Europe/Berlin")  # 2025-10-26 03:00 -> 02:00 in Berlin
    day = firings(
        cron, datetime(2025, 10, 25, 22, tzinfo=UTC), datetime(2025, 10, 26, 22, tzinfo=UTC)
    )
    assert [t.astimezone(BERLIN).strftime("%H:%M %Z") for t in day] == ["02:30 CEST"]


def test_hourly_follows_real_time_across_dst():
    cron = s.parse_cron("0 * * * *", "Europe/Berlin")
    fall = firings(
        cron, datetime(2025, 10, 25, 22, tzinfo=UTC), datetime(2025, 10, 26, 23, tzinfo=UTC)
    )
    assert len(fall) == 25  # the local day of the change has 25 hours
    assert all((b - a) == timedelta(hours=1) for a, b in itertools.pairwise(fall))


def test_time_zone_moves_the_firing():
    utc = s.parse_cron("0 2 * * *").next_after(T0)
    ny = s.parse_cron("0 2 * * *", "America/New_York").next_after(T0)
    assert (utc, ny) == (datetime(2025, 6, 2, 2, tzinfo=UTC), datetime(2025, 6, 2, 6, tzinfo=UTC))


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago"]
ZONES += ["Asia/Kolkata", "Pacific/Chatham", "Europe/London", "America/Havana"]
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
crons = st.sampled_from(
    [
        "* * * * *",
        "*/7 * * * *",
        "30 2 * * *",
        "0 * * * *",
        "15 1-3 * * *",
        "0 2 * * 0",
        "59 23 31 12 *",
        "0 0 29 2 *",
        "@daily",
        "0 9 * * 1-5",
        "0 0,12 1,15 * *",
    ]
)


@settings(max_examples=300, deadline=None)
@given(expression=crons, zone=st.sampled_from(ZONES), t=instants)
def test_next_and_latest_agree(expression, zone, t):
    cron = s.parse_cron(expression, zone)
    after = cron.next_after(t)
    latest = cron.latest_at_or_before(t)
    assert after is not None and after > t
    assert latest is not None and latest <= t
    # No firing lies between them, and each direction finds the other's firing.
    assert cron.next_after(latest) == after
    assert cron.latest_at_or_before(after) == after
    assert cron.latest_at_or_before(after - timedelta(seconds=1)) == latest
    assert after.second == 0 and latest.second == 0


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    year=st.integers(2021, 2029),
)
def test_a_daily_schedule_fires_once_on_every_local_day_dst_included(zone, hour, minute, year):
    """Over a whole year, in every zone: one firing per local calendar day, none skipped (a
    time in the spring-forward gap runs right after it) and none doubled (fall-back)."""
    tz = ZoneInfo(zone)
    cron = s.parse_cron(f"{minute} {hour} * * *", zone)
    start = datetime(year, 1, 1, tzinfo=tz).astimezone(UTC)
    end = datetime(year + 1, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(seconds=1)
    days = [t.astimezone(tz).date() for t in firings(cron, start - timedelta(seconds=1), end)]
    assert len(days) == len(set(days))
    assert len(days) == (datetime(year + 1, 1, 1) - datetime(year, 1, 1)).days


# --- plan(): firings --------------------------------------------------------------------------
def test_nothing_fires_before_the_first_firing_after_creation():
    result = s.plan(scheduled(), [], T0 + timedelta(minutes=5))
    assert result.actions == []
    assert result.status["nextScheduleTime"] == "2025-06-01T12:10:00Z"
    assert result.requeue_after == pytest.approx(270)
    ready = {c["type"]: c["status"] for c in result.status["conditions"]}
    assert ready == {"Ready": "True", "Stalled": "False"}


def test_a_firing_creates_one_owned_run_named_from_its_minute():
    now = T0 + timedelta(minutes=9, seconds=31)  # 12:10:01
    result = s.plan(scheduled(), [], now)
    (action,) = result.actions
    assert isinstance(action, s.CreateRun)
    firing = datetime(2025, 6, 1, 12, 10, tzinfo=UTC)
    assert action.name == f"nightly-{int(firing.timestamp()) // 60}"
    meta = action.body["metadata"]
    assert meta["labels"] == {"team": "a", s.LABEL_SCHEDULE: "nightly"}
    assert meta["annotations"][s.ANNOTATION_SCHEDULED_AT] == "2025-06-01T12:10:00Z"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "mljob.io/v1alpha1",
            "kind": "ScheduledMLJob",
            "name": "nightly",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert action.body["spec"]["steps"][0]["name"] == "prepare"
    assert result.status["lastScheduleTime"] == "2025-06-01T12:10:00Z"
    assert result.status["active"] == [{"name": action.name, "scheduledTime": ts(firing)}]
    assert [e.reason for e in result.events] == [s.EVENT_RUN_CREATED]
    assert result.requeue_after == pytest.approx(599)


def test_a_run_that_exists_already_is_not_created_again():
    """The operator died between the create and the status write: the run is found by name."""
    now = datetime(2025, 6, 1, 12, 10, 5, tzinfo=UTC)
    firing = datetime(2025, 6, 1, 12, 10, tzinfo=UTC)
    existing = run(s.run_name("nightly", firing), firing)
    result = s.plan(scheduled(), [existing], now)
    assert result.actions == []
    assert result.status["lastScheduleTime"] == ts(firing)
    assert [a["name"] for a in result.status["active"]] == [existing["metadata"]["name"]]


def test_downtime_is_caught_up_once_with_the_newest_missed_firing():
    obj = with_status(scheduled(), {"lastScheduleTime": "2025-06-01T12:10:00Z"})
    now = datetime(2025, 6, 1, 15, 3, tzinfo=UTC)  # down for 17 firings
    result = s.plan(obj, [], now)
    assert created(result) == [s.run_name("nightly", datetime(2025, 6, 1, 15, 0, tzinfo=UTC))]
    again = s.plan(with_status(obj, result.status), [result.actions[0].body], now)
    assert again.actions == []


def test_a_firing_older_than_the_starting_deadline_is_skipped_and_reported_once():
    obj = with_status(
        scheduled(startingDeadlineSeconds=60), {"lastScheduleTime": "2025-06-01T12:10:00Z"}
    )
    now = datetime(2025, 6, 1, 15, 3, tzinfo=UTC)
    result = s.plan(obj, [], now)
    assert result.actions == []
    skipped = result.status["lastSkipped"]
    assert (skipped["scheduledTime"], skipped["reason"]) == (
        "2025-06-01T15:00:00Z",
        s.SKIPPED_DEADLINE,
    )
    assert [e.reason for e in result.events] == [s.EVENT_MISSED]
    assert "lastScheduleTime" in result.status and result.status["lastScheduleTime"] == (
        "2025-06-01T12:10:00Z"
    )
    again = s.plan(with_status(obj, result.status), [], now + timedelta(seconds=30))
    assert again.events == [] and again.actions == []
    # Within the deadline of the next firing, it runs.
    later = s.plan(
        with_status(obj, result.status), [], datetime(2025, 6, 1, 15, 10, 59, tzinfo=UTC)
    )
    assert created(later) == [s.run_name("nightly", datetime(2025, 6, 1, 15, 10, tzinfo=UTC))]


def test_within_the_starting_deadline_the_catch_up_runs():
    obj = with_status(
        scheduled(startingDeadlineSeconds=300), {"lastScheduleTime": "2025-06-01T12:10:00Z"}
    )
    result = s.plan(obj, [], datetime(2025, 6, 1, 15, 4, 59, tzinfo=UTC))
    assert len(created(result)) == 1


# --- concurrency -------------------------------------------------------------------------------
FIRST = datetime(2025, 6, 1, 12, 10, tzinfo=UTC)
SECOND = datetime(2025, 6, 1, 12, 20, tzinfo=UTC)
AT_SECOND = SECOND + timedelta(seconds=2)


def active_first() -> tuple[dict, list[dict]]:
    obj = with_status(scheduled(), {"lastScheduleTime": ts(FIRST)})
    return obj, [run(s.run_name("nightly", FIRST), FIRST, "Running")]


def test_allow_runs_side_by_side():
    obj, runs = active_first()
    result = s.plan(obj, runs, AT_SECOND)
    assert created(result) == [s.run_name("nightly", SECOND)] and deleted(result) == []
    assert len(result.status["active"]) == 2


def test_forbid_holds_the_firing_while_a_run_is_active_then_starts_it():
    obj, runs = active_first()
    obj["spec"]["concurrencyPolicy"] = "Forbid"
    held = s.plan(obj, runs, AT_SECOND)
    assert held.actions == []
    assert held.status["lastSkipped"]["reason"] == s.SKIPPED_FORBID
    assert [e.reason for e in held.events] == [s.EVENT_SKIPPED]
    assert held.status["lastScheduleTime"] == ts(FIRST)
    still = s.plan(with_status(obj, held.status), runs, AT_SECOND + timedelta(seconds=5))
    assert still.actions == [] and still.events == []
    # The active run ends: the held firing starts (no deadline set), and is no longer "skipped".
    runs[0]["status"] = {"phase": "Succeeded", "completionTime": ts(AT_SECOND)}
    started = s.plan(with_status(obj, held.status), runs, AT_SECOND + timedelta(seconds=9))
    assert created(started) == [s.run_name("nightly", SECOND)]
    assert "lastSkipped" not in started.status
    assert started.status["lastRun"]["phase"] == "Succeeded"


def test_forbid_with_a_deadline_drops_a_held_firing_that_became_too_late():
    obj, runs = active_first()
    obj["spec"].update(concurrencyPolicy="Forbid", startingDeadlineSeconds=30)
    runs[0]["status"] = {"phase": "Failed", "completionTime": ts(AT_SECOND)}
    result = s.plan(obj, runs, SECOND + timedelta(seconds=31))
    assert result.actions == []
    assert result.status["lastSkipped"]["reason"] == s.SKIPPED_DEADLINE


def test_replace_deletes_the_active_runs_before_creating_the_new_one():
    obj, runs = active_first()
    obj["spec"]["concurrencyPolicy"] = "Replace"
    result = s.plan(obj, runs, AT_SECOND)
    kinds = [(type(a).__name__, a.name) for a in result.actions]
    assert kinds == [
        ("DeleteRun", s.run_name("nightly", FIRST)),
        ("CreateRun", s.run_name("nightly", SECOND)),
    ]
    assert [a["name"] for a in result.status["active"]] == [s.run_name("nightly", SECOND)]
    assert s.EVENT_RUN_REPLACED in [e.reason for e in result.events]


def test_finished_runs_are_not_active_for_forbid():
    obj, runs = active_first()
    obj["spec"]["concurrencyPolicy"] = "Forbid"
    runs[0]["status"] = {"phase": "Failed", "completionTime": ts(FIRST + timedelta(minutes=1))}
    assert len(created(s.plan(obj, runs, AT_SECOND))) == 1


# --- history, outcome, suspend, invalid ----------------------------------------------------------
def test_history_limits_prune_the_oldest_finished_runs():
    obj = with_status(
        scheduled(successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1),
        {"lastScheduleTime": "2025-06-01T13:00:00Z"},
    )
    times = [T0 + timedelta(minutes=10 * i) for i in range(1, 7)]
    phases = ["Succeeded", "Failed", "Succeeded", "Failed", "Succeeded", ""]
    runs = [
        run(f"r{i}", t, p, t + timedelta(minutes=1) if p else None)
        for i, (t, p) in enumerate(zip(times, phases, strict=True))
    ]
    result = s.plan(obj, runs, datetime(2025, 6, 1, 13, 5, tzinfo=UTC))
    assert deleted(result, "pruned") == ["r0", "r1"]
    assert result.status["lastRun"]["name"] == "r4"
    assert result.status["lastSuccessfulTime"] == ts(times[4] + timedelta(minutes=1))
    assert [a["name"] for a in result.status["active"]] == ["r5"]
    # The outcome survives the runs' deletion.
    gone = s.plan(
        with_status(obj, result.status), runs[2:], datetime(2025, 6, 1, 13, 6, tzinfo=UTC)
    )
    assert gone.status["lastRun"]["name"] == "r4"


def test_zero_history_deletes_every_finished_run():
    obj = scheduled(successfulJobsHistoryLimit=0, failedJobsHistoryLimit=0)
    runs = [run("a", FIRST, "Succeeded", SECOND), run("b", SECOND, "Failed", SECOND)]
    assert deleted(s.plan(obj, runs, FIRST + timedelta(minutes=15))) == ["a", "b"]


def test_run_outcome_events():
    obj = with_status(scheduled(), {"lastScheduleTime": ts(FIRST)})
    failed = run("r", FIRST, "Failed", SECOND)
    failed["status"]["message"] = "step prepare failed: OOMKilled"
    result = s.plan(obj, [failed], FIRST + timedelta(minutes=5))
    assert [(e.type, e.reason) for e in result.events] == [("Warning", s.EVENT_RUN_FAILED)]
    assert "OOMKilled" in result.events[0].message


def test_suspend_starts_nothing_but_still_prunes():
    obj = with_status(
        scheduled(suspend=True, failedJobsHistoryLimit=0), {"lastScheduleTime": ts(FIRST)}
    )
    runs = [run("r", FIRST, "Failed", FIRST)]
    result = s.plan(obj, runs, AT_SECOND)
    assert created(result) == [] and deleted(result) == ["r"]
    assert result.requeue_after is None and "nextScheduleTime" not in result.status
    ready = next(c for c in result.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Suspended")


def test_resuming_catches_up_the_newest_missed_firing():
    obj = with_status(scheduled(), {"lastScheduleTime": ts(FIRST)})
    assert created(s.plan(obj, [], datetime(2025, 6, 2, 0, 0, 1, tzinfo=UTC))) == [
        s.run_name("nightly", datetime(2025, 6, 2, tzinfo=UTC))
    ]


def test_invalid_spec_is_stalled_and_starts_nothing():
    obj = scheduled(schedule="0 0 30 2 *")
    result = s.plan(obj, [], AT_SECOND)
    conditions = {c["type"]: (c["status"], c["reason"]) for c in result.status["conditions"]}
    assert conditions == {"Ready": ("False", "InvalidSpec"), "Stalled": ("True", "InvalidSpec")}
    assert result.actions == [] and result.requeue_after is None
    assert [e.reason for e in result.events] == ["InvalidSpec"]
    assert s.plan(with_status(obj, result.status), [], AT_SECOND).events == []


def test_condition_transition_time_is_kept_while_unchanged():
    first = s.plan(scheduled(), [], T0 + timedelta(minutes=1))
    later = s.plan(with_status(scheduled(), first.status), [], T0 + timedelta(minutes=2))
    assert first.status["conditions"] == later.status["conditions"]


def test_a_rejected_create_is_recorded_not_retried():
    obj = scheduled()
    result = s.plan(obj, [], FIRST + timedelta(seconds=1))
    (action,) = result.actions
    status, events = s.record_create_rejected({}, result.status, action, "exceeded quota")
    assert "active" not in status and status["lastScheduleTime"] == ts(FIRST)
    assert status["lastSkipped"]["reason"] == s.SKIPPED_REJECTED
    assert [e.reason for e in events] == [s.EVENT_REJECTED]
    again = s.plan(with_status(obj, status), [], FIRST + timedelta(seconds=5))
    assert again.actions == []


def test_scheduled_time_falls_back_to_the_name():
    body = {"metadata": {"name": "nightly-29145130"}}
    assert s.scheduled_time_of(body) == datetime.fromtimestamp(29145130 * 60, UTC)


# --- property: a simulated world -----------------------------------------------------------------
step = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 3 * 3600)),  # then reconcile
    st.tuples(st.just("down"), st.integers(60, 2 * 86400)),  # operator down: no reconcile
    st.tuples(st.just("finish"), st.sampled_from(["Succeeded", "Failed"])),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expression=st.sampled_from(["*/10 * * * *", "0 * * * *", "30 2 * * *", "*/45 1-4 * * *"]),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
    policy=st.sampled_from(s.CONCURRENCY_POLICIES),
    deadline=st.one_of(st.none(), st.integers(0, 7200)),
    keep_ok=st.integers(0, 3),
    keep_failed=st.integers(0, 2),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 1)),
    steps=st.lists(step, min_size=1, max_size=40),
)
def test_world(expression, zone, policy, deadline, keep_ok, keep_failed, start, steps):
    now = start.replace(tzinfo=UTC)
    spec: dict = {"timeZone": zone, "concurrencyPolicy": policy}
    spec.update(successfulJobsHistoryLimit=keep_ok, failedJobsHistoryLimit=keep_failed)
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    obj = scheduled(expression, created=now, **spec)
    cron = s.parse_cron(expression, zone)
    world: dict[str, dict] = {}  # name -> run body
    ever_created: list[str] = []

    def reconcile() -> None:
        before_active = [n for n, r in world.items() if not r["status"].get("phase")]
        previous = obj.get("status") or {}
        result = s.plan(obj, list(world.values()), now)
        creates = [a for a in result.actions if isinstance(a, s.CreateRun)]
        deletes = [a for a in result.actions if isinstance(a, s.DeleteRun)]
        assert len(creates) <= 1  # at most one firing per reconcile, however long the downtime
        for action in deletes:
            assert action.name in world
            if action.why == "pruned":
                assert world[action.name]["status"].get("phase") in ("Succeeded", "Failed")
            else:
                assert policy == s.REPLACE and creates
            del world[action.name]
        for action in creates:
            firing = action.scheduled_time
            assert action.name not in ever_created  # never twice for one firing
            assert cron.latest_at_or_before(firing) == firing  # a real firing ...
            # ... the newest one due, after the last one scheduled (or the creation)
            assert firing == cron.latest_at_or_before(now)
            assert ts(firing) > (previous.get("lastScheduleTime") or ts(start))
            if deadline is not None:
                assert (now - firing).total_seconds() <= deadline
            if policy == s.FORBID:
                assert not before_active
            world[action.name] = {**action.body, "status": {}}
            ever_created.append(action.name)
        active_now = [n for n, r in world.items() if not r["status"].get("phase")]
        if policy != s.ALLOW:
            assert len(active_now) <= 1
        assert sorted(a["name"] for a in result.status.get("active") or []) == sorted(active_now)
        ok = [r for r in world.values() if r["status"].get("phase") == "Succeeded"]
        bad = [r for r in world.values() if r["status"].get("phase") == "Failed"]
        assert len(ok) <= keep_ok and len(bad) <= keep_failed
        upcoming = cron.next_after(now)
        assert result.requeue_after == pytest.approx((upcoming - now).total_seconds())
        obj["status"] = result.status

    for kind, value in steps:
        if kind == "finish":
            active = [r for r in world.values() if not r["status"].get("phase")]
            if active:
                active[0]["status"] = {"phase": value, "completionTime": ts(now)}
            reconcile()
        else:
            now += timedelta(seconds=value)
            if kind == "advance":
                reconcile()
