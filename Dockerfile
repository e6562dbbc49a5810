# The operator image: the mljob package and its runtime dependencies only (kopf, kubernetes,
# pyyaml, prometheus-client, jsonschema); no pyspark or ray. Runs as UID 10001 and writes nothing
# outside /tmp, so it works with readOnlyRootFilesystem (the chart mounts an emptyDir at /tmp).
#
#   docker build -t mljob-operator:0.1.0 .          (or: podman build / buildah bud)
#   docker run --rm -v ~/.kube:/tmp/.kube:ro -e KUBECONFIG=/tmp/.kube/config mljob-operator:0.1.0
#
# Bases: both stages use the official Python image by default. BUILD_IMAGE (the builder stage)
# needs python3 with venv; PYTHON_IMAGE (the runtime) needs only python3 at the same path and
# a shell. The test suite builds both from Debian bookworm packages (mljob/testing/image.py), where
# no registry can be pulled from: a runtime base without pip, apt or perl.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BUILD_IMAGE=${PYTHON_IMAGE}

# --- build: a virtualenv with the package and its dependencies -------------------------------
FROM ${BUILD_IMAGE} AS build
# pip settings for builds behind a TLS-intercepting proxy or a mirror (build arguments are only
# in this stage's environment, never in the final image).
ARG PIP_CERT
ARG PIP_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
# operator/mljob/crds is a symlink to ../../crds (package data): the build needs both.
COPY crds/ crds/
COPY operator/ operator/
# Only [project.dependencies] are installed: the extras (local, dev) are never requested.
# kubernetes/aio (the asyncio client, ~70 MB) is never imported by the operator or kopf; pip and
# setuptools are not needed at runtime. Everything is compiled to bytecode here, once: the root
# filesystem is read-only at runtime, and without .pyc files every start would compile the
# kubernetes client again (about twice the start time). The client's generated API and model
# modules (~35 MB of source nobody debugs) are kept as bytecode only, next to where the source
# was (Python imports such "sourceless" modules); every other module keeps its source, so
# tracebacks show code lines.
RUN python3 -m venv /opt/mljob \
    && /opt/mljob/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/mljob/bin/pip install --no-compile /wheels/*.whl \
    && /opt/mljob/bin/pip uninstall --yes pip setuptools \
    && cd /opt/mljob/lib/python3.11/site-packages \
    && rm -rf kubernetes/aio \
    && find /opt/mljob -name __pycache__ -prune -exec rm -rf {} + \
    && /opt/mljob/bin/python -m compileall -q -j 0 -b kubernetes/client/api kubernetes/client/models \
    && find kubernetes/client/api kubernetes/client/models -name "*.py" -delete \
    && /opt/mljob/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/mljob/lib \
    && /opt/mljob/bin/python -c "import kubernetes.client, mljob.serve, mljob.handlers, mljob.admission"

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mljob-operator" \
      org.opencontainers.image.description="Runs Spark (Spark Operator) and Ray (KubeRay) steps as one MLJob pipeline" \
      org.opencontainers.image.source="https://github.com/mljob-operator/mljob-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# The user without useradd (the runtime base may have no passwd package).
RUN echo 'mljob:x:10001:' >> /etc/group \
    && echo 'mljob:x:10001:10001:mljob-operator:/tmp:/usr/sbin/nologin' >> /etc/passwd
COPY --from=build /opt/mljob /opt/mljob
# Read-only root filesystem: no bytecode writes (compiled above), HOME and temp in /tmp.
ENV PATH=/opt/mljob/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
# 8080: Prometheus metrics; 8081: liveness (kopf's /healthz); 8082: readiness (/readyz);
# 9443: admission webhook.
EXPOSE 8080 8081 8082 9443
# `mljob operator` serves the whole cluster by default; the Helm chart passes its own arguments
# (namespaces, peering, webhook, ...).
ENTRYPOINT ["mljob", "operator"]
CMD []
