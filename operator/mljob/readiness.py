"""Readiness that means serving: `/readyz` (`mljob operator --readiness`, port 8082 in the chart).

kopf's `/healthz` (liveness) answers 200 as soon as the startup handlers ran, while kopf may still
be retrying refused reads, may never watch a namespace its RBAC does not cover, or may not have
found the Spark operator's and KubeRay's CRDs. Readiness is true only when all of these hold:

1. the startup handlers ran (the API client exists);
2. kopf finished its initial scans of CRDs and namespaces, found the CRD of every kind the
   operator watches (MLJob, SparkApplication, RayJob, RayCluster), and serves every namespace
   given by name;
3. in every served namespace (or cluster-wide), the operator's own identity can list every
   watched kind: what kopf's watch needs first (checked until it succeeded once per kind and
   namespace, then not again);
4. none of kopf's watchers failed for good (kopf does not restart a failed watcher, and without
   its initial listing kopf holds every handler: only a restart helps);
5. with `--webhook-port`, the admission webhook accepts connections.

The answer is JSON: `{"ready": true}` (200) or `{"ready": false, "waiting": [reasons]}` (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mljob import constants as c
from mljob import kinds

logger = logging.getLogger("mljob")

Resource = tuple[str, str, str]  # (group, version, plural)
WATCHED: tuple[Resource, ...] = (
    (c.GROUP, c.VERSION, c.PLURAL),
    *(kind.resource for kind in kinds.CHILD_KINDS),
)
# kopf logs "Watcher for <resource>@<namespace> has failed: ..." from this logger when a
# watcher task ends with an error; it is never restarted.
KOPF_ORCHESTRATION_LOGGER = "kopf._core.reactor.orchestration"
LIST_TIMEOUT_SECONDS = 5.0


# --- the decision, pure (tests/unit/test_readiness.py) -----------------------------------------
def watcher_failure(message: str) -> str | None:
    """`<resource>@<namespace>` from kopf's "Watcher for ... has failed: ..." log line."""
    prefix, marker = "Watcher for ", " has failed"
    if message.startswith(prefix) and marker in message:
        return message.split(marker, 1)[0][len(prefix) :]
    return None


def our_failures(failed: Iterable[str], watched: Sequence[Resource] = WATCHED) -> list[str]:
    """The failed watchers of the kinds this operator watches (kopf names a resource
    `plural.version.group`)."""
    ours = {f"{plural}.{version}.{group}" for group, version, plural in watched}
    return [what for what in failed if what.split("@")[0] in ours]


def scan_reasons(
    failed: Sequence[str], resources_scanned: bool, namespaces_scanned: bool
) -> list[str]:
    """What holds everything else: a dead watcher, or kopf's initial scans not done yet."""
    reasons = [f"kopf's watcher for {what} failed: restart" for what in failed]
    if not resources_scanned:
        reasons.append("kopf's scan of the cluster's CRDs")
    if not namespaces_scanned:
        reasons.append("kopf's scan of the namespaces")
    return reasons


def served_namespaces(clusterwide: bool, kopf_namespaces: Iterable[str | None]) -> list[str | None]:
    """The namespaces to check listing in: [None] (cluster-wide) or kopf's, sorted."""
    if clusterwide:
        return [None]
    return [*sorted(ns for ns in kopf_namespaces if ns is not None)]


def coverage_reasons(
    found: set[tuple[str, str]],
    given: Sequence[str],
    served: Sequence[str | None],
    watched: Sequence[Resource] = WATCHED,
) -> list[str]:
    """A watched kind whose CRD kopf did not find ((group, plural) pairs); a namespace given by
    name that kopf does not serve (a glob may match none yet: that is not a reason)."""
    reasons = [
        f"the CRD of {plural}.{group} (not found by kopf)"
        for group, _, plural in watched
        if (group, plural) not in found
    ]
    reasons += [
        f"namespace {name!r} (not served by kopf)"
        for name in given
        if not _is_pattern(name) and name not in served
    ]
    return reasons


