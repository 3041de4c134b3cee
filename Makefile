# camrelay — one entry point for building, testing and running the stacks.
# `make test` is THE test command (CI runs it through .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Node 24 LTS for every target: the `node` on PATH when it is >= 24 (with headers and npm), else a copy
# that scripts/ensure-node.sh installs once from the npm registry into .cache/node24 (git-ignored).
# npm_config_nodedir makes native addons (ssh2's crypto binding, cpu-features) build against the headers
# of the Node that runs them (a mismatched binding fails to load and ssh2 silently uses JS crypto).
# Only the targets that run Node ask for it: `make up-vps` on a VPS with nothing but Docker needs none.
ROOT := $(dir $(abspath $(firstword $(MAKEFILE_LIST))))
NODE_GOALS := install build lint test test-unit test-compose bench soak
ifneq ($(filter $(NODE_GOALS),$(MAKECMDGOALS)),)
NODE_PREFIX := $(shell $(ROOT)scripts/ensure-node.sh)
ifeq ($(NODE_PREFIX),)
$(error scripts/ensure-node.sh found no Node >= 24 and could not install one)
endif
export PATH := $(NODE_PREFIX)/bin:$(PATH)
export npm_config_nodedir := $(NODE_PREFIX)
endif

# Compose v2 plugin when present, else Compose v1.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo "docker-compose"; fi)
JEST := node_modules/.bin/jest
REPORTS := reports

.PHONY: help install build lint test test-unit test-promtool test-compose bench soak keys up-home up-vps demo stack-config reload down logs ps compose clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

# node_modules built by another Node (another ABI, e.g. Node 20) gets its native addons rebuilt.
install: node_modules/.package-lock.json ## install npm dependencies (npm ci) if missing or stale
	@abi=$$(node -p process.versions.modules); \
	if [[ $$(cat node_modules/.node-abi 2>/dev/null) != "$$abi" ]]; then \
	  echo "native addons: rebuilding for Node $$(node --version) (ABI $$abi)"; \
	  npm rebuild --no-audit --no-fund >/dev/null && echo "$$abi" >node_modules/.node-abi; \
	fi

build: install ## compile every workspace (tsc -b)
	npm run build

lint: build ## eslint + strict type-check of sources and tests
	npm run lint

