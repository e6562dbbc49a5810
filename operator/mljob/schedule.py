"""ScheduledMLJob: the pure schedule maths and planning (no I/O, no clock, no kopf).

`plan(scheduled, runs, now)` -> the runs (MLJobs) to create or delete, the new status, the
Events and when to look again, like `planner.plan` for an MLJob. It follows the Kubernetes
CronJob controller (pkg/controller/cronjob/cronjob_controllerv2.go, v1.34):

- The due firing is the LATEST firing of the cron schedule after `status.lastScheduleTime`
  (or the schedule's creation) and at or before `now`. Missed firings before it (the operator
  was down) are never run one by one: a downtime is caught up at most once, with the newest
  missed firing, and only while `now` is within `startingDeadlineSeconds` of it (unset: always).
  A firing that is too late is recorded in status.lastSkipped (MissedStartingDeadline).
- Each firing creates one MLJob named `<schedule>-<unix minutes of the firing>` (as CronJob
  names its Jobs), owned by the schedule (controller: true). The name is deterministic, so a
  restart between the create and the status write finds the run (409, or in the index) and
  never creates a second one.
- concurrencyPolicy: Allow starts runs side by side; Forbid holds a due firing while a run is
  active (it starts once the active run ends if still within the starting deadline, as CronJob
  does); Replace deletes the active runs, then starts the new one.
- Finished runs beyond successfulJobsHistoryLimit (default 3) / failedJobsHistoryLimit
  (default 1) are deleted, oldest first; status.lastRun and lastSuccessfulTime keep their
  outcome.
- Cron: 5 fields or @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly, evaluated by
  cronsim in `timeZone` (IANA, default UTC). Across DST, cronsim behaves like Debian cron: a
  job at a fixed local time in a skipped hour runs once right after the jump, a fixed-time job
  in a repeated hour runs once, a job with `*` in the minute or hour field runs on real time.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, NamedTuple, NotRequired, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from mljob import constants as c
from mljob.status import Condition
from mljob.validation import validate

Obj = dict[str, Any]

KIND = "ScheduledMLJob"
PLURAL = "scheduledmljobs"
RESOURCE = (c.GROUP, c.VERSION, PLURAL)
# On every run: which schedule made it, and the firing it is for (RFC 3339, UTC).
LABEL_SCHEDULE = "mljob.io/scheduled-by"
ANNOTATION_SCHEDULED_AT = "mljob.io/scheduled-at"

ALLOW, FORBID, REPLACE = "Allow", "Forbid", "Replace"
CONCURRENCY_POLICIES = (ALLOW, FORBID, REPLACE)
DEFAULT_SUCCESSFUL_HISTORY = 3
DEFAULT_FAILED_HISTORY = 1
MAX_HISTORY = 100
MAX_STARTING_DEADLINE = c.MAX_DEADLINE_SECONDS
# A run is named <schedule>-<unix minutes>: 8 digits until the year 2160.
MINUTE_DIGITS = 8
NAME_MAX = c.MLJOB_NAME_MAX - 1 - MINUTE_DIGITS  # 54: the run's name is an MLJob name
MAX_SCHEDULE_LENGTH = 256
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SPEC_FIELDS = frozenset(
    {
        "schedule",
        "timeZone",
        "concurrencyPolicy",
        "suspend",
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "template",
    }
)
TEMPLATE_FIELDS = frozenset({"metadata", "spec"})
TEMPLATE_METADATA_FIELDS = frozenset({"labels", "annotations"})

# status.lastSkipped.reason
SKIPPED_FORBID = "ConcurrencyForbid"
SKIPPED_DEADLINE = "MissedStartingDeadline"
SKIPPED_REJECTED = "CreateRejected"
# Conditions (metav1.Condition) and their reasons.
COND_READY, COND_STALLED = c.COND_READY, c.COND_STALLED
REASON_SCHEDULED = "Scheduled"
REASON_SUSPENDED = c.REASON_SUSPENDED
REASON_INVALID = c.REASON_INVALID_SPEC
# Event reasons on the ScheduledMLJob.
EVENT_RUN_CREATED = "RunCreated"
EVENT_RUN_REPLACED = "RunReplaced"
EVENT_RUN_PRUNED = "RunPruned"
EVENT_RUN_SUCCEEDED = "RunSucceeded"
EVENT_RUN_FAILED = "RunFailed"
EVENT_SKIPPED = "ScheduleSkipped"
EVENT_MISSED = "MissedSchedule"
EVENT_REJECTED = "RunRejected"


# --- status shape (the CRD's status schema; tests/unit/test_schedule_crd.py checks them equal) ---
class RunRef(TypedDict):
    """An active run: the MLJob's name and the firing it is for."""

    name: str
    scheduledTime: str


