"""The child kinds an MLJob creates, in one table: what each is called on the API server, how
long its name may be, which MLJob step field makes one, how its status maps to a step phase and
which builder makes it. The glue (watches, creates, deletes, patches), the admission webhook,
the metrics and local mode all read this table; adding a kind is one entry here (plus its
builder in builders.py and its state mapper in states.py).

Pure and at the top of the import graph: this module imports builders and states, never the
other way round (their public dispatch functions look the table up at call time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mljob import builders, states
from mljob import constants as c

Obj = dict[str, Any]


@dataclass(frozen=True)
class ChildKind:
    kind: str
    group: str
    version: str
    plural: str
    name_limit: int  # DNS-1035 label limit of the child's name (see constants)
    # The MLJob step field that makes one ("spark": a SparkApplication per Spark step); None
    # for a kind no step makes by itself (the shared RayCluster, from spec.rayCluster).
    step_key: str | None
    engine: str | None  # the metrics' `engine` label of its steps; None if not a step's child
    # The builder: a step's child from (mljob, step, run, attempt); the RayCluster from
    # (mljob, run).
    build: Callable[..., Obj]
    # A step child's upstream status -> its step phase; None if not a step's child (the shared
    # RayCluster's readiness is states.ray_cluster_readiness).
    state: Callable[[Obj], states.ChildState] | None
    # Whether upstream honours a patched spec.suspend (the planner decides when per child).
    suspendable: bool
    # Whether a later run patches the child in place instead of making a new one (a serve
    # step's RayService): the admission webhook then asks for `patch` too.
    updated_in_place: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def resource(self) -> tuple[str, str, str]:
        """(group, version, plural), as kopf and kube.Api take a resource."""
        return (self.group, self.version, self.plural)


SPARK_APPLICATION = ChildKind(
    kind=c.SPARK_KIND,
    group="sparkoperator.k8s.io",
    version="v1beta2",
    plural="sparkapplications",
    name_limit=c.SPARK_APP_NAME_MAX,
    step_key="spark",
    engine="spark",
    build=builders.build_spark_application,
    state=states.spark_application_state,
    suspendable=True,
)
RAY_JOB = ChildKind(
    kind=c.RAY_JOB_KIND,
    group="ray.io",
    version="v1",
    plural="rayjobs",
    name_limit=c.RAY_JOB_NAME_MAX,
    step_key="ray",
    engine="ray",
    build=builders.build_ray_job,
    state=states.ray_job_state,
    suspendable=True,
)
RAY_CLUSTER = ChildKind(
    kind=c.RAY_CLUSTER_KIND,
    group="ray.io",
    version="v1",
    plural="rayclusters",
    name_limit=c.RAY_CLUSTER_NAME_MAX,
    step_key=None,
    engine=None,
    build=builders.build_ray_cluster,
    state=None,
    suspendable=True,
)

RAY_SERVICE = ChildKind(
    kind=c.RAY_SERVICE_KIND,
    group="ray.io",
    version="v1",
    plural="rayservices",
    name_limit=c.RAY_SERVICE_NAME_MAX,
    step_key="serve",
    engine="serve",
    build=builders.build_ray_service,
    state=states.ray_service_state,
    # KubeRay v1.7's RayService has spec.suspend, but suspending tears the serving cluster
    # down; an MLJob's suspend never reaches a model that is (or is about to be) serving.
    suspendable=False,
    updated_in_place=True,
)

CHILD_KINDS: tuple[ChildKind, ...] = (SPARK_APPLICATION, RAY_JOB, RAY_CLUSTER, RAY_SERVICE)
BY_KIND: dict[str, ChildKind] = {k.kind: k for k in CHILD_KINDS}
STEP_KINDS: tuple[ChildKind, ...] = tuple(k for k in CHILD_KINDS if k.step_key)


def of_step(step: Obj) -> ChildKind:
    """The kind of a step's child, by the step's engine field (validation allows exactly one;
    a step with none of them is taken as a Ray step, as before)."""
    return next((k for k in STEP_KINDS if k.step_key in step), RAY_JOB)


def child_state(child: Obj) -> states.ChildState:
    """A step child's state, by its kind."""
    kind = BY_KIND.get(str(child.get("kind")))
    if kind is None or kind.state is None:
        raise ValueError(f"not a step child kind: {child.get('kind')!r}")
    return kind.state(child)


def build_step_child(mljob: Obj, step: Obj, run: int, attempt: int) -> Obj:
    return of_step(step).build(mljob, step, run, attempt)


def produced(mljob: Obj) -> list[ChildKind]:
    """The kinds this MLJob's runs create, in table order: each step kind some step uses, and
    the shared RayCluster when spec.rayCluster is set and a Ray step would run on it."""
    spec = mljob.get("spec") or {}
    steps = spec.get("steps") or []
    used = {k.kind for k in STEP_KINDS if any(k.step_key in step for step in steps)}
    if spec.get("rayCluster") and RAY_JOB.kind in used:
        used.add(RAY_CLUSTER.kind)
    return [k for k in CHILD_KINDS if k.kind in used]