test: lint ## build, lint, run every test tier (unit, integration, browser, sshd, promtool) and print a summary
	@echo "make test on Node $$(node --version) ($$(command -v node)), npm $$(npm --version)"
	@mkdir -p $(REPORTS); rm -f $(REPORTS)/*.json
	@status=0; \
	$(JEST) --ci --json --outputFile=$(REPORTS)/jest.json || status=1; \
	scripts/promtool-test.sh $(REPORTS)/promtool.json || status=1; \
	node scripts/summary.js $(REPORTS); \
	exit $$status

test-unit: install ## only the fast unit tier
	$(JEST) --selectProjects unit

test-promtool: ## promtool check config / check rules / test rules
	scripts/promtool-test.sh

test-compose: build ## run the demo stack on a real Docker engine with faults (needs dockerd)
	@mkdir -p $(REPORTS)
	scripts/test-compose.sh $(REPORTS)/compose.json

bench: build ## benchmarks; writes BENCHMARKS.md
	bench/run.sh

soak: build ## demo stack under a fault a minute for SOAK_MINUTES (30); writes SOAK.md (root; docs/soak.md)
	@mkdir -p $(REPORTS)
	soak/run.sh $(REPORTS)/soak.json

keys: ## generate the tunnel client key pair and the sshd host key into ./secrets, print the pin
	scripts/keys.sh

# A value from .env (the last such line; `export`, quotes and trailing blanks stripped, as Compose reads
# it), unless the environment or the command line sets it: scripts/lib/env.sh, shared with the scripts.
ENV_FILE ?= .env
export ENV_FILE
env_file_value = $(shell . '$(ROOT)scripts/lib/env.sh' && env_file_value $(1))
# Project name (prefix of containers, volumes, networks): else camrelay. It must be exported: Compose
# would otherwise name the project after the directory, and an exported value beats .env for Compose,
# so .env has to be read here.
ifeq ($(origin COMPOSE_PROJECT_NAME),undefined)
COMPOSE_PROJECT_NAME := $(call env_file_value,COMPOSE_PROJECT_NAME)
endif
COMPOSE_PROJECT_NAME := $(or $(COMPOSE_PROJECT_NAME),camrelay)
export COMPOSE_PROJECT_NAME
# Compose interpolates the WHOLE file whatever the profile, so every command needs both required values
# (docker-compose.yml: SSH_HOST_KEY for the agent, GRAFANA_ADMIN_PASSWORD for Grafana). Each is the real
# one (environment, else .env), else a placeholder: the machine that lacks one does not start the
# service that reads it. Expanded by the shell when the command runs, so make never prints a secret.
ENV_OR = . '$(ROOT)scripts/lib/env.sh' && env_or
NOT_GRAFANA := GRAFANA_ADMIN_PASSWORD="$$($(ENV_OR) GRAFANA_ADMIN_PASSWORD unused-by-this-command)"
NOT_AGENT := SSH_HOST_KEY="$$($(ENV_OR) SSH_HOST_KEY unused-by-this-command)"

# The camera list on this machine (docs/cameras.md): CAMERAS_FILE from the environment or .env. With it,
# scripts/stack-config.sh checks it and writes .camrelay/compose.yml (every camera's ports, forwards and
# permitted tunnel ports), and compose runs docker-compose.yml + that file; without it,
# docker-compose.yml + compose/single-camera.yml (one camera, as in the seed). Both then get the front
# door below.
ifeq ($(origin CAMERAS_FILE),undefined)
CAMERAS_FILE := $(call env_file_value,CAMERAS_FILE)
endif
export CAMERAS_FILE
# The viewers' front door: HTTPS through Caddy (compose/https.yml; DOMAIN for a real certificate), or
# with HTTPS=off (environment or .env) the relay's plain HTTP port as before (compose/plain-http.yml).
ifeq ($(origin HTTPS),undefined)
HTTPS := $(call env_file_value,HTTPS)
endif
FRONT_FILE := $(if $(filter off false no 0,$(HTTPS)),compose/plain-http.yml,compose/https.yml)
STACK_FILES := docker-compose.yml:$(if $(strip $(CAMERAS_FILE)),.camrelay/compose.yml,compose/single-camera.yml):$(FRONT_FILE)
STACK := COMPOSE_PATH_SEPARATOR=: COMPOSE_FILE=$(STACK_FILES) $(COMPOSE)
BASE := COMPOSE_FILE=docker-compose.yml $(COMPOSE)
# Every service there is, whatever this machine runs (down, logs and ps must see Caddy too).
ALL := COMPOSE_PATH_SEPARATOR=: COMPOSE_FILE=docker-compose.yml:compose/https.yml $(COMPOSE) --profile home --profile vps --profile demo
TAG := $(or $(CAMRELAY_TAG),$(call env_file_value,CAMRELAY_TAG),local)

up-home: ## start the home stack (tunnel-agent; forwards from CAMERAS_FILE when set)
	$(NOT_GRAFANA) $(BASE) --profile home build
	$(ROOT)scripts/stack-config.sh --image camrelay/tunnel-agent:$(TAG)
	$(NOT_GRAFANA) $(STACK) --profile home up -d --remove-orphans

up-vps: ## start the VPS stack (tunnel-server, relay, prometheus, grafana; cameras from CAMERAS_FILE when set)
	$(NOT_AGENT) $(BASE) --profile vps build
	$(ROOT)scripts/stack-config.sh --image camrelay/relay:$(TAG)
	$(NOT_AGENT) $(STACK) --profile vps up -d --remove-orphans

demo: ## everything on one machine: three fake cameras (demo/cameras.yml) through one tunnel
	scripts/demo.sh

stack-config: ## check CAMERAS_FILE and write .camrelay/compose.yml (what up-home/up-vps/reload use)
	$(ROOT)scripts/stack-config.sh $(if $(wildcard $(ROOT)common/dist/stack-cli.js),,--image camrelay/relay:$(TAG))

reload: ## re-read CAMERAS_FILE without a restart: check it, re-publish ports if they changed, SIGHUP relay and agent
	COMPOSE='$(COMPOSE)' COMPOSE_PATH_SEPARATOR=: COMPOSE_FILE=$(STACK_FILES) $(ROOT)scripts/stack-reload.sh

down: ## stop every profile's containers (volumes are kept)
	$(NOT_GRAFANA) $(NOT_AGENT) $(ALL) down --remove-orphans

logs: ## follow logs
	$(NOT_GRAFANA) $(NOT_AGENT) $(ALL) logs -f --tail=100

ps: ## list containers
	$(NOT_GRAFANA) $(NOT_AGENT) $(ALL) ps

compose: ## any Compose command on this machine's stack, e.g. make compose ARGS='exec caddy cat /data/caddy/pki/authorities/local/root.crt'
	$(NOT_GRAFANA) $(NOT_AGENT) $(STACK) --profile home --profile vps --profile demo $(ARGS)

clean: ## remove build output and reports
	npm run clean; rm -rf $(REPORTS)
