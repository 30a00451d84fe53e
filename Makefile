# serving-catalog — every target installs what it needs (venv, Docker engine, image).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
# The kustomize engine: kubectl's built-in kustomize (v5.8) by default, or a
# standalone binary: make demo KUSTOMIZE="kustomize build".
KUSTOMIZE ?= $(abspath $(VENV))/bin/kubectl kustomize
export KUSTOMIZE
IMAGE     := $(shell python3 -m catalog_tools.image)
# Entry rendered by `make demo`.
ENTRY     ?= serving-catalog/core/deployment/vllm/gemma-2b/gke
# CRD schemas for validation: .ci/run points this at ../shared/crds; by default
# `make crds` downloads the pinned upstream files into build/crds.
SERVING_CATALOG_CRDS ?= $(CURDIR)/build/crds
export SERVING_CATALOG_CRDS
PYTEST_ARGS ?=

.PHONY: help setup venv docker images demo test validate conformance conformance-envs policy policy-env fuzz generate hydrate deploy undeploy new-model e2e e2e-kind cluster cluster-down crds benchmark bench clean

help:
	@echo "make demo     set up, then render ENTRY ($(ENTRY)) with the functions in containers"
	@echo "make test     set up, then run every test (golden examples, real kustomize + Docker, validation)"
	@echo "make setup    .venv with pinned tools, a Docker engine, the function image $(IMAGE)"
	@echo "make images   (re)build the function image"
	@echo "make validate render every catalog entry and validate it strictly (part of make test)"
	@echo "make conformance [ENTRY=...]  the conformance tier: real server parsers, releases, memory (part of make test)"
	@echo "make policy [ENTRY=...]  checkov on every rendered pod: skips, failures (part of make test)"
	@echo "make fuzz     the functions' fuzz suite with FUZZ_EXAMPLES cases (default 20000; make test runs 1000)"
	@echo "make generate regenerate components/, catalog.md, entry READMEs and hydrated/ from the data tables"
	@echo "make hydrate  the same (hydrated/<entry>: each entry rendered, for Flux and Argo CD)"
	@echo "make deploy ENTRY=... [NAMESPACE=...]  model-load Job first, watched, then the server (needs kubectl access)"
	@echo "make undeploy ENTRY=... [NAMESPACE=...] [KEEP_WEIGHTS=1]  take it down"
	@echo "make new-model SERVER=serving-catalog/core/deployment/vllm FROM=gemma-3-27b-it TO=gemma-7b-it"
	@echo "make benchmark ENTRY=... [URL=...]  the entry's inference-perf Job, ConfigMap and claim (pipe to kubectl apply -f -)"
	@echo "make bench    benchmarks (not tests): SDK vs kustomize builtins, container overhead, entry render times"
	@echo "make crds     download the pinned CRD schemas into build/crds"
	@echo "make cluster  build (first time: ~10 min on 2 cores, then cached) and start a local control plane (build/cluster)"
	@echo "make cluster-down  stop it"
	@echo "make e2e [ENTRY=...] [KEEP=1] [JOBS=4]  every entry deployed on the local control plane (make cluster first)"
	@echo "make e2e-kind a kind cluster: every entry applied with --dry-run=server (needs kind and network)"

setup: venv docker images

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip 2> >(grep -v '^WARNING: Location' >&2)
	$(PY) -m pip install -q -e '.[dev]' 2> >(grep -v -e '^WARNING: Location' -e BuildBackendWarning >&2 || true)
	touch $@

docker:
	@scripts/ensure-docker

# Builds this tree's image and points components/render at it (its tag follows the tree).
# Not under CI, where a stale components/render must fail the tests instead.
images: venv docker
	@PYTHON=$(PY) scripts/build-image
	@[ -n "$${CI:-}" ] || $(PY) -m catalog_tools.generate --render-component

demo: setup
	$(KUSTOMIZE) --enable-alpha-plugins $(ENTRY)

crds:
	@[ -n "$$(ls $(SERVING_CATALOG_CRDS)/*.yaml 2>/dev/null)" ] || scripts/fetch-crds $(SERVING_CATALOG_CRDS) \
	  || echo "make crds: could not download CRDs; custom-resource checks will skip (they fail under CI=true)"

# The e2e tier (tests/test_e2e.py) deploys every entry on the local control plane: the
# first `make cluster` builds it from Go modules (about 10 minutes on 2 cores, then cached).
test: setup crds conformance-envs policy-env cluster
	$(PY) -m pytest $(PYTEST_ARGS)

# The pinned server releases, CPU only, cached in build/conformance (minutes the first time).
conformance-envs: venv
	$(PY) -m catalog_tools.conformance --setup

fuzz: venv
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-20000} $(PY) -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

# checkov, pinned, in its own venv (build/policy); `make policy` reports every entry.
policy-env: venv
	$(PY) -m catalog_tools.policy --setup

policy: setup policy-env
	$(PY) -m catalog_tools.policy $(if $(filter command line,$(origin ENTRY)),$(ENTRY))

# Every entry, or one: make conformance ENTRY=serving-catalog/core/deployment/vllm/gemma-2b/gke
conformance: setup conformance-envs
	$(PY) -m catalog_tools.conformance $(if $(filter command line,$(origin ENTRY)),$(ENTRY))

validate: setup crds
	$(PY) -m catalog_tools.check_entries

generate: setup
	$(PY) -m catalog_tools.generate

hydrate: generate

# make deploy ENTRY=... [NAMESPACE=...]; make undeploy ENTRY=... [NAMESPACE=...] [KEEP_WEIGHTS=1]
deploy: setup
	scripts/deploy $(ENTRY) $(if $(NAMESPACE),--namespace $(NAMESPACE)) --rollout-timeout $(or $(ROLLOUT_TIMEOUT),1h)

undeploy: venv
	scripts/deploy $(ENTRY) --delete $(if $(NAMESPACE),--namespace $(NAMESPACE)) $(if $(KEEP_WEIGHTS),--keep-weights)

# The image carries the models table: rebuild it so the new row is known.
new-model: setup
	PYTHON=$(PY) scripts/new-model $(SERVER) $(FROM) $(TO)

# The local control plane: Kubernetes' own binaries built from Go modules (cluster/go/).
cluster: venv crds
	$(PY) -m catalog_tools.cluster up

cluster-down: venv
	$(PY) -m catalog_tools.cluster down

e2e: setup cluster
	$(PY) -m catalog_tools.e2e $(if $(filter command line,$(origin ENTRY)),$(ENTRY)) $(if $(KEEP),--keep) $(if $(JOBS),--jobs $(JOBS))

e2e-kind: setup crds
	E2E_KIND=1 $(PY) -m pytest tests/test_e2e_kind.py $(PYTEST_ARGS)

# make benchmark ENTRY=... [URL=http://GATEWAY] | kubectl apply -f -
# (stdout is the manifests only: the setup reports on stderr)
benchmark: venv
	@$(MAKE) --no-print-directory setup >&2
	@$(PY) -m catalog_tools.benchmark $(ENTRY) $(if $(URL),--url $(URL))

bench: setup
	$(PY) -m catalog_tools.bench

clean:
	rm -rf build .pytest_cache
