"""The `mljob` command: run an MLJob locally, validate or render it, show one on a cluster."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from mljob import constants as c

Obj = dict[str, Any]
EPILOG = """examples:
  mljob run examples/churn/mljob.yaml --local      run the pipeline on this machine
  mljob validate examples/churn/mljob.yaml         the operator's checks, offline
  mljob render examples/churn/mljob.yaml           the children the operator would create
  mljob status churn -n team-a                     steps of an MLJob on the cluster
  mljob operator --namespace team-a                run the operator (as in the chart)
  mljob dev-cluster                                a local kube-apiserver + etcd to try it on
"""


# Rendered offline, an MLJob has no uid yet; this stands in for it in ownerReferences.
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


class UserError(Exception):
    """Printed as one line (no traceback), exit code 2."""


def load_manifest(path: str, kinds: tuple[str, ...] = (c.KIND,)) -> Obj:
    """The MLJob in the file (every command reads files through mljob.manifests); `kinds`
    says which other kinds the command takes."""
    from mljob.manifests import ManifestError, read_mljob

    try:
        return read_mljob(path, kinds)
    except ManifestError as e:
        raise UserError(str(e)) from e


SCHEDULED_KIND = "ScheduledMLJob"  # mljob.schedule.KIND (imported lazily: cronsim, tzdata)
BOTH_KINDS = (c.KIND, SCHEDULED_KIND)  # what `mljob validate` and `mljob render` read


def validation_errors(mljob: Obj) -> list[str]:
    """The operator's messages: validate() for an MLJob, validate_scheduled() (the webhook's:
    the cron, the time zone, and the template as the MLJob a firing creates) for a schedule."""
    if mljob.get("kind") == SCHEDULED_KIND:
        from mljob.schedule import validate_scheduled

        return validate_scheduled(mljob)
    from mljob.validation import validate

    return validate(mljob)


# --- subcommands -----------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from mljob.local import LocalRunError
    from mljob.local.runner import RunOptions, run_local

    mljob = load_manifest(args.file)
    options = RunOptions(
        app_dir=Path(args.app_dir) if args.app_dir else None,
        runs_dir=Path(args.runs_dir),
        max_parallel=args.max_parallel,
        strict_versions=args.strict_versions,
        exit_after_smoke=args.exit_after_smoke,
    )
    try:
        return run_local(mljob, Path(args.file), options)
    except LocalRunError as e:
        raise UserError(str(e)) from e


def cmd_validate(args: argparse.Namespace) -> int:
    errors = validation_errors(load_manifest(args.file, BOTH_KINDS))
    for error in errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    if not errors:
        print(f"{args.file}: valid")
    return 1 if errors else 0


def rendered_children(mljob: Obj, run: int) -> list[Obj]:
    """Exactly what the operator creates for a run: the shared RayCluster, then every step's
    child (first attempt)."""
    from mljob import builders

    children = [builders.build_ray_cluster(mljob, run)] if mljob["spec"].get("rayCluster") else []
    children += [builders.build_step_child(mljob, step, run, 1) for step in mljob["spec"]["steps"]]
    return children


def cmd_render(args: argparse.Namespace) -> int:
    mljob = load_manifest(args.file, BOTH_KINDS)
    errors = validation_errors(mljob)
    if errors:
        raise UserError(f"{args.file} is invalid: " + "; ".join(errors))
    if args.namespace:
        mljob["metadata"]["namespace"] = args.namespace
    mljob["metadata"].setdefault("uid", args.uid)
    if mljob["kind"] == SCHEDULED_KIND:
        print(yaml.safe_dump(scheduled_run(mljob, args.at), sort_keys=False), end="")
        return 0
    print(yaml.safe_dump_all(rendered_children(mljob, args.run), sort_keys=False), end="")
    return 0


def scheduled_run(scheduled: Obj, at: str | None) -> Obj:
    """The MLJob the schedule's firing at `at` (RFC 3339; default: its next firing from now)
    creates, as the operator creates it (render that file again for its children)."""
    from datetime import UTC, datetime

    from mljob import schedule

    if at:
        try:
            firing = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(
                f"--at {at!r}: not an RFC 3339 time, e.g. 2026-01-02T01:00:00Z"
            ) from None
        if firing.tzinfo is None:
            raise UserError(f"--at {at!r}: give a time zone, e.g. 2026-01-02T01:00:00Z")
    else:
        cron = schedule.parse_cron(scheduled["spec"]["schedule"], scheduled["spec"].get("timeZone"))
        next_firing = cron.next_after(datetime.now(UTC))
        if next_firing is None:
            raise UserError(f"{scheduled['metadata']['name']}: the schedule never fires again")
        firing = next_firing
    return schedule.build_run(scheduled, firing.astimezone(UTC))


def step_rows(mljob: Obj) -> list[tuple[str, ...]]:
    rows = [("STEP", "KIND", "PHASE", "CHILD", "STATE", "ATTEMPTS", "MESSAGE")]
    for step in (mljob.get("status") or {}).get("steps") or []:
        rows.append(
            tuple(
                str(step.get(k, "") or "")
                for k in ("name", "kind", "phase", "child", "childState", "attempts", "message")
            )
        )
    return rows


def format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def cmd_status(args: argparse.Namespace) -> int:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_kube_config(context=args.context)
    except (ConfigException, OSError):
        try:
            config.load_incluster_config()
        except ConfigException as e:
            raise UserError("no Kubernetes configuration found (set KUBECONFIG)") from e
    try:
        mljob = client.CustomObjectsApi().get_namespaced_custom_object(
            c.GROUP, c.VERSION, args.namespace, c.PLURAL, args.name
        )
    except ApiException as e:
        raise UserError(
            f"cannot read MLJob {args.namespace}/{args.name}: {e.status} {e.reason}"
        ) from e
    except OSError as e:
        raise UserError(f"cannot reach the cluster: {e}") from e
    status = mljob.get("status") or {}
    print(f"MLJob {args.namespace}/{args.name}: {status.get('phase', 'Pending')}")
    print(format_table(step_rows(mljob)))
    return 0


def check_webhook_certificate(cert: str, key: str) -> None:
    """Load the webhook's certificate and key now: kopf would only fail later, in its logs,
    with a traceback, while the pod looks alive."""
    import ssl

    from mljob.manifests import display_path

    for path in (cert, key):
        if not os.path.isfile(path):
            what = "is not a file" if os.path.exists(path) else "no such file"
            raise UserError(f"{display_path(path)}: {what} (webhook certificate or key)")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except OSError as e:  # ssl.SSLError is an OSError too
        reason = e.strerror or getattr(e, "reason", None) or str(e)
        raise UserError(
            f"{display_path(cert)}, {display_path(key)}: not a usable webhook certificate and "
            f"key (PEM, matching): {reason}"
        ) from e


def cmd_operator(args: argparse.Namespace) -> int:
    from mljob.serve import ServeOptions, WebhookOptions, serve
    from mljob.sharding import Shard, ShardError

    try:
        shard = Shard(_env_int(args.shard, "MLJOB_SHARD"), _env_int(args.shards, "MLJOB_SHARDS"))
    except ShardError as e:
        raise UserError(str(e)) from e
    webhook = None
    if args.webhook_port:
        check_webhook_certificate(args.webhook_cert, args.webhook_key)
        webhook = WebhookOptions(args.webhook_port, args.webhook_cert, args.webhook_key)

    serve(
        ServeOptions(
            namespaces=args.namespace,
            peering=args.peering,
            priority=args.priority,
            liveness=args.liveness or None,
            readiness=args.readiness or None,
            log_format=args.log_format,
            verbose=args.verbose,
            metrics_port=args.metrics_port,
            webhook=webhook,
            shard=shard,
        )
    )
    return 0


def _env_int(value: int | None, variable: str) -> int:
    """An option's value, else the environment variable's (the chart sets them), else the
    default of a single shard (index 0 of 1)."""
    if value is not None:
        return value
    raw = os.environ.get(variable)
    if raw is None or raw == "":
        return 1 if variable == "MLJOB_SHARDS" else 0
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"${variable}: must be an integer, got {raw!r}") from None


DEV_CLUSTER_INSTALL = "pip install 'mljob-operator[dev-cluster]'"


def cmd_dev_cluster(args: argparse.Namespace) -> int:
    """Start the test control plane for people. Its certificates need `cryptography`, which
    only the `dev-cluster` extra installs; its binaries need Go (or KUBEBUILDER_ASSETS)."""
    try:
        from mljob.testing import controlplane
        from mljob.testing.binaries import BinaryError
    except ImportError as e:
        if (e.name or "mljob").partition(".")[0] == "mljob":
            raise  # our own package is broken: that is a bug, not a missing extra
        raise UserError(
            f"`mljob dev-cluster` needs the dev-cluster extra ({e.name} is not installed): "
            f"{DEV_CLUSTER_INSTALL}"
        ) from e
    try:
        return controlplane.main(["--workdir", args.workdir] if args.workdir else []) or 0
    except BinaryError as e:
        raise UserError(str(e)) from e
    except OSError as e:  # e.g. --workdir is a file
        raise UserError(f"dev-cluster: {e}") from e


# --- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mljob",
        description="Run Spark + Ray pipelines (MLJob) locally, or inspect them for a cluster.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str, example: str):
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    run = add(
        "run",
        cmd_run,
        "run an MLJob's steps on this machine (local PySpark, local Ray)",
        "mljob run examples/churn/mljob.yaml --local",
    )
    run.add_argument("file", help="the MLJob manifest (YAML)")
    run.add_argument(
        "--local",
        action="store_true",
        default=True,
        help="run on this machine (the default and, for now, the only mode)",
    )
    run.add_argument(
        "--app-dir",
        help="the folder that stands for the image's /app (default: the manifest's folder)",
    )
    run.add_argument(
        "--runs-dir",
        default="mljob-runs",
        help="local root for remote dataPaths (default: ./mljob-runs)",
    )
    run.add_argument("--max-parallel", type=int, help="steps at once (default: CPU count)")
    run.add_argument(
        "--strict-versions",
        action="store_true",
        help="fail (instead of warning) when a step's rayVersion/sparkVersion is not the "
        "installed Ray/PySpark to the minor version",
    )
    run.add_argument(
        "--exit-after-smoke",
        action="store_true",
        help="end the run once its serve steps' applications run and answered their smoke "
        "requests (default: keep serving on 127.0.0.1 until Ctrl-C); for scripts and CI",
    )

    validate = add(
        "validate",
        cmd_validate,
        "check an MLJob (or a ScheduledMLJob and its template) with the operator's validation",
        "mljob validate examples/churn/mljob.yaml",
    )
    validate.add_argument("file")

    render = add(
        "render",
        cmd_render,
        "print the SparkApplication/RayJob/RayCluster objects the operator would create "
        "(for a ScheduledMLJob: the MLJob one firing creates)",
        "mljob render examples/churn/mljob.yaml -n team-a > children.yaml",
    )
    render.add_argument("file")
    render.add_argument("-n", "--namespace", help="namespace (default: the manifest's, or default)")
    render.add_argument("--run", type=int, default=1, help="run number (default: 1)")
    render.add_argument(
        "--at",
        help="ScheduledMLJob only: the firing to render, RFC 3339 (default: the next one)",
    )
    render.add_argument(
        "--uid",
        default=PLACEHOLDER_UID,
        help="the MLJob's uid for the children's ownerReferences (on a cluster the operator "
        "uses the real one; the default placeholder owns nothing, so the garbage collector "
        "would delete children created from this output)",
    )

    status = add(
        "status",
        cmd_status,
        "show an MLJob on the cluster, one row per step",
        "mljob status churn -n team-a",
    )
    status.add_argument("name")
    status.add_argument("-n", "--namespace", default="default")
    status.add_argument("--context", help="kubeconfig context")

    operator = add(
        "operator",
        cmd_operator,
        "run the operator: watch MLJobs and their children, create SparkApplications/RayJobs",
        "mljob operator --namespace team-a --namespace team-b",
    )
    operator.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="serve this namespace (repeatable; globs like team-* work); default: all",
    )
    operator.add_argument("--peering", help="kopf peering name, for more than one replica")
    operator.add_argument("--priority", type=int, default=0, help="peering priority")
    operator.add_argument(
        "--shards",
        type=int,
        help="run as one of N shards, each owning a stable share of the MLJobs by a hash of "
        "namespace/name (default: $MLJOB_SHARDS or 1; docs/scaling.md)",
    )
    operator.add_argument(
        "--shard",
        type=int,
        help="this process's shard, 0 to N-1 (default: $MLJOB_SHARD or 0); with --peering, "
        "the replicas of one shard share the peering <peering>-shard-<i>",
    )
    operator.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="health endpoint URL ('' to disable; default: %(default)s)",
    )
    operator.add_argument(
        "--readiness",
        default="",
        help="readiness endpoint URL, e.g. http://0.0.0.0:8082/readyz: 200 only once the "
        "operator watches and serves (default: off)",
    )
    operator.add_argument("--log-format", choices=["plain", "full", "json"], default="full")
    operator.add_argument("-v", "--verbose", action="store_true", help="log every event")
    operator.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("MLJOB_METRICS_PORT", "8080")),
        help="serve Prometheus /metrics on this port (0: off; default: %(default)s, "
        "or $MLJOB_METRICS_PORT)",
    )
    operator.add_argument(
        "--webhook-port", type=int, default=0, help="serve the admission webhook (0: off)"
    )
    operator.add_argument("--webhook-cert", default="/etc/mljob/webhook/tls.crt")
    operator.add_argument("--webhook-key", default="/etc/mljob/webhook/tls.key")

    dev = add(
        "dev-cluster",
        cmd_dev_cluster,
        "start a local kube-apiserver + etcd with the CRDs (for development)",
        "mljob dev-cluster --workdir /tmp/dev-cluster",
    )
    # Declared here, not passed through: argparse.REMAINDER after a subcommand drops options.
    dev.add_argument(
        "--workdir", help="keep state and kubeconfig here (default: a temp dir, removed at exit)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as e:
        print(f"mljob: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mljob: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
