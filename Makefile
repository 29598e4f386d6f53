# idaas-siem-bridge: `make run` (bridge + local Kafka) and `make test` (everything CI runs).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE := .cache
DEV_TOKEN ?= dev-token-change-me
DEV_URL := https://127.0.0.1:8443/webhooks/dev
#: The local broker's client port (deploy/kafka/kafka.sh reads it too): `make run`, `topics` and `tail` talk
#: to the broker `make kafka-up` started on it, whatever config/bridge.yaml's bootstrap_servers says.
KAFKA_PORT ?= 9092
export KAFKA_PORT
KAFKA_ENV := IDAAS_BRIDGE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT)
#: More `idaas-bridge simulate` flags, e.g. SIMULATE_ARGS="--count 30 --disable-after 10" (docs/cli.md)
SIMULATE_ARGS ?=

.PHONY: help venv kafka-up kafka-down topics dev-cert run simulate tail lint typecheck test test-fast tools image bench \
	clean monitoring chart-schema chart-docs metrics-doc config-reference generate

help:
	@echo "make run        set up and run the bridge on https://127.0.0.1:8443 against a local Kafka"
	@echo "make test       lint, type-check and the whole test suite (real Kafka, Helm, promtool, Prometheus)"
	@echo "make simulate   deliver one signed sample of each IDaaS event type to the running bridge, as IDaaS does"
	@echo "make tail       print what reached Kafka, one line per event (Ctrl-C ends it)"
	@echo "make kafka-up / kafka-down   the local single-node KRaft broker"
	@echo "make generate   rewrite the generated files (alerts, dashboard, chart schema and README)"
	@echo "make image      build the container image with podman (no Docker, no registry needed)"

#: The modules mypyc compiles into C extensions beside their sources (pyproject.toml [tool.idaas-bridge]): the
#: editable install builds them, so it is made again when one of them changes (tests/conftest.py stops a
#: test session started on an out-of-date build).
COMPILED_SOURCES := $(shell sed -n '/^compiled-modules = \[/,/^\]/s/^ *"\(.*\)",\{0,1\}$$/\1/p' pyproject.toml)

$(BIN)/idaas-bridge: pyproject.toml constraints.txt setup.py $(COMPILED_SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(BIN)/idaas-bridge

kafka-up:
	deploy/kafka/kafka.sh up

kafka-down:
	deploy/kafka/kafka.sh down

topics: venv kafka-up
	IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS=$(DEV_TOKEN) $(KAFKA_ENV) $(BIN)/idaas-bridge topics --config config/bridge.yaml

dev-cert:
	deploy/dev/dev-cert.sh $(CACHE)/dev

run: venv kafka-up topics dev-cert
	@echo
	@echo "Bridge starting on $(DEV_URL)  (dev token: $(DEV_TOKEN))"
	@echo "In another shell, deliver one signed sample of each of the 16 event types, then see them in Kafka:"
	@echo "    make simulate && make tail"
	@echo "Metrics and probes (operations port): curl http://127.0.0.1:9464/metrics    Stop: Ctrl-C, then make kafka-down"
	@echo
	IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS=$(DEV_TOKEN) \
	IDAAS_BRIDGE_SERVER__TLS_CERT_FILE=$(CACHE)/dev/dev-cert.pem \
	IDAAS_BRIDGE_SERVER__TLS_KEY_FILE=$(CACHE)/dev/dev-key.pem \
	IDAAS_BRIDGE_SERVER__HOST=127.0.0.1 \
	IDAAS_BRIDGE_SERVER__OPS_HOST=127.0.0.1 \
	IDAAS_BRIDGE_SPOOL__PATH=$(CACHE)/spool \
	$(KAFKA_ENV) \
	$(BIN)/idaas-bridge serve --config config/bridge.yaml

simulate: venv
	IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS=$(DEV_TOKEN) $(BIN)/idaas-bridge simulate --config config/bridge.yaml \
		--url $(DEV_URL) --webhook dev --cafile $(CACHE)/dev/dev-cert.pem $(SIMULATE_ARGS)

tail: venv
	IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS=$(DEV_TOKEN) $(KAFKA_ENV) $(BIN)/idaas-bridge tail --config config/bridge.yaml --from-beginning

lint: venv
	$(BIN)/ruff check bridge tests bench tools
	$(BIN)/ruff format --check bridge tests bench tools
	deploy/tools/install-go-tools.sh
	$(CACHE)/tools/bin/actionlint

typecheck: venv
	$(BIN)/mypy --strict bridge/ tools/

# Generated files (each has a test that fails while the committed copy differs):
# alert rules and Grafana dashboard (deploy/ and the chart's files/) from tools/monitoring.py,
monitoring: venv
	$(BIN)/python -m tools.monitoring

# the chart's values.schema.json from values.yaml and bridge/config.py,
chart-schema: venv
	$(BIN)/python -m tools.values_schema

# the chart's README.md from README.md.gotmpl and the values' comments (helm-docs),
chart-docs:
	deploy/tools/install-go-tools.sh
	$(CACHE)/tools/bin/helm-docs --sort-values-order file --chart-search-root helm/idaas-siem-bridge

# docs/metrics.md from bridge/metrics.py.
metrics-doc: venv
	$(BIN)/python -m tools.metrics_doc

# docs/configuration.md from the settings model (bridge/config.py) and config/bridge.yaml's comments.
config-reference: venv
	$(BIN)/python -m tools.config_reference

generate: monitoring chart-schema chart-docs metrics-doc config-reference

tools:
	deploy/tools/install-helm.sh
	deploy/tools/install-promtool.sh
	deploy/tools/install-go-tools.sh

# The container image from deploy/Dockerfile: podman, runc and mmdebstrap from Debian's packages, a base image
# made from Debian's Python, wheels built here (see deploy/image/build.sh). Cached: seconds when nothing changed.
image: venv
	deploy/tools/install-podman.sh
	deploy/image/build.sh

# tests/e2e/test_image.py runs the image just built.
test: venv lint typecheck tools image
	BRIDGE_TEST_IMAGE=$$(cat $(CACHE)/image/image-id) $(BIN)/python -m pytest -q

$(VENV)/.bench-extras: $(BIN)/idaas-bridge pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $@

# Not part of make test: minutes long, and its figures depend on the machine. BENCH_QUICK=1 for a short run.
bench: venv kafka-up $(VENV)/.bench-extras
	$(BIN)/python -m bench.run

clean:
	-deploy/kafka/kafka.sh down
	rm -rf $(VENV) $(CACHE)/kafka/instance-* $(CACHE)/spool build
	find bridge -name '*.so' -delete
	rm -f bridge__mypyc.*.so