class LastRun(TypedDict):
    """The newest finished run."""

    name: str
    scheduledTime: str
    phase: str
    completionTime: NotRequired[str]
    message: NotRequired[str]


class Skipped(TypedDict):
    """The newest firing that did not start a run, and why."""

    scheduledTime: str
    reason: str
    message: str


class ScheduleStatus(TypedDict, total=False):
    observedGeneration: int
    lastScheduleTime: str
    nextScheduleTime: str
    lastSuccessfulTime: str
    active: list[RunRef]
    lastRun: LastRun
    lastSkipped: Skipped
    message: str
    conditions: list[Condition]


# --- actions and the plan -----------------------------------------------------------------------
@dataclass(frozen=True)
class CreateRun:
    """Create this MLJob (a 409 means the run exists: done, if this schedule owns it)."""

    body: Obj
    scheduled_time: datetime

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


@dataclass(frozen=True)
class DeleteRun:
    """Delete this MLJob (a 404 means it is gone: done)."""

    name: str
    namespace: str
    why: str  # "replaced" | "pruned"


ScheduleAction = CreateRun | DeleteRun


class Event(NamedTuple):
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class SchedulePlan:
    actions: list[ScheduleAction] = field(default_factory=list)
    status: ScheduleStatus = field(default_factory=ScheduleStatus)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None  # seconds until the next firing; None: none scheduled


class ScheduleError(ValueError):
    """A schedule or time zone that cannot be evaluated; the message says what to fix."""


# --- the cron maths -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Cron:
    expression: str  # 5 fields (macros expanded)
    zone: tzinfo

    def next_after(self, t: datetime) -> datetime | None:
        """The first firing strictly after `t` (UTC), None if it never fires again."""
        sim = CronSim(self.expression, t.astimezone(self.zone))
        try:
            return next(sim).astimezone(UTC)
        except StopIteration:
            return None

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last firing at or before `t` (UTC), None if there is none within 50 years."""
        start = t.replace(microsecond=0) + timedelta(seconds=1)
        sim = CronSim(self.expression, start.astimezone(self.zone), reverse=True)
        try:
            return next(sim).astimezone(UTC)
        except StopIteration:
            return None


def parse_cron(schedule: Any, time_zone: Any = None) -> Cron:
    """The schedule in its zone, or ScheduleError saying what is wrong."""
    if not isinstance(schedule, str) or not schedule.strip():
        raise ScheduleError("a cron expression is required, e.g. '0 2 * * *' (02:00 every day)")
    if len(schedule) > MAX_SCHEDULE_LENGTH:
        raise ScheduleError(f"at most {MAX_SCHEDULE_LENGTH} characters")
    text = " ".join(schedule.split())
    if re.match(r"^(CRON_)?TZ=", text):
        raise ScheduleError("a TZ= or CRON_TZ= prefix is not supported: use spec.timeZone")
    expression = MACROS.get(text.lower(), text)
    if expression.startswith("@"):
        raise ScheduleError(f"unknown macro {text!r}; known: {', '.join(MACROS)}")
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"{text!r} has {len(fields)} fields; a cron schedule has 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 2 * * *'"
        )
    zone = parse_time_zone(time_zone)
    try:
        cron = Cron(expression, zone)
        first = cron.next_after(datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise ScheduleError(f"{text!r}: {error}") from None
    if first is None:
        raise ScheduleError(f"{text!r} never fires")
    return cron


def parse_time_zone(time_zone: Any) -> tzinfo:
    if time_zone is None or time_zone == "":
        return UTC
    if not isinstance(time_zone, str) or not re.match(r"^[A-Za-z0-9_+\-/]{1,64}$", time_zone):
        raise ScheduleError(f"{time_zone!r} is not an IANA time zone name (e.g. Europe/Berlin)")
    if time_zone in ("UTC", "Etc/UTC"):
        return UTC
    if time_zone.lower() == "local":
        raise ScheduleError("'Local' depends on the operator's machine: name the zone")
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {time_zone!r} (an IANA name such as Europe/Berlin)"
        ) from None


def run_name(schedule_name: str, scheduled: datetime) -> str:
    """`<schedule>-<unix minutes>`: one name per firing, as CronJob names its Jobs."""
    return f"{schedule_name}-{int(scheduled.timestamp()) // 60}"


# --- validation ---------------------------------------------------------------------------------
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


def validate_scheduled(scheduled: Any) -> list[str]:
    """Every problem of a ScheduledMLJob as `<field path>: <what to fix>`; [] when valid. The
    template is checked by the MLJob's own validate(), as the run it would create."""
    if not isinstance(scheduled, dict):
        return ["(root): a ScheduledMLJob must be a mapping"]
    errors: list[str] = []
    metadata = scheduled.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        errors.append("metadata.name: required")
    elif len(name) > NAME_MAX:
        errors.append(
            f"metadata.name: at most {NAME_MAX} characters (each run is named "
            f"<name>-<unix minutes>, an MLJob name of at most {c.MLJOB_NAME_MAX}), got {len(name)}"
        )
    elif not _DNS1123_SUBDOMAIN.match(name):
        errors.append("metadata.name: must be lower-case alphanumerics, '-' or '.' (DNS-1123)")
    spec = scheduled.get("spec")
    if not isinstance(spec, dict):
        return [*errors, "spec: required (a mapping with schedule and template)"]
    errors += [f"spec.{k}: unknown field" for k in sorted(set(spec) - SPEC_FIELDS, key=str)]
    try:
        parse_cron(spec.get("schedule"), None)
    except ScheduleError as error:
        errors.append(f"spec.schedule: {error}")
    try:
        parse_time_zone(spec.get("timeZone"))
    except ScheduleError as error:
        errors.append(f"spec.timeZone: {error}")
    policy = spec.get("concurrencyPolicy", ALLOW)
    if policy not in CONCURRENCY_POLICIES:
        errors.append(f"spec.concurrencyPolicy: one of {', '.join(CONCURRENCY_POLICIES)}")
    if "suspend" in spec and not isinstance(spec["suspend"], bool):
        errors.append("spec.suspend: must be true or false")
    errors += _check_int(spec, "startingDeadlineSeconds", 0, MAX_STARTING_DEADLINE)
    errors += _check_int(spec, "successfulJobsHistoryLimit", 0, MAX_HISTORY)
    errors += _check_int(spec, "failedJobsHistoryLimit", 0, MAX_HISTORY)
    errors += _check_template(spec.get("template"), name if isinstance(name, str) else "")
    return errors


