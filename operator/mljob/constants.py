"""Names shared by the API, the planner and the glue: one place, no magic strings elsewhere."""

from __future__ import annotations

# --- MLJob (our API) -------------------------------------------------------------------------
GROUP = "mljob.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MLJob"
PLURAL = "mljobs"

# --- children: their kinds (group, version, plural, builder, state mapper... in kinds.py) ---------
SPARK_KIND = "SparkApplication"
RAY_JOB_KIND = "RayJob"
RAY_CLUSTER_KIND = "RayCluster"
RAY_SERVICE_KIND = "RayService"

# Name limits (DNS-1035 labels). KubeRay: MaxRayJobNameLength = 53-6, MaxRayClusterNameLength = 53.
# Spark operator v2.5: a DNS-1035 label (63); its UI Service `<app>-ui-svc` is hashed if too long.
# Here rather than in kinds.py because naming.py, below the builders, needs them.
RAY_JOB_NAME_MAX = 47
RAY_CLUSTER_NAME_MAX = 53
SPARK_APP_NAME_MAX = 63
# A RayService's RayCluster is `<name>-<5 random>` (a RayCluster name, <= 53) and its Services
# `<name>-head-svc`/`<name>-serve-svc`: the RayJob's limit leaves room for all of them.
RAY_SERVICE_NAME_MAX = 47
NAME_LIMIT_OF_KIND = {
    SPARK_KIND: SPARK_APP_NAME_MAX,
    RAY_JOB_KIND: RAY_JOB_NAME_MAX,
    RAY_CLUSTER_KIND: RAY_CLUSTER_NAME_MAX,
    RAY_SERVICE_KIND: RAY_SERVICE_NAME_MAX,
}
# The port of a RayService's Serve Service (`<name>-serve-svc`), KubeRay's default.
RAY_SERVE_PORT = 8000

# MLJob names and step names become label values (<= 63 characters).
MLJOB_NAME_MAX = 63
STEP_NAME_MAX = 30
MAX_STEPS = 50
MAX_DEPENDS_ON = 20
MAX_RETRIES = 10
MAX_DEADLINE_SECONDS = 31_536_000  # one year; also spec.ttlSecondsAfterFinished
MAX_BACKOFF_SECONDS = 86_400

# --- lifecycle defaults (in code, not in the CRD: see docs/lifecycle.md) -----------------------
DEFAULT_BACKOFF_SECONDS = 10  # first retry waits this long, then doubles per failed attempt
DEFAULT_MAX_BACKOFF_SECONDS = 600  # the cap of that doubling
MAX_FAILURE_HISTORY = 5  # status.steps[].failures keeps the last few attempts' errors
MAX_RUN_HISTORY = 10  # status.runs keeps the last few previous runs
MAX_CACHE_KEY = 253  # steps[].cacheKey
MAX_OUTPUTS = 20  # steps[].outputs

# spec.onSpecChange: what a changed spec does to a run in progress.
WAIT_FOR_RUNNING = "WaitForRunning"  # default: children already running finish, then a new run
CANCEL_RUNNING = "CancelRunning"  # delete the running children now, then a new run
SPEC_CHANGE_POLICIES = (WAIT_FOR_RUNNING, CANCEL_RUNNING)
# Top-level spec fields that steer the current run instead of defining it: changing them never
# starts a new run (they are left out of status.specHash).
RUN_CONTROL_FIELDS = frozenset(
    {"suspend", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "onSpecChange"}
)
# spec.rayCluster.startPolicy: when the shared RayCluster of a run is created.
START_ON_DEMAND = "OnDemand"  # default: in the plan that starts the first Ray step
START_EAGER = "Eager"  # with the run's first step, so it warms up while Spark prepares the data
START_POLICIES = (START_ON_DEMAND, START_EAGER)
# Fields of spec.rayCluster that steer when the cluster starts, not what runs: left out of
# status.specHash like RUN_CONTROL_FIELDS.
RAY_CLUSTER_RUN_CONTROL_FIELDS = frozenset({"startPolicy"})

# --- labels, env -------------------------------------------------------------------------------
LABEL_NAME = "mljob.io/name"
LABEL_STEP = "mljob.io/step"
LABEL_RUN = "mljob.io/run"
LABEL_ATTEMPT = "mljob.io/attempt"  # on RayServices only (their name is the same every run)
RESERVED_LABEL_PREFIX = "mljob.io/"
RAY_CLUSTER_SELECTOR_KEY = "ray.io/cluster"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
GPU_RESOURCE = "nvidia.com/gpu"

