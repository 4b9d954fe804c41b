# cadent: `make run` starts the single-box suite, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup peers run test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[api,kafka,cassandra,test]'
	touch $@

peers:
	scripts/install-peers.sh

run: setup
	$(BIN)/python scripts/run_suite.py

test: setup peers
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup peers
	$(BIN)/python bench/relay_bench.py

clean:
	rm -rf $(VENV) var build *.egg-info
