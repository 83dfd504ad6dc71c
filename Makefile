# insurance_pipeline — every command a user or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: help install run test test-fast ui bench bench-model bench-scale clean-cache clean lint serve manifests contract serving-venv base-image pipeline-image stack stack-down
SERVING_VENV ?= .venv-serving
BENCH_STAMP := $(VENV)/.bench-installed

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

install: $(STAMP) $(SERVING_VENV)/.installed  ## create .venv (training stack) and .venv-serving (service only); idempotent

# Reinstall only when what we install from changes.
$(STAMP): pyproject.toml constraints.txt scripts/install_helm.py scripts/install_image_tools.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24,<27"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[pipeline,dev]"
	$(PY) -m pip install --quiet --no-deps -c constraints.txt tpot  # see pyproject: xgboost-cpu
	$(PY) scripts/install_helm.py $(VENV)/bin
	bash scripts/install_image_tools.sh
	@touch $(STAMP)

# The local instance's config, copied under a private name, then renamed: two `make run`
# started together both succeed. Another DAGSTER_HOME keeps its own dagster.yaml: only a
# missing one is created there. In production nothing is written: a DAGSTER_HOME without
# the production instance config is an error naming it (`.stack/env` gives one that has it).
ifeq ($(DAGSTER_HOME),$(CURDIR)/.dagster)
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
else
$(DAGSTER_HOME)/dagster.yaml:
endif
	@if [ "$$INSURANCE_DEPLOYMENT" = production ]; then \
		test -f $@ && exit 0; \
		echo "INSURANCE_DEPLOYMENT=production: $@ does not exist; copy deploy/dagster/dagster.yaml there" >&2; \
		exit 2; \
	fi
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $@.$$$$.tmp && mv -f $@.$$$$.tmp $@

run: install $(DAGSTER_HOME)/dagster.yaml  ## materialize every training asset (default budget)
	$(PY) -m insurance_pipeline.cli run $(ARGS)

test: install  ## run the whole test suite (every lane: what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

# The pure lane (README "Test lanes"): no Dagster run, no server, no image.
FAST := pure and not dagster and not servers and not image
test-fast: install  ## the pure tests only, for an edit to pure code (under 2 minutes)
	$(PY) -m pytest -m "$(FAST)" $(PYTEST_ARGS)

lint: install  ## ruff, the layer contracts (import-linter) and `dg check defs`
	$(VENV)/bin/ruff check insurance_pipeline insurance_pipeline_tests benchmarks tooling
	$(VENV)/bin/lint-imports
	@home=$$(mktemp -d) && cp dagster.yaml $$home/ && DAGSTER_HOME=$$home $(VENV)/bin/dg check defs; \
		status=$$?; rm -rf $$home; exit $$status

ui: install $(DAGSTER_HOME)/dagster.yaml  ## Dagster UI on http://127.0.0.1:3000
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# The ONNX route, measured beside our numpy compilation, is needed by `make bench` only.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[bench]"
	@touch $@

bench: install $(BENCH_STAMP) $(DAGSTER_HOME)/dagster.yaml  ## pipeline + service benchmarks (writes docs/benchmarks.md)
	$(PY) benchmarks/bench_pipeline.py --update-docs
	$(PY) -m insurance_pipeline.cli run --log-level WARNING
	$(PY) -m insurance_pipeline.cli export-champion
	$(PY) benchmarks/bench_runtime.py --update-docs
	$(PY) benchmarks/bench_service.py --update-docs --service-python $(SERVING_VENV)/bin/python \
		--artifact-dir $$($(PY) -c 'from insurance_pipeline.serving.settings import ServiceSettings as S; print(S().artifact_dir)')
	$(PY) benchmarks/bench_abuse.py --update-docs --service-python $(SERVING_VENV)/bin/python \
		--artifact-dir $$($(PY) -c 'from insurance_pipeline.serving.settings import ServiceSettings as S; print(S().artifact_dir)')
	$(PY) benchmarks/bench_image.py --update-docs --service-python $(SERVING_VENV)/bin/python
	$(PY) benchmarks/bench_stack.py --update-docs