def lists_to_try(
    served: Sequence[str | None],
    listed: set[tuple[Resource, str | None]],
    watched: Sequence[Resource] = WATCHED,
) -> list[tuple[Resource, str | None]]:
    """Every (kind, namespace) not yet listed successfully: once a list worked it is not
    checked again (kopf's watch holds from there)."""
    return [(r, ns) for r in watched for ns in served if (r, ns) not in listed]


def list_reason(resource: Resource, namespace: str | None, error: str) -> str:
    where = f"in namespace {namespace!r}" if namespace else "cluster-wide"
    return f"list {resource[2]}.{resource[0]} {where}: {error}"


def api_error(error: BaseException) -> str:
    """An API error in a few words: `403 Forbidden`, or the exception's type."""
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    return f"{status} {reason}" if status else type(error).__name__


# --- the I/O around it ------------------------------------------------------------------------
class _WatcherFailures(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.failed: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        what = watcher_failure(record.getMessage())
        if what is not None:
            self.failed.append(what)
        return True


@dataclass
class Readiness:
    insights: Any  # kopf's Insights of this operator (the resources and namespaces it serves)
    clusterwide: bool
    namespaces: Sequence[str] = ()  # as given: names or globs
    webhook_port: int | None = None
    listed: set[tuple[Resource, str | None]] = field(default_factory=set)
    watcher_failures: _WatcherFailures = field(default_factory=_WatcherFailures)

    def __post_init__(self) -> None:
        logging.getLogger(KOPF_ORCHESTRATION_LOGGER).addFilter(self.watcher_failures)

    async def waiting(self) -> list[str]:
        """Why the operator is not ready yet; empty when it is."""
        from mljob.handlers import state

        if state.api is None:
            return ["startup handlers"]
        # kopf's Insights: asyncio Events set after its initial scans, the resources it found.
        reasons: list[str] = scan_reasons(
            our_failures(self.watcher_failures.failed),
            self.insights.ready_resources.is_set(),
            self.insights.ready_namespaces.is_set(),
        )
        if reasons:
            return reasons
        found = {(r.group, r.plural) for r in self.insights.indexed_resources}
        served = served_namespaces(self.clusterwide, self.insights.namespaces)
        reasons = coverage_reasons(found, self.namespaces, served)
        reasons += await self._unlisted(state.api, served)
        if self.webhook_port and not await _accepts(self.webhook_port):
            reasons.append(f"the admission webhook on port {self.webhook_port}")
        return reasons

    async def _unlisted(self, api: Any, served: list[str | None]) -> list[str]:
        todo = lists_to_try(served, self.listed)
        results = await asyncio.gather(*(self._list(api, r, ns) for r, ns in todo))
        reasons = []
        for (resource, namespace), error in zip(todo, results, strict=True):
            if error is None:
                self.listed.add((resource, namespace))
            else:
                reasons.append(list_reason(resource, namespace, error))
        return reasons

    @staticmethod
    async def _list(api: Any, resource: Resource, namespace: str | None) -> str | None:
        group, version, plural = resource

        def call() -> None:
            kwargs = {"limit": 1, "_request_timeout": LIST_TIMEOUT_SECONDS}
            if namespace is None:
                api.objects.list_cluster_custom_object(group, version, plural, **kwargs)
            else:
                api.objects.list_namespaced_custom_object(
                    group, version, namespace, plural, **kwargs
                )

        try:
            await asyncio.to_thread(call)
        except Exception as error:
            return api_error(error)
        return None


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[!,")


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def start(endpoint: str, readiness: Readiness) -> Any:
    """Serve `readiness` at `endpoint` (http://host:port/path); returns the aiohttp runner to
    clean up at shutdown. A port that cannot be bound fails the start."""
    import aiohttp.web

    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme != "http" or not parts.port:
        raise ValueError(f"--readiness must be http://HOST:PORT/PATH, not {endpoint!r}")

    async def ready(_: aiohttp.web.Request) -> aiohttp.web.Response:
        waiting = await readiness.waiting()
        if waiting:
            return aiohttp.web.json_response({"ready": False, "waiting": waiting}, status=503)
        return aiohttp.web.json_response({"ready": True})

    app = aiohttp.web.Application()
    app.add_routes([aiohttp.web.get(parts.path or "/", ready)])
    runner = aiohttp.web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port).start()
    return runner
