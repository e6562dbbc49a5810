# The operator image: the mljob package and its runtime dependencies only (kopf, kubernetes,
# pyyaml, prometheus-client); no pyspark or ray. Runs as UID 10001 and writes nothing outside /tmp,
# so it works with readOnlyRootFilesystem (the chart mounts an emptyDir at /tmp).
#
#   docker build -t mljob-operator:0.1.0 .
#   docker run --rm -v ~/.kube:/tmp/.kube:ro -e KUBECONFIG=/tmp/.kube/config mljob-operator:0.1.0

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a wheel of the package, then a virtualenv with it and its dependencies -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# Only [project.dependencies] are installed: the extras (local, dev) are never requested.
# kubernetes/aio (the asyncio client, ~70 MB) is never imported by the operator or kopf.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/mljob \
    && /opt/mljob/bin/pip install /wheels/*.whl \
    && /opt/mljob/bin/pip uninstall --yes pip setuptools \
    && rm -rf /opt/mljob/lib/python3.11/site-packages/kubernetes/aio

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mljob-operator" \
      org.opencontainers.image.description="Runs Spark (Spark Operator) and Ray (KubeRay) steps as one MLJob pipeline" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mljob \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin mljob
COPY --from=build /opt/mljob /opt/mljob
# Read-only root filesystem: no bytecode writes (pip precompiled it), HOME and temp in /tmp.
ENV PATH=/opt/mljob/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
# 8080: Prometheus metrics; 8081: kopf's health endpoint (--liveness); 9443: admission webhook.
EXPOSE 8080 8081 9443
# `mljob operator` serves the whole cluster by default; the Helm chart passes its own arguments
# (namespaces, peering, webhook, ...).
ENTRYPOINT ["mljob", "operator"]
CMD []
