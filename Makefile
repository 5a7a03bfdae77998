# The two commands of the README: `make run` and `make test`. Everything they
# need is set up here: the virtual env, the package and its dev dependencies,
# and the system packages the tests use (installed with apt-get when missing).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench system-deps clean readme

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e . --group dev || \
	  $(BIN)/pip install -q -e . "pytest>=8.0" "pytest-asyncio>=0.24" "pytest-timeout>=2.3" \
	    "hypothesis>=6.100" "picows>=2.0" "py-spy>=0.3.14" "playwright>=1.45" "redis>=5.0" "mypy>=1.10" "ruff>=0.6"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tickwire serve

# System packages the suite runs for real: redis-server, Chromium, promtool.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# mypy reads its files from pyproject.toml: src/ and bench/ strict, tests/ with relaxed annotations
typecheck: $(STAMP)
	$(BIN)/mypy

# asyncio debug mode in the suite: slow callbacks and unawaited coroutines show up
unit: $(STAMP)
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest

test: $(STAMP) system-deps lint typecheck unit

# The fan-out benchmark (bench/RESULTS.md): Python peers and tools from the bench group;
# the Node peer's `ws` is installed from its lock file by the harness (npm ci).
bench: $(STAMP)
	$(BIN)/pip install -q --group bench || \
	  $(BIN)/pip install -q "picows>=2.0" "websockets>=14.0" "matplotlib>=3.8" "py-spy>=0.3.14"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Rewrite the settings table in README.md from the option table in config.py.
readme: $(STAMP)
	$(BIN)/python -c "import re, pathlib; from tickwire.config import settings_table; \
	p = pathlib.Path('README.md'); s = p.read_text(); \
	p.write_text(re.sub(r'(<!-- settings-table -->\n).*?(<!-- /settings-table -->)', \
	lambda m: m.group(1) + settings_table() + '\n' + m.group(2), s, flags=re.S))"
