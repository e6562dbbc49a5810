"""What the glue remembers between reconciles, and the decisions it takes from that memory.

The role KubeRay's `expectations` package plays for its controllers: a watch lags behind the
operator's own writes, so the glue (handlers.py) keeps, per MLJob,
- the newest MLJob body it wrote or saw (`current`, `remember`, `is_own_write`), so a
  reconcile that runs before its own status patch comes back through the watch does not plan
  from the older status, and the echo of that patch is not planned from again;
- the children it created (or found by a 409) that the watch has not delivered yet
  (`expect`, `children`): the planner takes a child recorded in status but absent from its input
  as deleted, so these are passed in until the watch has them, and forgotten after
  `created_ttl` seconds if it never does (created, then deleted at once by someone else);
- whether a reconcile already waits for the MLJob's lock (`try_wait`): a trigger that finds
  one returns at once, as the waiter will read the newest state once in (coalescing);
- the pending delayed reconcile (`replace_timer`) and when a child's terminal state was seen
  (`saw_terminal`, for mljob_operator_step_transition_seconds);
- since when a status write has been held back (`defer_status`): a live child's progress
  alone (planner.progress_only) waits up to `debounce` seconds for the next write;
- how many reconciles in a row raised (`reconcile_failed`), for the retry's backoff.

Also the pure decisions around the API's answers: which of two bodies is newer (`newer`),
whether a child is owned by an MLJob (`owned_by`), and what a create's answer means
(`create_outcome`): a 409 is adopted only when the existing child is owned by this MLJob, and a
400/403/422 is a rejection that fails the step with the server's message.

No kopf and no I/O here: the clock is injected, timers are anything with `cancel()`, and the
unit tests (tests/unit/test_expectations.py) drive it directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, MLJob name)
ChildKey = tuple[str, str]  # (kind, name)

# A child this process created is normally seen through its watch within milliseconds.
CREATED_MEMORY_SECONDS = 60.0
# How long a live child's progress (planner.progress_only) may wait for the next status write:
# a burst of child states (SUBMITTED, RUNNING, ... within this window) becomes one patch, and a
# state that stays is written at most this long after it was first seen. 10 s: the pipeline's
# phase, current step and every step's start and end are written at once anyway; this only
# delays a step's sub-state (Pending/Running, childState), and covers a Spark submission or a
# warm RayJob's start (docs/lifecycle.md, "What is written when").
STATUS_DEBOUNCE_SECONDS = 10.0
# A reconcile that raised (an API error or timeout under load) is tried again after this backoff,
# doubling per failure in a row up to the cap, instead of waiting for the next event or the
# slow resync (60 s: issue 14's wave-2 stall had a p99 of 61.6 s).
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
# Answers to a create that refuse this body for good (bad request, forbidden by RBAC or an
# admission webhook or a quota, invalid): retrying the same body would be refused again.
REJECTING_STATUSES = frozenset({400, 403, 422})


@dataclass(frozen=True)
class Exists:
    """A create answered 409: the child is there already (made by an earlier attempt)."""

    body: Obj


@dataclass(frozen=True)
class Rejected:
    """The API server refused a create (or the glue refused a same-named foreign child)."""

    status: int
    message: str


@dataclass(frozen=True)
class Created:
    """A create's child is ours: `adopted` when it existed already (a 409 on an earlier attempt
    of this very create, e.g. after a lost status write)."""

    body: Obj
    adopted: bool = False


class Timer(Protocol):
    def cancel(self) -> None: ...


def newer(a: Obj, b: Obj) -> bool:
    """Whether `a` is a newer version of the object than `b`: another uid (the MLJob was
    deleted and created again) always is; else compare resourceVersions (etcd revisions in
    practice; on anything unparsable trust `a`, the watch)."""
    if a["metadata"].get("uid") != b["metadata"].get("uid"):
        return True
    try:
        return int(a["metadata"]["resourceVersion"]) >= int(b["metadata"]["resourceVersion"])
    except (KeyError, ValueError, TypeError):
        return True


def key_of(child: Obj) -> ChildKey:
    return (str(child.get("kind")), child["metadata"]["name"])


def owned_by(child: Obj, uid: str) -> bool:
    """Whether `child` has an owner reference to the object with this uid."""
    return any(ref.get("uid") == uid for ref in child["metadata"].get("ownerReferences") or [])


def create_error(status: int, message: str) -> Rejected | None:
    """What a create refused with HTTP `status` means: a Rejected for the answers that refuse
    this body for good, None for anything else (a 409 is `Exists`; a 5xx or a timeout is the
    caller's to raise, and the next reconcile tries again)."""
    return Rejected(status, message) if status in REJECTING_STATUSES else None


def create_outcome(
    answer: Obj | Exists | Rejected, kind: str, name: str, owner_uid: str
) -> Created | Rejected:
    """The meaning of a create's answer for the MLJob with uid `owner_uid`: the created child,
    an existing child it owns (adopted), or a rejection. A same-named child that this MLJob does
    not own (another MLJob's, or made by hand) is refused, never adopted: the planner would
    otherwise mirror a stranger's status into a step."""
    if isinstance(answer, Rejected):
        return answer
    body = answer.body if isinstance(answer, Exists) else answer
    if not owned_by(body, owner_uid):
        return Rejected(409, f"a {kind} named {name} exists and is not owned by this MLJob")
    return Created(body, adopted=isinstance(answer, Exists))


class Memory:
    """The glue's per-MLJob memory, one instance per operator process."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        created_ttl: float = CREATED_MEMORY_SECONDS,
        debounce: float = STATUS_DEBOUNCE_SECONDS,
    ) -> None:
        self.clock = clock
        self.created_ttl = created_ttl
        self.debounce = debounce
        self.held_since: dict[Key, float] = {}
        self.failures: dict[Key, int] = {}
        self.latest: dict[Key, Obj] = {}
        self.created: dict[Key, dict[ChildKey, tuple[float, Obj]]] = {}
        self.waiting: set[Key] = set()
        self.timers: dict[Key, Timer] = {}
        self.terminal_seen: dict[Key, float] = {}
        self.locks: dict[Key, asyncio.Lock] = {}

    # --- the MLJob body ---
    def current(self, key: Key, seen: Obj | None) -> Obj | None:
        """The MLJob to plan from: the newer of `seen` (the watch's, None when it has none)
        and the body this process last wrote or saw."""
        latest = self.latest.get(key)
        if seen is None:
            return latest
        if latest is None or newer(seen, latest):
            self.latest[key] = seen
            return seen
        return latest

    def remember(self, key: Key, body: Obj) -> None:
        """Keep `body` (a status write's answer) unless a newer one is known."""
        latest = self.latest.get(key)
        if latest is None or newer(body, latest):
            self.latest[key] = body

    def status_written(self, key: Key, answer: Obj | None) -> bool:
        """Record a status patch's answer; False when it was a 404 (the MLJob is gone: nothing
        to remember and nothing more to say about it)."""
        if answer is None:
            return False
        self.remember(key, answer)
        return True

    def is_own_write(self, key: Key, body: Obj) -> bool:
        """Whether a watch event's `body` is the echo of this process's own last write (same
        resourceVersion): nothing new to plan from."""
        latest = self.latest.get(key)
        if latest is None:
            return False
        version = latest["metadata"].get("resourceVersion")
        return version is not None and version == body["metadata"].get("resourceVersion")

    def known_phases(self) -> list[str | None]:
        """status.phase of every MLJob this process knows."""
        return [(body.get("status") or {}).get("phase") for body in list(self.latest.values())]

    # --- children created but not seen yet ---
    def expect(self, key: Key, child: Obj) -> None:
        """This process created `child` (or found it by a 409): pass it to the planner until the
        watch delivers it."""
        self.created.setdefault(key, {})[key_of(child)] = (self.clock(), child)

    def deleted(self, key: Key, kind: str, name: str) -> None:
        """This process deleted the child: stop passing it."""
        self.created.get(key, {}).pop((kind, name), None)

    def overdue(self, key: Key, indexed: Iterable[Obj]) -> list[ChildKey]:
        """Created children the watch has not delivered within `created_ttl`. Either someone
        deleted them at once, or the watch is that far behind (under load, issue 14): the glue
        reads each one from the API server and tells `confirm` before the planner may take it
        as deleted and fail its step."""
        seen = {key_of(child) for child in indexed}
        expired = self.clock() - self.created_ttl
        pending = self.created.get(key, {})
        return [k for k, (added, _) in pending.items() if k not in seen and added < expired]

    def confirm(self, key: Key, child_key: ChildKey, live: Obj | None) -> None:
        """What the API server answered for an overdue child: gone (None) is forgotten; found,
        it is passed on as read for another `created_ttl`, until the watch delivers it."""
        pending = self.created.get(key, {})
        if child_key not in pending:
            return
        if live is None:
            del pending[child_key]
        else:
            pending[child_key] = (self.clock(), live)

    def children(self, key: Key, uid: str, indexed: Iterable[Obj]) -> list[Obj]:
        """The MLJob's children for the planner: those the watch has (`indexed`) that the MLJob
        with this `uid` owns, plus the ones this process created and the watch has not delivered
        yet. A created child the watch has now, or that it has not delivered within
        `created_ttl` seconds (created and deleted at once), is dropped from the memory."""
        seen: dict[ChildKey, Obj] = {}
        for child in indexed:
            if owned_by(child, uid):
                seen[key_of(child)] = child
        pending = self.created.get(key, {})
        expired = self.clock() - self.created_ttl
        for child_key in [k for k, (added, _) in pending.items() if k in seen or added < expired]:
            del pending[child_key]
        return [
            *seen.values(),
            *(child for _, child in pending.values() if owned_by(child, uid)),
        ]

    # --- status writes held back ---
    def defer_status(self, key: Key, progress_only: bool) -> float | None:
        """Whether to hold back this reconcile's status write: None to write now (anything but a
        child's progress, or progress held back `debounce` seconds already), else the seconds
        until it is due (the glue reconciles again then). The clock runs from the first change
        held back, so a child that keeps changing does not hold its state back for longer."""
        if not progress_only or self.debounce <= 0:
            self.held_since.pop(key, None)
            return None
        now = self.clock()
        due = self.held_since.setdefault(key, now) + self.debounce - now
        if due <= 0:
            self.held_since.pop(key, None)
            return None
        return due

    # --- failed reconciles ---
    def reconcile_failed(self, key: Key) -> float:
        """A reconcile of this MLJob raised: the seconds until it is tried again (doubling per
        failure in a row, RETRY_FIRST_SECONDS up to RETRY_MAX_SECONDS)."""
        failures = self.failures.get(key, 0) + 1
        self.failures[key] = failures
        return float(min(RETRY_FIRST_SECONDS * 2 ** (failures - 1), RETRY_MAX_SECONDS))

    def reconcile_succeeded(self, key: Key) -> None:
        self.failures.pop(key, None)

    # --- coalescing, timers, transition latency ---
    def try_wait(self, key: Key) -> bool:
        """Take the one waiting place of this MLJob's reconciles; False when a reconcile waits
        already (it has read nothing yet, so it will plan from what this trigger saw)."""
        if key in self.waiting:
            return False
        self.waiting.add(key)
        return True

    def done_waiting(self, key: Key) -> None:
        """The waiting reconcile got the lock: the next trigger waits again."""
        self.waiting.discard(key)

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def replace_timer(self, key: Key, timer: Timer | None) -> None:
        """The one pending delayed reconcile per MLJob: cancel the old one, keep `timer`."""
        old = self.timers.pop(key, None)
        if old is not None:
            old.cancel()
        if timer is not None:
            self.timers[key] = timer

    def saw_terminal(self, key: Key, at: float) -> None:
        """A child event showed a terminal state at `at`; the first one counts until taken."""
        self.terminal_seen.setdefault(key, at)

    def take_terminal(self, key: Key) -> float | None:
        return self.terminal_seen.pop(key, None)

    def forget(self, key: Key) -> None:
        """The MLJob was deleted: drop everything known of it, so that a new MLJob of the same
        name starts afresh (a waiter cancelled while it waited never took itself out: left
        here, every reconcile of the new one would take itself as coalesced and do nothing)."""
        self.latest.pop(key, None)
        self.created.pop(key, None)
        self.locks.pop(key, None)
        self.terminal_seen.pop(key, None)
        self.held_since.pop(key, None)
        self.failures.pop(key, None)
        self.waiting.discard(key)
        self.replace_timer(key, None)
