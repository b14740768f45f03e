# streamscore — the two commands a fresh machine needs:
#   make demo   runs the main job on the local AWS stack
#   make test   installs what is missing, starts the stack, runs every test
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin/streamscore
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
TESTSTACK := $(CURDIR)/.devstack/test
# -race on every package, integration tests included; CI never passes -short.
# Packages run one at a time (-p 1): they share one local stack, and the
# end-to-end load test alone keeps kinesis-local near its ~1,500 records/s,
# which starved other packages' timing-sensitive tests on 2 cores. Tests
# inside a package still run in parallel.
TESTFLAGS ?= -race -count=1 -p 1 -timeout 40m
TOOLS     := $(CURDIR)/.devstack/bin
# The CDK app is its own Go module (`go test ./...` at the root does not
# reach it); its tests run the CDK through jsii in Node, no Docker, no AWS.
CDK       := infra/cdk

.PHONY: help build deps tools test test-short lint bench demo demo-baseline node-servers models lambda stack-up stack-down clean

help:
	@echo "make demo        run the factory and churn pipelines on the local AWS stack, with load and a report"
	@echo "make demo-baseline  remake the demo drift monitor's baseline from a drift-free run's results in S3"
	@echo "make test        install what is missing, start the local stack, run every test with -race, then the CDK app's"
	@echo "make test-short  unit tests only (skips integration tests), for quick loops"
	@echo "make lint        gofmt, go vet, staticcheck"
	@echo "make bench       benchmarks, including the side-by-side run against XGBoost"
	@echo "make build       build $(BIN)"
	@echo "make lambda      build the login-event Lambda zip (bin/lambda/login-scorer.zip)"

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/streamscore

# System packages the tests drive (the Debian AWS CLI v2 is "a client we did
# not write"; python3-xgboost runs the training step), and an AWS CLI v1 (from npm, into .devstack/awscli-v1) for the
# dev env test. Installed when missing and we may; otherwise say what to install.
deps:
	@command -v node >/dev/null || { echo "Node.js >= 20 is required (with npm): https://nodejs.org or your package manager" >&2; exit 1; }
	@command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }
	@if [ ! -x /usr/bin/aws ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing the Debian AWS CLI (awscli)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends awscli >/dev/null; \
	  else echo "the tests need /usr/bin/aws: sudo apt-get install awscli" >&2; exit 1; fi; \
	fi
	@if ! /usr/bin/python3 -c 'import xgboost, numpy' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's python3-xgboost (the training step's tests run examples/models/train.py)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-xgboost python3-numpy >/dev/null; \
	  else echo "the tests need Debian's python3-xgboost: sudo apt-get install python3-xgboost" >&2; exit 1; fi; \
	fi
	@bash devstack/awscli/install-v1.sh

# Pinned servers and Go tools (npm ci + go install tool); a no-op when current.
tools: build
	$(BIN) dev install

