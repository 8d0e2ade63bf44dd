# tweetflow: the two commands a new user runs are `make demo` and `make test`.
# Each sets up what it runs and no more (`make demo`: the Python venv with requirements.txt;
# `make test`: requirements-test.txt, the browser and the Azure emulator too); both are
# idempotent and work in either order.

SHELL := /bin/bash
VENV ?= $(or $(TWEETFLOW_VENV),.venv)
PYTHON := $(VENV)/bin/python
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
TWEETFLOW := $(TARGET_DIR)/release/tweetflow
# The demos run the dev profile's binary (`cargo build`, no optimization): it compiles in about
# half the CPU time of the release profile, which is tuned for speed per row and for size
# (docs/build.md). The demo's data is small (seconds either way); `make build-release` builds
# the optimized binary for real data, benchmarks and Ray clusters.
DEMO_TWEETFLOW := $(TARGET_DIR)/debug/tweetflow
DEMO_BUILD := $(CARGO) build --bin tweetflow
# What both demos set before their runs, and the line they end with.
DEMO_ENV := export MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-$$(scripts/mlflow-server.sh url)} TWEETFLOW_BIN=$(abspath $(DEMO_TWEETFLOW))
DEMO_BINARY_NOTE := echo "Binary: $(DEMO_TWEETFLOW), the unoptimized build, quick to compile; the optimized one: make build-release"
export TWEETFLOW_VENV := $(abspath $(VENV))

.PHONY: demo demo-s3 test setup setup-demo setup-s3 venv browser azurite prometheus build build-release build-demo demo-build test-rust test-python lint bench reliability stop clean

## demo: set up, start a local MLflow server (unless MLFLOW_TRACKING_URI names one), build and
## register the sentiment model (cached after the first time), then run the main pipeline on
## embedded defaults (local Delta tables under data/demo); ends with where report.html is, the
## MLflow run page and the key figures. Sets up the venv (requirements.txt) while the binary
## compiles (the dev profile's, see DEMO_TWEETFLOW above).
demo: demo-build
	@scripts/mlflow-server.sh start >/dev/null
	$(DEMO_ENV) && \
	  $(DEMO_TWEETFLOW) run pipelines/train_sentiment_model.yaml && \
	  $(DEMO_TWEETFLOW) run pipelines/tweet_sentiment.yaml && \
	  $(DEMO_TWEETFLOW) schedule --once pipelines/mentions_report.yaml && \
	  $(DEMO_TWEETFLOW) schedule --next 1 pipelines/mentions_report.yaml && \
	  $(DEMO_TWEETFLOW) runs list --json --limit 50 | $(PYTHON) scripts/demo-summary.py runs && \
	  echo "MLflow UI: $$MLFLOW_TRACKING_URI  (stop the local server with: make stop)" && \
	  $(DEMO_BINARY_NOTE)

## demo-s3: the same as demo with the pipeline's landing folder and tables on a local S3 API
## server (moto, scripts/s3-server.sh, bucket `tweetflow`); MLflow unchanged; ends with the
## same summary
demo-s3: setup-s3 build-demo
	@scripts/mlflow-server.sh start >/dev/null
	$(DEMO_ENV) && \
	  export AWS_ENDPOINT_URL=$$(scripts/s3-server.sh start) AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-demo} \
	    AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-demo-secret} AWS_REGION=$${AWS_REGION:-us-east-1} AWS_ALLOW_HTTP=true && \
	  $(DEMO_TWEETFLOW) run pipelines/train_sentiment_model.yaml && \
	  $(DEMO_TWEETFLOW) run pipelines/tweet_sentiment.yaml --param root=s3://tweetflow/demo && \
	  $(DEMO_TWEETFLOW) table show s3://tweetflow/demo/silver && \
	  $(DEMO_TWEETFLOW) runs list --json --limit 50 | $(PYTHON) scripts/demo-summary.py runs && \
	  echo "MLflow UI: $$MLFLOW_TRACKING_URI  (stop the local servers with: make stop)" && \
	  $(DEMO_BINARY_NOTE)

## test: set up, then run every test (Rust workspace and Python)
test: setup test-rust test-python

setup: venv browser azurite prometheus

## venv: the full Python set for the tests (requirements-test.txt)
venv:
	@scripts/setup-venv.sh test

## setup-demo: only what `make demo` runs (requirements.txt); setup-s3 adds moto
setup-demo:
	@scripts/setup-venv.sh demo

setup-s3:
	@scripts/setup-venv.sh s3

## demo-build: setup-demo and build-demo at once (pip waits on the network, cargo on the CPU);
## the local MLflow server starts as soon as the venv is ready (`demo` starts it, or reports
## why not, if this start failed)
demo-build:
	@{ scripts/setup-venv.sh demo && { scripts/mlflow-server.sh start >/dev/null 2>&1 || true; }; } & venv=$$!; \
	  $(DEMO_BUILD) || { wait $$venv; exit 1; }; \
	  wait $$venv || { echo "setup: the Python venv failed (scripts/setup-venv.sh demo)" >&2; exit 1; }

## azurite: the Azure Storage emulator (npm registry) next to the venv, for the az:// tests
azurite: venv
	@scripts/setup-azurite.sh

## browser: Debian's chromium and chromium-driver for the UI's browser test
browser:
	@scripts/setup-browser.sh

## prometheus: Debian's Prometheus server, which the metrics tests start to scrape tweetflow
prometheus:
	@scripts/setup-prometheus.sh

build:
	$(CARGO) build --workspace --all-targets

## build-release: the optimized binary, target/release/tweetflow (about 15 min on 2 cores from
## an empty target; docs/build.md)
build-release:
	$(CARGO) build --release --bin tweetflow

## build-demo: the dev profile's binary the demos run, target/debug/tweetflow
build-demo:
	$(DEMO_BUILD)

test-rust:
	TWEETFLOW_REQUIRE_BROWSER=1 $(CARGO) test --workspace --no-fail-fast

test-python: venv
	$(PYTHON) -m pytest python/tests -q

## lint: formatting and clippy, warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: engine benchmark (release build)
bench: build-release
	$(TWEETFLOW) bench engine

## reliability: the reliability suite's long form (release build, about 20 minutes): kill -9 of
## the engine 50 times, the scheduler daemon for 10 minutes with 20 kills on a busy machine, 16
## runs at once, disk full, MLflow down/slow/500/429; prints one table, exits 1 if a row failed.
## Its short form is a test (tests/reliability.rs), so `make test` runs it.
reliability: venv
	$(CARGO) build --release --workspace --bin tweetflow --bin tweetflow-reliability
	$(TARGET_DIR)/release/tweetflow-reliability --tweetflow $(abspath $(TWEETFLOW))

## stop: stop the local MLflow and S3 servers started by the demos
stop:
	@if [ -x scripts/mlflow-server.sh ]; then scripts/mlflow-server.sh stop; fi
	@if [ -x scripts/s3-server.sh ]; then scripts/s3-server.sh stop; fi

clean:
	rm -rf runs/* data/example