def _check_int(spec: Obj, key: str, low: int, high: int) -> list[str]:
    if key not in spec:
        return []
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return [f"spec.{key}: an integer from {low} to {high}"]
    return []


def _check_template(template: Any, name: str) -> list[str]:
    if not isinstance(template, dict):
        return ["spec.template: required (metadata: labels/annotations, spec: an MLJob spec)"]
    errors = [
        f"spec.template.{k}: unknown field"
        for k in sorted(set(template) - TEMPLATE_FIELDS, key=str)
    ]
    meta = template.get("metadata") or {}
    if not isinstance(meta, dict):
        return [*errors, "spec.template.metadata: must be a mapping"]
    errors += [
        f"spec.template.metadata.{k}: only labels and annotations are allowed"
        for k in sorted(set(meta) - TEMPLATE_METADATA_FIELDS, key=str)
    ]
    for part in ("labels", "annotations"):
        value = meta.get(part) or {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            errors.append(f"spec.template.metadata.{part}: must be a map of strings")
        elif any(k.startswith(c.RESERVED_LABEL_PREFIX) for k in value):
            errors.append(
                f"spec.template.metadata.{part}: the {c.RESERVED_LABEL_PREFIX} prefix is "
                "reserved for the operator"
            )
    if errors:
        return errors
    # The run as it would be created, under the longest name a run of this schedule gets.
    sample = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": f"{name or 'x'}-{'9' * MINUTE_DIGITS}", "namespace": "default"},
        "spec": template.get("spec"),
    }
    found = validate(sample)
    return [_template_path(e) for e in found if not e.startswith("metadata.")]


def _template_path(error: str) -> str:
    if error.startswith("spec"):
        return "spec.template." + error
    return "spec.template.spec: " + error