ENV_DATA_PATH = "MLJOB_DATA_PATH"
ENV_NAME = "MLJOB_NAME"
ENV_RUN = "MLJOB_RUN"
ENV_STEP = "MLJOB_STEP"
# Ray steps: where training checkpoints go, kept across the attempts of a run
# (builders.checkpoint_path).
ENV_CHECKPOINT_PATH = "MLJOB_CHECKPOINT_PATH"
# Where a step writes (<run's data path>/<step>) and where each dependency's outputs are:
# MLJOB_INPUT_<STEP> (builders.input_env_name). The prefix is reserved as a whole.
ENV_OUTPUT_PATH = "MLJOB_OUTPUT_PATH"
ENV_INPUT_PREFIX = "MLJOB_INPUT_"
RESERVED_ENV = frozenset(
    {ENV_DATA_PATH, ENV_NAME, ENV_RUN, ENV_STEP, ENV_OUTPUT_PATH, ENV_CHECKPOINT_PATH}
)

# --- phases -----------------------------------------------------------------------------------
PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
SUSPENDED = "Suspended"
RETRYING = "Retrying"  # a step between a failed attempt and the next one (backoff)
CANCELLED = "Cancelled"  # a run ended by a spec change before it finished (status.runs only)
PIPELINE_PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, SUSPENDED)
STEP_PHASES = (PENDING, RUNNING, RETRYING, SUCCEEDED, FAILED)
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED})

# --- conditions (metav1.Condition types) and reasons -------------------------------------------
COND_READY = "Ready"
COND_RECONCILING = "Reconciling"
COND_STALLED = "Stalled"
COND_SUCCEEDED = "Succeeded"
CONDITION_TYPES = (COND_READY, COND_RECONCILING, COND_STALLED, COND_SUCCEEDED)

REASON_INVALID_SPEC = "InvalidSpec"
REASON_RUNNING = "Running"
REASON_PENDING = "Pending"
REASON_SUSPENDED = "Suspended"
REASON_SUCCEEDED = "Succeeded"
REASON_FAILED = "Failed"
REASON_DEADLINE_EXCEEDED = "ActiveDeadlineExceeded"
REASON_WAITING_FOR_RUN = "WaitingForRunningSteps"

# Event reasons on the MLJob.
EVENT_STEP_STARTED = "StepStarted"
EVENT_STEP_SUCCEEDED = "StepSucceeded"
EVENT_STEP_CACHED = "StepCached"  # a step skipped: its outputs of an earlier run are reused
EVENT_STEP_FAILED = "StepFailed"
EVENT_STEP_RETRYING = "StepRetrying"
EVENT_RAY_CLUSTER_CREATED = "RayClusterCreated"
EVENT_RAY_CLUSTER_LOST = "RayClusterLost"  # deleted by someone else while the run needed it
EVENT_RUN_STARTED = "RunStarted"
EVENT_CHILDREN_DELETED = "ChildrenDeleted"
EVENT_PIPELINE = {
    RUNNING: "PipelineRunning",
    SUCCEEDED: "PipelineSucceeded",
    FAILED: "PipelineFailed",
    SUSPENDED: "PipelineSuspended",
}

# childState values the operator records for failures it decides itself (not a child's state).
CHILD_STATE_CREATE_REJECTED = "CreateRejected"
CHILD_STATE_DELETED = "Deleted"  # removed by someone else while it ran
CHILD_STATE_START_DEADLINE = "StartDeadlineExceeded"
CHILD_STATE_ACTIVE_DEADLINE = "ActiveDeadlineExceeded"
CHILD_STATE_PIPELINE_DEADLINE = "PipelineDeadlineExceeded"
CHILD_STATE_CANCELLED = "Cancelled"  # deleted because a spec change cancelled its run
CHILD_STATE_CLUSTER_LOST = "RayClusterLost"  # its shared RayCluster was deleted under it
CHILD_STATE_CACHED = "Cached"  # not run: the outputs of an earlier run are reused
# Conditions and messages are bounded by metav1.Condition (32768); keep ours well below.
MAX_MESSAGE = 4096
# A child's error output can be kilobytes (spark-submit's stderr, a Ray entrypoint's log): the
# step message, status.message and the conditions get one line naming the cause (messages.py),
# the child's own part of it at most MAX_CHILD_SUMMARY so that "step X (Kind name) failed:
# attempt n of m failed: " still fits; status.steps[].details keeps a bounded excerpt once.
MAX_SUMMARY = 300
MAX_CHILD_SUMMARY = 200
MAX_DETAILS = 2048
MAX_EVENT_MESSAGE = 1024  # kopf cuts longer Event messages in the middle
