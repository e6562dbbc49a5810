# The two commands of the README:
#   make example   runs the shipped example pipeline locally (PySpark + Ray, no cluster)
#   make test      lint + the whole test suite (unit, local mode, real control plane)
# Both create .venv and install what they need first; the control-plane binaries are built
# from the Go module proxy once and cached in ~/.cache/mljob-operator/bin, with the tests' GitOps
# verdict helper (kstatus and Argo CD's gopher-lua: mljob.testing.gitops).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: example test lint format mutants binaries image dev-cluster clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

example: $(STAMP)
	$(BIN)/mljob run examples/churn/mljob.yaml --local --exit-after-smoke

binaries: $(STAMP)
	$(BIN)/python -m mljob.testing.binaries --helm --e2e
	$(BIN)/python -m mljob.testing.gitops

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The operator image (Dockerfile), built with buildah from Debian bookworm bases (no Docker
# engine or registry needed; buildah, podman, runc and mmdebstrap are apt-installed when root,
# otherwise it fails with the command to run). Cached: rebuilt only when its inputs change.
image: $(STAMP)
	$(BIN)/python -m mljob.testing.image

# Two workers: the tiers mostly wait on processes (JVMs, Ray, controllers), so they overlap well
# on 2 cores. Each worker takes whole files (and the e2e tier whole): tests/conftest.py.
TEST_WORKERS ?= 2
test: lint binaries image
	$(BIN)/pytest -n $(TEST_WORKERS)

# Mutation testing of the pure core (mutmut; on demand, not part of `make test`): the score and
# the accepted survivors are in docs/testing.md. MODULES="planner steps" limits it.
mutants: $(STAMP)
	scripts/mutants $(MODULES)

dev-cluster: binaries
	$(BIN)/python -m mljob.testing.controlplane

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