bench-model: install $(DAGSTER_HOME)/dagster.yaml  ## 5x10 CV of the default model and its interval; NESTED=1 adds nested CV (writes docs/benchmarks.md)
	$(PY) benchmarks/bench_model.py --update-docs $(if $(NESTED),--nested)

bench-scale: install $(DAGSTER_HOME)/dagster.yaml  ## the graph cold on 10k/100k/1M synthetic rows (SIZES=100000 for one; writes docs/benchmarks.md)
	$(PY) benchmarks/bench_scale.py --update-docs -- $(ARGS)

pipeline-image: install  ## the pipeline image (training stack + definitions) for Dagster's chart
	$(PY) -m tooling.pipeline_image

base-image: install  ## the Debian bookworm base image for buildah builds (debootstrap, cached)
	$(PY) -m tooling.images

serving-venv: $(SERVING_VENV)/.installed  ## the service's own install (base deps only, as in the image)

# Built by `make install`, never on first use: `make serve` runs the service from it, so what
# is measured and tested is what the image ships: the service's own distribution
# (deploy/service/pyproject.toml, staged as the Dockerfile copies it) and its dependencies.
SERVICE_SOURCES := $(shell find insurance_pipeline/serving insurance_pipeline/compiled insurance_pipeline/domain -name '*.py') \
	insurance_pipeline/__init__.py deploy/service/pyproject.toml constraints.txt
$(SERVING_VENV)/.installed: $(STAMP) $(SERVICE_SOURCES)
	@test -x $(SERVING_VENV)/bin/python || $(PYTHON) -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24,<27"
	$(PY) -m insurance_pipeline.deploy.plan stage-service build/service >/dev/null
	$(SERVING_VENV)/bin/python -m pip install --quiet --force-reinstall --no-deps build/service
	$(SERVING_VENV)/bin/python -m pip install --quiet -c constraints.txt "build/service[verify]"
	@touch $@

# The service is pinned (MODEL_SHA256) to the folder export-champion verified and wrote: any
# other manifest in that folder is refused. MODEL_TRUSTED_KEY (a PEM public key) also makes it
# check the folder's OpenSSF signature; INSURANCE_DEPLOYMENT=production requires both.
serve: install  ## serve the `champion` model on 127.0.0.1:8000 (SERVICE_HOST/SERVICE_PORT)
	$(PY) -m insurance_pipeline.cli export-champion
	@dir=$$($(PY) -c 'from insurance_pipeline.serving.settings import ServiceSettings as S; print(S().artifact_dir)'); \
		export MODEL_SHA256=$$(cat "$$dir.sha256") && exec $(SERVING_VENV)/bin/python -m insurance_pipeline.serving

manifests: install  ## plain manifests for a local cluster without a registry (.artifacts/manifests/model_service.yaml)
	$(PY) -m insurance_pipeline.cli export-champion
	$(PY) -m tooling.manifests

contract: install  ## regenerate service_contract.yaml from the app
	$(PY) -m tooling.contract

clean-cache: install  ## prune the step cache (CACHE_MAX_BYTES / CACHE_MAX_AGE_DAYS keep some)
	$(PY) -m insurance_pipeline.cli clean-cache $(if $(CACHE_MAX_BYTES),--max-bytes $(CACHE_MAX_BYTES)) $(if $(CACHE_MAX_AGE_DAYS),--max-age-days $(CACHE_MAX_AGE_DAYS))

stack: install  ## a production-like stack on 127.0.0.1 (S3, MLflow server, Dask, Dagster); writes .stack/env
	$(PY) -m tooling.stack up

stack-down:  ## stop every process `make stack` started (and nothing else)
	@if [ -x $(PY) ]; then $(PY) -m tooling.stack down; else echo "stopped: nothing was running"; fi

clean:  ## remove local state (instance, MLflow store, cache, artifacts); keeps .venv
	rm -rf .dagster .mlflow .cache .artifacts