# --- building a run -----------------------------------------------------------------------------
def build_run(scheduled: Obj, scheduled_time: datetime) -> Obj:
    """The MLJob of one firing: the template's spec, labels and annotations, plus the
    schedule's label, the firing's annotation and a controller owner reference."""
    meta = scheduled["metadata"]
    template = scheduled["spec"]["template"]
    template_meta = template.get("metadata") or {}
    labels = {**(template_meta.get("labels") or {}), LABEL_SCHEDULE: meta["name"]}
    annotations = {
        **(template_meta.get("annotations") or {}),
        ANNOTATION_SCHEDULED_AT: _ts(scheduled_time),
    }
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {
            "name": run_name(meta["name"], scheduled_time),
            "namespace": meta.get("namespace", "default"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(scheduled)],
        },
        "spec": copy.deepcopy(template["spec"]),
    }


def owner_reference(scheduled: Obj) -> Obj:
    return {
        "apiVersion": c.API_VERSION,
        "kind": KIND,
        "name": scheduled["metadata"]["name"],
        "uid": scheduled["metadata"].get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def scheduled_time_of(run: Obj) -> datetime | None:
    """The firing a run is for: its annotation, else its name's minute suffix."""
    meta = run.get("metadata") or {}
    stamp = (meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_AT)
    if stamp:
        try:
            return _parse(stamp)
        except ValueError:
            pass
    suffix = str(meta.get("name", "")).rsplit("-", 1)[-1]
    if suffix.isdigit():
        return datetime.fromtimestamp(int(suffix) * 60, UTC)
    created = meta.get("creationTimestamp")
    return _parse(created) if created else None


# --- planning -----------------------------------------------------------------------------------
class _Run(NamedTuple):
    name: str
    scheduled: datetime
    phase: str
    completion: str | None
    message: str


def plan(scheduled: Obj, runs: list[Obj], now: datetime) -> SchedulePlan:
    """Plan one reconcile of a ScheduledMLJob given the MLJobs it owns (`runs`, as last seen,
    including those created and not yet seen through the watch) at `now`.

    Apply the actions in order (Replace's deletes come before the create), write `status`,
    post `events`, and reconcile again after `requeue_after` seconds."""
    old: ScheduleStatus = scheduled.get("status") or {}
    generation = int(scheduled.get("metadata", {}).get("generation") or 0)
    errors = validate_scheduled(scheduled)
    if errors:
        return _invalid(scheduled, old, errors, generation, now)
    spec = scheduled["spec"]
    cron = parse_cron(spec["schedule"], spec.get("timeZone"))
    namespace = scheduled["metadata"].get("namespace", "default")
    live = sorted(
        (_run(r) for r in runs if not (r.get("metadata") or {}).get("deletionTimestamp")),
        key=lambda r: (r.scheduled, r.name),
    )
    active = [r for r in live if r.phase not in c.TERMINAL_PHASES]
    finished = [r for r in live if r.phase in c.TERMINAL_PHASES]

    new: ScheduleStatus = {}
    for key in ("lastScheduleTime", "lastSuccessfulTime", "lastRun", "lastSkipped"):
        if key in old:
            new[key] = copy.deepcopy(old[key])
    new["observedGeneration"] = generation
    _note_finished(new, finished)
    actions: list[ScheduleAction] = []
    events: list[Event] = []
    actions += _prune(spec, finished, namespace)

    if spec.get("suspend"):
        message = "spec.suspend is true: no new runs"
        new.pop("nextScheduleTime", None)
        requeue = None
    else:
        created = _fire(scheduled, cron, new, live, active, now, actions, events)
        if created is not None:
            active = [r for r in active if r.name not in _replaced(actions)] + [created]
        upcoming = cron.next_after(now)
        requeue = (upcoming - now).total_seconds() if upcoming else None
        if upcoming:
            new["nextScheduleTime"] = _ts(upcoming)
        message = f"next run at {new['nextScheduleTime']}" if upcoming else "no future firing"
    new["active"] = [{"name": r.name, "scheduledTime": _ts(r.scheduled)} for r in active]
    if not new["active"]:
        del new["active"]
    new["message"] = message
    # Ready stays True while suspended: the schedule is reconciled as asked (kstatus, and so
    # Flux and helm --wait, would otherwise wait for a suspended schedule for ever).
    reason = REASON_SUSPENDED if spec.get("suspend") else REASON_SCHEDULED
    new["conditions"] = _conditions(
        [(COND_READY, "True", reason), (COND_STALLED, "False", reason)],
        message,
        generation,
        old,
        now,
    )
    for action in actions:
        if isinstance(action, DeleteRun) and action.why == "pruned":
            events.append(Event("Normal", EVENT_RUN_PRUNED, f"deleted finished run {action.name}"))
    return SchedulePlan(actions, new, [*diff_events(old, new), *events], requeue)


def _run(body: Obj) -> _Run:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    scheduled = scheduled_time_of(body) or datetime.fromtimestamp(0, UTC)
    return _Run(
        str(meta.get("name", "")),
        scheduled,
        str(status.get("phase") or ""),
        status.get("completionTime"),
        str(status.get("message") or ""),
    )


def _note_finished(new: ScheduleStatus, finished: list[_Run]) -> None:
    """status.lastRun (the newest finished run) and lastSuccessfulTime, kept when the runs are
    pruned."""
    for run in finished:
        last = new.get("lastRun")
        if last is None or _parse(last["scheduledTime"]) <= run.scheduled:
            entry: LastRun = {
                "name": run.name,
                "scheduledTime": _ts(run.scheduled),
                "phase": run.phase,
            }
            if run.completion:
                entry["completionTime"] = run.completion
            if run.message:
                entry["message"] = _clip(run.message)
            new["lastRun"] = entry
        if run.phase == c.SUCCEEDED and run.completion:
            before = new.get("lastSuccessfulTime")
            if before is None or _parse(before) < _parse(run.completion):
                new["lastSuccessfulTime"] = run.completion


def _prune(spec: Obj, finished: list[_Run], namespace: str) -> list[ScheduleAction]:
    actions: list[ScheduleAction] = []
    limits = {
        c.SUCCEEDED: spec.get("successfulJobsHistoryLimit", DEFAULT_SUCCESSFUL_HISTORY),
        c.FAILED: spec.get("failedJobsHistoryLimit", DEFAULT_FAILED_HISTORY),
    }
    for phase, limit in limits.items():
        done = [r for r in finished if r.phase == phase]  # oldest first
        actions += [
            DeleteRun(r.name, namespace, "pruned") for r in done[: max(len(done) - limit, 0)]
        ]
    return actions


def _fire(
    scheduled: Obj,
    cron: Cron,
    new: ScheduleStatus,
    live: list[_Run],
    active: list[_Run],
    now: datetime,
    actions: list[ScheduleAction],
    events: list[Event],
) -> _Run | None:
    """Start the due firing, if any (appends to actions/events, updates status); the new run."""
    spec = scheduled["spec"]
    last = new.get("lastScheduleTime") or scheduled["metadata"].get("creationTimestamp")
    earliest = _parse(last) if last else now
    due = cron.latest_at_or_before(now)
    if due is None or due <= earliest:
        return None
    name = run_name(scheduled["metadata"]["name"], due)
    if any(r.name == name for r in live):  # created before a lost status write: done
        new["lastScheduleTime"] = _ts(due)
        return None
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and (now - due).total_seconds() > deadline:
        new["lastSkipped"] = {
            "scheduledTime": _ts(due),
            "reason": SKIPPED_DEADLINE,
            "message": f"not started within startingDeadlineSeconds ({deadline}s): the "
            "operator was down, the schedule suspended or the firing held (Forbid)",
        }
        return None
    policy = spec.get("concurrencyPolicy", ALLOW)
    if active and policy == FORBID:
        names = ", ".join(r.name for r in active)
        new["lastSkipped"] = {
            "scheduledTime": _ts(due),
            "reason": SKIPPED_FORBID,
            "message": f"concurrencyPolicy Forbid and run(s) {names} still active; it starts "
            "when they end, if still within startingDeadlineSeconds",
        }
        return None
    if active and policy == REPLACE:
        namespace = scheduled["metadata"].get("namespace", "default")
        for run in active:
            actions.append(DeleteRun(run.name, namespace, "replaced"))
            events.append(
                Event(
                    "Normal",
                    EVENT_RUN_REPLACED,
                    f"deleted active run {run.name} (concurrencyPolicy Replace)",
                )
            )
    body = build_run(scheduled, due)
    actions.append(CreateRun(body, due))
    held = new.get("lastSkipped")
    if held and held["scheduledTime"] == _ts(due):
        del new["lastSkipped"]  # held (Forbid) and now started: not skipped after all
    events.append(Event("Normal", EVENT_RUN_CREATED, f"created MLJob {name} for {_ts(due)}"))
    new["lastScheduleTime"] = _ts(due)
    return _Run(name, due, "", None, "")


def _replaced(actions: list[ScheduleAction]) -> set[str]:
    return {a.name for a in actions if isinstance(a, DeleteRun) and a.why == "replaced"}


def record_create_rejected(
    old: ScheduleStatus, status: ScheduleStatus, action: CreateRun, message: str
) -> tuple[ScheduleStatus, list[Event]]:
    """The API server refused the run's create (quota, admission, a name owned by someone
    else): the firing is recorded as skipped with the server's message and not retried (no
    retry loop); the next firing tries again."""
    new = copy.deepcopy(status)
    new["active"] = [r for r in new.get("active") or [] if r["name"] != action.name]
    if not new["active"]:
        del new["active"]
    new["lastSkipped"] = {
        "scheduledTime": _ts(action.scheduled_time),
        "reason": SKIPPED_REJECTED,
        "message": _clip(f"the API server rejected MLJob {action.name}: {message}"),
    }
    events = [e for e in diff_events(old, new) if e.reason != EVENT_REJECTED]
    text = _clip(f"MLJob {action.name}: {message}")
    return new, [*events, Event("Warning", EVENT_REJECTED, text)]


def _invalid(
    scheduled: Obj, old: ScheduleStatus, errors: list[str], generation: int, now: datetime
) -> SchedulePlan:
    new: ScheduleStatus = {}
    for key in ("lastScheduleTime", "lastSuccessfulTime", "lastRun", "lastSkipped", "active"):
        if key in old:
            new[key] = copy.deepcopy(old[key])
    message = _clip("invalid spec: " + "; ".join(errors))
    new["observedGeneration"] = generation
    new["message"] = message
    new["conditions"] = _conditions(
        [(COND_READY, "False", REASON_INVALID), (COND_STALLED, "True", REASON_INVALID)],
        message,
        generation,
        old,
        now,
    )
    return SchedulePlan([], new, diff_events(old, new), None)


def _conditions(
    wanted: list[tuple[str, str, str]],
    message: str,
    generation: int,
    old: ScheduleStatus,
    now: datetime,
) -> list[Condition]:
    previous = {x["type"]: x for x in old.get("conditions") or []}
    result: list[Condition] = []
    for kind, value, reason in wanted:
        before = previous.get(kind)
        kept = before is not None and before["status"] == value
        result.append(
            {
                "type": kind,
                "status": value,
                "observedGeneration": generation,
                "lastTransitionTime": before["lastTransitionTime"] if kept and before else _ts(now),
                "reason": reason,
                "message": message,
            }
        )
    return result


def diff_events(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Event]:
    """Events for what changed between two statuses: a run's outcome, a skipped firing, the
    spec becoming invalid. (Creates, replacements and prunes come with their actions.)"""
    events: list[Event] = []
    last, before = new.get("lastRun"), old.get("lastRun")
    if last and (not before or (last["name"], last["phase"]) != (before["name"], before["phase"])):
        if last["phase"] == c.SUCCEEDED:
            events.append(Event("Normal", EVENT_RUN_SUCCEEDED, f"run {last['name']} succeeded"))
        else:
            why = f": {last['message']}" if last.get("message") else ""
            events.append(
                Event("Warning", EVENT_RUN_FAILED, _clip(f"run {last['name']} failed{why}"))
            )
    skipped, skipped_before = new.get("lastSkipped"), old.get("lastSkipped")
    if (
        skipped
        and _firing(skipped) != _firing(skipped_before)
        and (skipped["reason"] != SKIPPED_REJECTED)
    ):
        missed = skipped["reason"] == SKIPPED_DEADLINE
        events.append(
            Event(
                "Warning" if missed else "Normal",
                EVENT_MISSED if missed else EVENT_SKIPPED,
                _clip(f"firing at {skipped['scheduledTime']}: {skipped['message']}"),
            )
        )
    stalled = _condition(new, COND_STALLED)
    if stalled and stalled["status"] == "True":
        was = _condition(old, COND_STALLED)
        if not was or was["status"] != "True" or was["message"] != stalled["message"]:
            events.append(Event("Warning", REASON_INVALID, _clip(stalled["message"])))
    return events


def _firing(skipped: Mapping[str, Any] | None) -> tuple[Any, Any]:
    return (skipped or {}).get("scheduledTime"), (skipped or {}).get("reason")


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((x for x in status.get("conditions") or [] if x.get("type") == kind), None)


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= c.MAX_EVENT_MESSAGE else line[: c.MAX_EVENT_MESSAGE - 3] + "..."
