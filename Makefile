# camrelay — one entry point for building, testing and running the stacks.
# `make test` is THE test command (CI runs it through .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Compose v2 plugin when present, else Compose v1.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo "docker-compose"; fi)
JEST := node_modules/.bin/jest
REPORTS := reports

.PHONY: help install build lint test test-unit test-promtool test-compose bench keys up-home up-vps demo down logs ps clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.package-lock.json ## install npm dependencies (npm ci) if missing or stale

build: install ## compile every workspace (tsc -b)
	npm run build

lint: build ## eslint + strict type-check of sources and tests
	npm run lint

test: lint ## build, lint, run every test tier (unit, integration, browser, sshd, promtool) and print a summary
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
	scripts/test-compose.sh

bench: build ## benchmarks; writes BENCHMARKS.md
	bench/run.sh

keys: ## generate the tunnel client key pair and the sshd host key into ./secrets, print the pin
	scripts/keys.sh

up-home: ## start the home stack (tunnel-agent)
	$(COMPOSE) --profile home up -d --build

up-vps: ## start the VPS stack (tunnel-server, relay, prometheus, grafana)
	$(COMPOSE) --profile vps up -d --build

demo: ## everything on one machine with a fake camera
	scripts/demo.sh

down: ## stop every profile's containers
	$(COMPOSE) --profile home --profile vps --profile demo down

logs: ## follow logs
	$(COMPOSE) --profile home --profile vps --profile demo logs -f --tail=100

ps: ## list containers
	$(COMPOSE) --profile home --profile vps --profile demo ps

clean: ## remove build output and reports
	npm run clean; rm -rf $(REPORTS)
