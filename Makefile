# cadent: `make run` starts the single-box suite, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test peers run test bench clean

# what running needs (the daemons and cadent-api)
setup: $(VENV)/.installed

# and what the tests need besides: the optional backends' drivers, pytest, carbon
setup-test: $(VENV)/.installed-test

# a venv made here and failing half-way (Debian without python3-venv) is removed again
$(VENV)/.created:
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	    echo "make: '$(PYTHON) -m venv' failed; on Debian: apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/pip install -q --upgrade pip
	touch $@

$(VENV)/.installed: setup.cfg pyproject.toml $(VENV)/.created
	$(BIN)/pip install -q -e '.[api]'
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml $(VENV)/.created
	$(BIN)/pip install -q -e '.[api,kafka,cassandra,test]'
	touch $@

peers:
	scripts/install-peers.sh

run: setup
	$(BIN)/python scripts/run_suite.py

test: setup-test peers
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup-test peers
	$(BIN)/python bench/relay_bench.py

clean:
	rm -rf $(VENV) var build *.egg-info
