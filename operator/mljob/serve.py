"""`mljob operator`: run the operator (the kopf handlers in mljob.handlers) in this process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import kopf

LOG_FORMATS = {
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
    "json": kopf.LogFormat.JSON,
}


@dataclass(frozen=True)
class ServeOptions:
    namespaces: Sequence[str] = ()  # names or globs ("team-*"); empty: the whole cluster
    peering: str | None = None  # with replicas > 1: the KopfPeering/ClusterKopfPeering name
    priority: int = 0
    liveness: str | None = "http://0.0.0.0:8081/healthz"
    log_format: str = "full"
    verbose: bool = False


def serve(options: ServeOptions) -> None:
    import mljob.handlers  # noqa: F401  (registers the handlers with kopf)

    kopf.configure(verbose=options.verbose, log_format=LOG_FORMATS[options.log_format])
    # kopf logs every handled event at INFO; the operator's own lines tell the story.
    if not options.verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        standalone=options.peering is None,
        peering_name=options.peering,
        priority=options.priority,
        liveness_endpoint=options.liveness,
    )
