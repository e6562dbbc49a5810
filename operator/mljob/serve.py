"""`mljob operator`: run the operator (the kopf handlers in mljob.handlers) in this process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import kopf

# kopf.run takes an Insights to share its view of the served resources and namespaces; the class
# is not re-exported at the top level (kopf < 2 pinned in pyproject.toml).
from kopf._cogs.structs.references import Insights

from mljob import census, sharding

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
    readiness: str | None = None  # e.g. http://0.0.0.0:8082/readyz (mljob.readiness)
    log_format: str = "full"
    verbose: bool = False
    metrics_port: int = 8080  # Prometheus /metrics on all interfaces; 0: off
    webhook: WebhookOptions | None = None  # serve the validating admission webhook
    # This process's share of the MLJobs and ScheduledMLJobs (--shard/--shards; docs/scaling.md):
    # with peering, the shard's own peering `<peering>-shard-<i>` elects its active replica.
    shard: sharding.Shard = field(default_factory=sharding.Shard)


@dataclass(frozen=True)
class WebhookOptions:
    port: int = 9443
    certfile: str = "/etc/mljob/webhook/tls.crt"  # mounted from the chart's Secret
    keyfile: str = "/etc/mljob/webhook/tls.key"
    addr: str = "0.0.0.0"


def serve(options: ServeOptions) -> None:
    # Importing registers the handlers with kopf: MLJobs, and ScheduledMLJobs.
    import mljob.handlers
    import mljob.schedule_handlers  # noqa: F401

    # Before kopf starts: its filters ask the shard from the first event on.
    sharding.configure(options.shard)
    census.install_from_env()  # the benchmark's heap census only (MLJOB_HEAP_CENSUS_DIR)
    kopf.configure(verbose=options.verbose, log_format=LOG_FORMATS[options.log_format])
    if options.shard.count > 1:
        logging.getLogger("mljob").info("serving %s of the MLJobs", options.shard)
    # kopf logs every handled event at INFO; the operator's own lines tell the story.
    if not options.verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    _serve_metrics_on_startup(options.metrics_port)
    if options.webhook:
        _enable_webhook(options.webhook)
    # kopf's view of what it serves (found CRDs, served namespaces), for readiness.
    insights = Insights()
    if options.readiness:
        _serve_readiness_on_startup(options, insights)
    kopf.run(
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        standalone=options.peering is None,
        peering_name=options.shard.peering_name(options.peering) if options.peering else None,
        priority=options.priority,
        liveness_endpoint=options.liveness,
        insights=insights,
    )


def _serve_readiness_on_startup(options: ServeOptions, insights: Insights) -> None:
    from mljob import readiness

    check = readiness.Readiness(
        insights,
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        webhook_port=options.webhook.port if options.webhook else None,
    )
    endpoint = options.readiness
    assert endpoint is not None

    @kopf.on.startup()
    async def readiness_server(memo: kopf.Memo, **_: object) -> None:
        memo.readiness_runner = await readiness.start(endpoint, check)

    @kopf.on.cleanup()
    async def readiness_server_stop(memo: kopf.Memo, **_: object) -> None:
        runner = memo.get("readiness_runner")
        if runner is not None:
            await runner.cleanup()


def _enable_webhook(options: WebhookOptions) -> None:
    """Serve the admission webhook with the given certificate. The ValidatingWebhookConfiguration
    is installed by the chart (or the tests), never by the operator: that would need cluster-wide
    write access to webhook configurations."""
    import mljob.admission  # noqa: F401  (registers the validation handler)

    @kopf.on.startup()
    def webhook_server(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.admission.server = kopf.WebhookServer(
            addr=options.addr,
            port=options.port,
            certfile=options.certfile,
            pkeyfile=options.keyfile,
        )


def _serve_metrics_on_startup(port: int) -> None:
    """Serve /metrics once the operator starts (0: off). A port that is taken is logged, not
    fatal: the operator's work matters more than its metrics."""
    if not port:
        return

    @kopf.on.startup()
    def metrics_server(logger: logging.Logger, **_: object) -> None:
        from mljob import metrics

        try:
            metrics.serve(port)
        except OSError as error:
            logger.error("cannot serve metrics on port %d: %s", port, error)
