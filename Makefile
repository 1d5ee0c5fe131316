# Herald developer entry points. `make` (or `make help`) lists them.
# Python tools live in project-local virtualenvs built from the pinned files in infra/.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON      ?= python3
VENV        := .venv
VENV_LINT   := .venv-lint
VENV_DEPLOY := .venv-deploy
VENV_CHECKOV := .venv-checkov
VENV_CONTRACT := .venv-contract
SAM         := $(VENV_LINT)/bin/sam
SAM_CONFIG  := infra/samconfig.toml
LAMBDA_TARGET := aarch64-unknown-linux-gnu

export SAM_CLI_TELEMETRY := 0

# Linting needs no AWS account: a region, placeholder credentials (so nothing can reach
# a real account by accident) and no instance-metadata lookups.
OFFLINE_AWS := env -u AWS_PROFILE -u AWS_SESSION_TOKEN \
	AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_EC2_METADATA_DISABLED=true

.PHONY: help venv venv-lint venv-checkov venv-contract venv-deploy lint lint-template dev test openapi bench bench-bodies sam-build clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# A virtualenv is rebuilt from scratch whenever its requirement file changes.
# $(call make-venv,DIR,REQUIREMENTS)
define make-venv
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install --quiet --no-input --requirement $(2)
	$(1)/bin/pip check
	touch $(1)/.installed
endef

venv: $(VENV)/.installed ## Emulator virtualenv (.venv, moto server)
$(VENV)/.installed: infra/requirements-local.txt
	$(call make-venv,$(VENV),$<)

venv-lint: $(VENV_LINT)/.installed ## Lint/SAM virtualenv (.venv-lint, cfn-lint + sam)
$(VENV_LINT)/.installed: infra/requirements-lint.txt
	$(call make-venv,$(VENV_LINT),$<)

venv-checkov: $(VENV_CHECKOV)/.installed ## Policy scan virtualenv (.venv-checkov, checkov)
$(VENV_CHECKOV)/.installed: infra/requirements-checkov.txt
	$(call make-venv,$(VENV_CHECKOV),$<)

venv-contract: $(VENV_CONTRACT)/.installed ## API tester virtualenv (.venv-contract, schemathesis)
$(VENV_CONTRACT)/.installed: infra/requirements-contract.txt
	$(call make-venv,$(VENV_CONTRACT),$<)

venv-deploy: $(VENV_DEPLOY)/.installed ## Cross-build virtualenv (.venv-deploy, cargo-lambda + zig)
$(VENV_DEPLOY)/.installed: infra/requirements-deploy.txt
	$(call make-venv,$(VENV_DEPLOY),$<)

lint: ## rustfmt check, clippy with warnings as errors, then lint-template
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory lint-template

# cfn-lint checks the SAM template against SAM's schema; the next two steps expand it
# with the SAM translator (offline) and lint the CloudFormation that would be deployed,
# where generated roles, aliases and deployment groups live. checkov then scans both:
# the SAM template, where each skipped check's reason is written
# (Metadata.checkov.skip), and the expanded one, whose generated IAM roles and stage only
# exist there. --skip-download keeps it offline (no guidelines or policies fetched).
CHECKOV := $(OFFLINE_AWS) $(VENV_CHECKOV)/bin/checkov --framework cloudformation \
	--skip-download --compact --quiet
lint-template: venv-lint venv-checkov ## cfn-lint, sam validate and checkov on template.yaml (offline)
	$(OFFLINE_AWS) $(VENV_LINT)/bin/cfn-lint template.yaml
	$(OFFLINE_AWS) $(SAM) validate --lint --template template.yaml --config-file $(SAM_CONFIG)
	$(OFFLINE_AWS) $(SAM) validate --template template.yaml --config-file $(SAM_CONFIG)
	$(OFFLINE_AWS) $(VENV_LINT)/bin/python infra/sam_to_cfn.py template.yaml .aws-sam/lint/template.json
	$(OFFLINE_AWS) $(VENV_LINT)/bin/cfn-lint .aws-sam/lint/template.json
	$(CHECKOV) --file template.yaml
	$(CHECKOV) --file .aws-sam/lint/template.json

dev: venv ## Start the local cloud (emulator, gateway, queue runners)
	HERALD_VENV="$(CURDIR)/$(VENV)" cargo run -p herald-local -- up

# The emulator started by the tests is stopped on every exit (pass, fail, Ctrl-C).
# The exit code is the tests' own; a failed stop only turns a pass into a failure.
test: venv venv-contract ## cargo test --workspace against the local cloud, then stop its emulator
	@export HERALD_VENV="$(CURDIR)/$(VENV)" HERALD_CONTRACT_VENV="$(CURDIR)/$(VENV_CONTRACT)"; \
	trap 'rc=$$?; cargo run -q -p herald-local -- emulator stop --started-by-tests \
	      || { [ $$rc -ne 0 ] || rc=1; }; exit $$rc' EXIT; \
	mkdir -p .herald; status=0; \
	cargo test --workspace --no-fail-fast 2>&1 | tee .herald/test.log || status=$$?; \
	awk '/^test result:/ { passed += $$4; failed += $$6 } \
	     END { printf "tests: %d passed, %d failed\n", passed, failed }' .herald/test.log; \
	exit $$status

# The document is written whole or not at all: a failed build leaves the committed copy.
openapi: ## Regenerate docs/openapi.json from the api's code (a test fails when it is stale)
	cargo run -q -p herald-api --example openapi > docs/openapi.json.tmp \
	  || { rm -f docs/openapi.json.tmp; exit 1; }
	mv docs/openapi.json.tmp docs/openapi.json

# The benchmark uses the emulator at HERALD_EMULATOR_URL (default port 4566) if one
# answers there, and otherwise starts one and stops it at the end. It is built with the
# optimised bench-local profile (the first build takes minutes). Arguments go in
# BENCH_ARGS, e.g. `make bench BENCH_ARGS="--recipients 2000"` (see --help). The
# receipt phase (herald-receipts) takes RECEIPTS_ARGS, e.g. "--receipts 2000".
BENCH_ARGS ?=
RECEIPTS_ARGS ?=
bench: venv ## Delivery benchmark (emulator ceiling, a 10,000-recipient batch), then receipts (docs/performance.md)
	HERALD_VENV="$(CURDIR)/$(VENV)" cargo run -q --profile bench-local -p herald-local \
	  --bin herald-bench -- $(BENCH_ARGS)
	HERALD_VENV="$(CURDIR)/$(VENV)" cargo run -q --profile bench-local -p herald-local \
	  --bin herald-receipts -- $(RECEIPTS_ARGS)

# Same build profile and emulator handling as `make bench`. BODIES_ARGS as for
# BENCH_ARGS, e.g. `make bench-bodies BODIES_ARGS="--repeat 5"`.
BODIES_ARGS ?=
bench-bodies: venv ## Time the worst request bodies through the local gateway (docs/performance.md)
	HERALD_VENV="$(CURDIR)/$(VENV)" cargo run -q --profile bench-local -p herald-local \
	  --bin herald-bodies -- $(BODIES_ARGS)

# rust-cargolambda runs `cargo lambda build --release --arm64 --bin <Binary>` in the
# workspace root; cargo-lambda and zig come from .venv-deploy.
sam-build: venv-lint venv-deploy ## Cross-compile the functions for arm64 into .aws-sam/build
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(VENV_DEPLOY)/bin:$$PATH" $(SAM) build --config-file $(SAM_CONFIG)

clean: ## Remove build output and local-cloud state (target/, .aws-sam/, .herald/)
	rm -rf target .aws-sam .herald
