# Plinth developer entry points. `make dev` runs Plinth locally; `make test` runs every test.
# Everything installs into .venv (override with VENV=...); the control plane is built once into ~/.cache/plinth.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
DEV_CLUSTER ?= dev
DEV_DIR := $(HOME)/.cache/plinth/clusters/$(DEV_CLUSTER)
export GOTOOLCHAIN := local
# The repository has an operator/ folder (it installs as plinth.operator). Without this, `python -m ...` run from
# here would put the working directory on sys.path and that folder would shadow the standard library's `operator`.
export PYTHONSAFEPATH := 1

.PHONY: help install node-deps controlplane test test-unit test-integration lint crds dev dev-down

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/plinth: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/plinth  ## create .venv with Plinth and its dev tools (kubectl, pytest, ruff, mypy)

node-deps:  ## install the Debian packages a real node needs (runc, CNI plugins, nftables; as root, once)
	hack/node-deps.sh

controlplane: install node-deps  ## build the local control plane, the real node's parts and helm (cached)
	$(BIN)/plinth cluster build --real-node
	$(BIN)/python hack/helm/ensure_helm.py >/dev/null

test: controlplane  ## run all tests: unit, integration and e2e (boots a private local cluster)
	$(BIN)/python -m pytest tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken, not green" >&2; exit 1; fi; exit $$rc

test-unit: install  ## run the fast tests that need no cluster
	$(BIN)/python -m pytest tests/unit

lint: install  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy

crds: install  ## regenerate crds/ and docs/reference.md from the pydantic models (and the chart's copies)
	$(BIN)/plinth crds
	hack/helm/sync-crds.sh

dev: controlplane  ## run Plinth: local control plane on a real node + CRDs + operator + samples (as root)
	$(BIN)/plinth cluster up --name $(DEV_CLUSTER) --nodes real >/dev/null
	hack/dev.sh "$(DEV_DIR)" "$(BIN)" "$(DEV_CLUSTER)"

dev-down:  ## stop the operator and the local control plane started by `make dev`
	-test -f $(DEV_DIR)/operator.pid && kill $$(cat $(DEV_DIR)/operator.pid)
	$(BIN)/plinth cluster down --name $(DEV_CLUSTER)
