# The README's entry points: `make up` (the whole stack on this machine) and `make test` (what CI runs).
# Both build the virtual environment themselves on a machine with only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR := .mimicmotion/demo

.PHONY: install system-deps test lint up try demo clean gpu-check

install: $(STAMP)

# torch first and pinned: any other order lets pip pick a multi-GB CUDA build.
# The client (its own distribution, client/) before the service: `mimicmotion submit` is built on it.
$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ./client
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The tests start their own redis-server, run Debian's docker-compose (`config` only, no engine), and drive
# Debian's chromium headless through Playwright (tests/browser; jq and curl run its "copy as curl" script), and
# check the alert rules with promtool (Debian's prometheus). Each entry is COMMAND:PACKAGE.
SYSTEM_TOOLS := redis-server:redis-server docker-compose:docker-compose chromium:chromium jq:jq curl:curl \
	promtool:prometheus
system-deps:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "the tests need$$missing: install them (e.g. apt-get install$$missing)" >&2; \
			exit 1; \
		fi; \
	fi

test: system-deps lint
	$(BIN)/pytest

# On a CUDA machine: pytest -m gpu tests/gpu and the GPU benchmarks, each under a timeout (under 8 minutes
# in all), into one JSON report (README, Performance). Without CUDA it runs nothing and says so.
gpu-check: install
	$(BIN)/python -m bench.gpu_check --out .mimicmotion/gpu-check.json

# Redis (started if none answers), the gateway on :8000 and one worker; a tiny random model
# unless MIMICMOTION_MODEL_DIR points at real weights.
up: install
	$(BIN)/mimicmotion up

# With `make up` running: send the bundled sample clip through the HTTP API and download the result.
# Small parameters keep a CPU run with the tiny model to seconds; real weights take the defaults.
try: install
	$(BIN)/mimicmotion submit --image assets/sample/person.png --video assets/sample/drive.mp4 \
		--wait --out $(DEMO_DIR)/submitted.mp4 \
		--resolution 128 --num-inference-steps 8 --tile-size 16 --tile-overlap 4 --seed 42

# The same job without any server: `mimicmotion animate` in this process.
demo: install
	$(BIN)/mimicmotion make-tiny-model $(DEMO_DIR)/model
	$(BIN)/mimicmotion animate --model-dir $(DEMO_DIR)/model --image assets/sample/person.png \
		--video assets/sample/drive.mp4 --out $(DEMO_DIR)/animation.mp4 --pose-out $(DEMO_DIR)/poses.mp4 \
		--resolution 128 --num-inference-steps 8 --tile-size 16 --tile-overlap 4 --seed 42

clean:
	rm -rf $(VENV) .mimicmotion