# The tests' servers and the Lambda runtime emulator, in one build; the lint
# tools are lint's.
TESTTOOLS := versitygw kumo server aws-lambda-rie
test: deps build
	@$(BIN) dev install $(TESTTOOLS)
	@$(BIN) dev up --dir $(TESTSTACK)
	@rc=0; STREAMSCORE_DEVSTACK_DIR=$(TESTSTACK) $(GO) test $(TESTFLAGS) ./... || rc=$$?; \
	  $(BIN) dev down --dir $(TESTSTACK); exit $$rc
	cd $(CDK) && $(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

lint: tools
	@out=$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...
	@out=$$(gofmt -l $(CDK)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	cd $(CDK) && $(GO) vet ./... && $(TOOLS)/staticcheck ./...

# Benchmarks of every package (5 runs each, summarised by benchstat), then
# the embedded tree scorer side by side with XGBoost 1.7's own C++ predictor
# (Debian's python3-xgboost, installed here when missing and we may).
BENCHFLAGS ?= -run '^$$' -bench . -benchmem -count 5 -short
bench: build
	$(GO) test $(BENCHFLAGS) ./... | tee bench.out
	$(TOOLS)/benchstat bench.out
	@if ! /usr/bin/python3 -c 'import xgboost' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-xgboost >/dev/null; \
	  else echo "the XGBoost comparison needs Debian's python3-xgboost: sudo apt-get install python3-xgboost" >&2; exit 1; fi; \
	fi
	scorer/bench/compare.sh

# The main job on a fresh local stack: two workers run the factory and churn
# pipelines while the load generator publishes 75 s of traffic in real time
# (machines degrading for two minutes before they fail) and kills one
# worker; then the verdict and the report. A fresh machine compiles only
# streamscore itself: no AWS CLI, no Go servers, no lint tools.
DEMOSTACK := $(CURDIR)/.devstack/demo
DEMO_FACTORY := examples/demo/factory.yaml
DEMO_CHURN   := examples/demo/churn.yaml
# Node servers, installed by npm in seconds: s3rver plays S3, and the
# demo's metrics go out as EMF lines in the worker logs. The one Go server is
# the CloudWatch server, for its EventBridge and Step Functions: the model's
# loop runs through them (built once, minutes on a cold Go cache).
# Kinesis is kinesalite: the demo needs neither fan-out nor resharding, and
# kinesis-local stalled the publisher for 2.4 s while the surviving worker
# replayed the killed one's shards (docs/performance.md compares them).
DEMOSERVICES := kinesis,dynamodb,s3,sns-sqs,cloudwatch
DEMOKINESIS ?= kinesalite
# Half the fleet's rpm sensors read 60 rpm high from 20 s in: the drift
# monitor must name rpm_mean, and nothing else (docs/monitor.md). Then the
# model's loop (docs/flywheel.md): failures become labels, the drifted period
# asks for retraining, train.py's model becomes the challenger (seeded with the
# champion's own model until then), and the policy promotes it or says why not;
# the run waits for the quality verdict on its last period.
DEMOFLAGS ?= --workers 2 --duration 150s --settle 40s --kill-at 40s --drift-field rpm --drift-shift 60 --drift-at 20s
# Always on: the demo config's challenger lives at an S3 path the loop seeds.
DEMOLOOP := --flywheel --challenger-seed examples/models/factory-demo.json
demo:
	@rm -rf $(DEMOSTACK)
	@$(MAKE) --no-print-directory -j2 build node-servers
	@$(BIN) dev up --dir $(DEMOSTACK) --services $(DEMOSERVICES) --kinesis $(DEMOKINESIS) --s3 s3rver --config $(DEMO_FACTORY) --config $(DEMO_CHURN)
	@rc=0; eval "$$($(BIN) dev env --dir $(DEMOSTACK))"; \
	  $(BIN) loadtest run --factory-config $(DEMO_FACTORY) --churn-config $(DEMO_CHURN) $(DEMOFLAGS) $(DEMOLOOP) --report-dir out/demo || rc=$$?; \
	  $(BIN) dev down --dir $(DEMOSTACK); exit $$rc

# The demo monitor's baseline: the pipeline's own results of a drift-free
# run shaped like the demo's (same fleet, stream starts and failures; seed 5,
# which the demo does not use), profiled by `streamscore monitor baseline`
# from S3. readings and missing_vibration say how complete a window is: they
# are low in every window begun before the stream's first reading, so the
# first minute of any run moves them (the model does not read them); their
# completeness and type are still checked. The config needs a baseline to
# start: the committed one serves.
DEMO_BASELINE := examples/demo/baselines/machine_30s
demo-baseline:
	@rm -rf $(DEMOSTACK)
	@$(MAKE) --no-print-directory -j2 build node-servers
	@$(BIN) dev up --dir $(DEMOSTACK) --services $(DEMOSERVICES) --kinesis $(DEMOKINESIS) --s3 s3rver --config $(DEMO_FACTORY)
	@rc=0; eval "$$($(BIN) dev env --dir $(DEMOSTACK))"; \
	  $(BIN) loadtest run --factory-config $(DEMO_FACTORY) --workers 2 --duration 180s --settle 30s --seed 5 $(DEMOLOOP) --report-dir out/demo-baseline && \
	  $(BIN) monitor baseline --input s3://streamscore-demo/factory/failure/ --out $(DEMO_BASELINE) \
	    --no-compare readings,missing_vibration || rc=$$?; \
	  $(BIN) dev down --dir $(DEMOSTACK); exit $$rc

# The Node servers' packages, installed while Go compiles on a fresh machine
# (dev up runs the same npm ci when the lock file is newer than the install;
# here make's own timestamps decide).
NODEDIR := devstack/node
node-servers: $(NODEDIR)/node_modules/.package-lock.json
$(NODEDIR)/node_modules/.package-lock.json: $(NODEDIR)/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js >= 20 with npm is required: https://nodejs.org or your package manager" >&2; exit 1; }
	cd $(NODEDIR) && npm ci --no-audit --no-fund --loglevel=error

# Retrain the example models on the load generator's traffic, computed by the
# pipeline's own windows (needs Debian's python3-xgboost: apt-get install
# python3-xgboost). Seed 1 trains, seed 2 judges; the reports are committed.
FACTORY_FEATURES := vibration_mean,vibration_max,vibration_std,vibration_delta,temperature_mean,temperature_max,temperature_p95,pressure_mean,rpm_mean,current_mean
CHURN_FEATURES   := events,logins,purchases,support_tickets,spend,sessions,seconds_since_last
MODELTMP         := $(CURDIR)/.devstack/models
models: build
	@mkdir -p $(MODELTMP)
	$(BIN) loadtest dataset --scenario factory-demo --config examples/demo/factory.yaml --seed 1 --out $(MODELTMP)/factory-demo-train.csv
	$(BIN) loadtest dataset --scenario factory-demo --config examples/demo/factory.yaml --seed 2 --out $(MODELTMP)/factory-demo-test.csv
	/usr/bin/python3 examples/models/train.py --train $(MODELTMP)/factory-demo-train.csv --test $(MODELTMP)/factory-demo-test.csv \
	  --features $(FACTORY_FEATURES) --threshold 0.9 --fire-after 2 --out examples/models/factory-demo.json --report examples/models/factory-demo.report.json
	$(BIN) loadtest dataset --scenario factory --config examples/factory.yaml --seed 1 --out $(MODELTMP)/factory-train.csv
	$(BIN) loadtest dataset --scenario factory --config examples/factory.yaml --seed 2 --out $(MODELTMP)/factory-test.csv
	/usr/bin/python3 examples/models/train.py --train $(MODELTMP)/factory-train.csv --test $(MODELTMP)/factory-test.csv \
	  --features $(FACTORY_FEATURES) --threshold 0.8 --fire-after 2 --out examples/models/factory-failure.json --report examples/models/factory-failure.report.json
	$(BIN) loadtest dataset --scenario churn --config examples/churn.yaml --seed 1 --out $(MODELTMP)/churn-train.csv
	$(BIN) loadtest dataset --scenario churn --config examples/churn.yaml --seed 2 --out $(MODELTMP)/churn-test.csv
	/usr/bin/python3 examples/models/train.py --train $(MODELTMP)/churn-train.csv --test $(MODELTMP)/churn-test.csv \
	  --features $(CHURN_FEATURES) --threshold 0.7 --fire-after 1 --out examples/models/churn.json --report examples/models/churn.report.json

stack-up: build
	$(BIN) dev up --config examples/factory.yaml --config examples/churn.yaml

stack-down: build
	$(BIN) dev down

# The login-event Lambda for the provided.al2023 runtime: the bootstrap
# binary and the churn model, zipped (docs/lambda.md). LAMBDA_ARCH=arm64
# for Graviton; LAMBDA_MODEL to package another model.
LAMBDA_ARCH  ?= amd64
LAMBDA_MODEL ?= examples/models/churn.json
lambda:
	@command -v zip >/dev/null || { echo "zip is required (apt-get install zip)" >&2; exit 1; }
	@rm -rf bin/lambda && mkdir -p bin/lambda
	CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_ARCH) $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o bin/lambda/bootstrap ./lambda/bootstrap
	cp $(LAMBDA_MODEL) bin/lambda/model.json
	cd bin/lambda && zip -q -X login-scorer.zip bootstrap model.json
	@echo "bin/lambda/login-scorer.zip: runtime provided.al2023, STREAMSCORE_MODEL=model.json (docs/lambda.md)"

clean:
	-$(BIN) dev down 2>/dev/null
	-$(BIN) dev down --dir $(TESTSTACK) 2>/dev/null
	rm -rf bin .devstack bench.out
