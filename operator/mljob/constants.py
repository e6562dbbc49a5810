"""Names shared by the API, the planner and the glue: one place, no magic strings elsewhere."""

from __future__ import annotations

# --- MLJob (our API) -------------------------------------------------------------------------
GROUP = "mljob.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MLJob"
PLURAL = "mljobs"

# --- children ----------------------------------------------------------------------------------
SPARK_API_VERSION = "sparkoperator.k8s.io/v1beta2"
SPARK_KIND = "SparkApplication"
SPARK_PLURAL = "sparkapplications"

RAY_API_VERSION = "ray.io/v1"
RAY_JOB_KIND = "RayJob"
RAY_JOB_PLURAL = "rayjobs"
RAY_CLUSTER_KIND = "RayCluster"
RAY_CLUSTER_PLURAL = "rayclusters"

API_VERSION_OF_KIND = {
    SPARK_KIND: SPARK_API_VERSION,
    RAY_JOB_KIND: RAY_API_VERSION,
    RAY_CLUSTER_KIND: RAY_API_VERSION,
}

# Name limits (DNS-1035 labels). KubeRay: MaxRayJobNameLength = 53-6, MaxRayClusterNameLength = 53.
# Spark operator v2.5: a DNS-1035 label (63); its UI Service `<app>-ui-svc` is hashed if too long.
RAY_JOB_NAME_MAX = 47
RAY_CLUSTER_NAME_MAX = 53
SPARK_APP_NAME_MAX = 63
NAME_LIMIT_OF_KIND = {
    SPARK_KIND: SPARK_APP_NAME_MAX,
    RAY_JOB_KIND: RAY_JOB_NAME_MAX,
    RAY_CLUSTER_KIND: RAY_CLUSTER_NAME_MAX,
}

# MLJob names and step names become label values (<= 63 characters).
MLJOB_NAME_MAX = 63
STEP_NAME_MAX = 30
MAX_STEPS = 50
MAX_DEPENDS_ON = 20
MAX_RETRIES = 10

# --- labels, env -------------------------------------------------------------------------------
LABEL_NAME = "mljob.io/name"
LABEL_STEP = "mljob.io/step"
LABEL_RUN = "mljob.io/run"
RESERVED_LABEL_PREFIX = "mljob.io/"
RAY_CLUSTER_SELECTOR_KEY = "ray.io/cluster"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
GPU_RESOURCE = "nvidia.com/gpu"

ENV_DATA_PATH = "MLJOB_DATA_PATH"
ENV_NAME = "MLJOB_NAME"
ENV_RUN = "MLJOB_RUN"
ENV_STEP = "MLJOB_STEP"
RESERVED_ENV = frozenset({ENV_DATA_PATH, ENV_NAME, ENV_RUN, ENV_STEP})

# --- phases -----------------------------------------------------------------------------------
PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
SUSPENDED = "Suspended"
PIPELINE_PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, SUSPENDED)
STEP_PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED)
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

# Event reasons on the MLJob.
EVENT_STEP_STARTED = "StepStarted"
EVENT_STEP_SUCCEEDED = "StepSucceeded"
EVENT_STEP_FAILED = "StepFailed"
EVENT_RAY_CLUSTER_CREATED = "RayClusterCreated"
EVENT_PIPELINE = {
    RUNNING: "PipelineRunning",
    SUCCEEDED: "PipelineSucceeded",
    FAILED: "PipelineFailed",
    SUSPENDED: "PipelineSuspended",
}

# Raw childState recorded when the API server refused to create a child.
CHILD_STATE_CREATE_REJECTED = "CreateRejected"
# Conditions and messages are bounded by metav1.Condition (32768); keep ours well below.
MAX_MESSAGE = 4096
