# Set-up and entry points for a fresh machine (Linux x86_64, Python 3.11 with pip and venv).
#   make pipeline   install the locked environment into .venv, then run the default (embedded-tier) pipeline
#   make test       install the locked environment into .venv, then run the test suite
#   make lock       recompile requirements/*.txt from pyproject.toml (uv), after changing a dependency
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
LLM_LOCK := requirements/embedded-llm.txt
# The lock is compiled for the reference platform with packages no newer than this date, so `make lock`
# gives the same file until someone moves the date on purpose.
LOCK_DATE ?= 2026-12-01
UV_COMPILE = $(BIN)/uv pip compile --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --exclude-newer $(LOCK_DATE) --quiet \
	--custom-compile-command 'make lock'
EXTRAS := workflow,cluster,mllm,dev,eval

.PHONY: install pipeline test lint lock
install: $(VENV)/.installed

# pip is the installer: every package (torch included, which pip finds on the machine's local index)
# comes from the hashed lock, --no-deps so nothing outside the lock is resolved.
$(VENV)/.installed: pyproject.toml $(LOCK) $(LLM_LOCK)
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "the lock is for Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LLM_LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m modgap.provenance record-lock $(LOCK) $(LLM_LOCK)
	touch $@

pipeline: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake

# pytest exits 5 when it collects no tests: treat that as a failure, not a pass.
test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check src tests benchmarks
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint

# Needs uv, which the dev extra installs. Commit the regenerated files with the pyproject change.
lock: install
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra $(subst $(comma), --extra ,$(EXTRAS)) \
		--constraint requirements/constraints.in -o $(LOCK)
	$(UV_COMPILE) requirements/embedded-llm.in --no-deps -o $(LLM_LOCK)

comma := ,
