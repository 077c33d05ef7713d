# The two entry points of the README: `make demo` (runs the main job) and `make test`.
# Both build the virtual environment themselves on a machine with only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR := .mimicmotion/demo

.PHONY: install test lint demo clean

install: $(STAMP)

# torch first and pinned: any other order lets pip pick a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The tiny model at a small size keeps the CPU run short; real weights take the defaults.
demo: install
	$(BIN)/mimicmotion make-tiny-model $(DEMO_DIR)/model
	$(BIN)/mimicmotion animate --model-dir $(DEMO_DIR)/model --image assets/sample/person.png \
		--video assets/sample/drive.mp4 --out $(DEMO_DIR)/animation.mp4 --pose-out $(DEMO_DIR)/poses.mp4 \
		--resolution 128 --num-inference-steps 8 --tile-size 16 --tile-overlap 4 --seed 42

clean:
	rm -rf $(VENV) .mimicmotion
