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

# the compiled hot paths are built from these: rebuild when one changes
# (each twin's types are in _cadent_c_<module>.pxd beside its <module>.py)
TWIN_PXDS := $(wildcard cadent/*/_cadent_c_*.pxd cadent/*/*/_cadent_c_*.pxd)
# (a twin that needs C its module cannot say is written as _cadent_c_<module>.pyx)
TWIN_PYXS := $(wildcard cadent/*/_cadent_c_*.pyx cadent/*/*/_cadent_c_*.pyx)
COMPILED_SOURCES := setup.py cadent/compiled.py $(TWIN_PXDS) $(TWIN_PYXS) \
	$(foreach pxd,$(TWIN_PXDS),$(dir $(pxd))$(patsubst _cadent_c_%.pxd,%.py,$(notdir $(pxd))))

$(VENV)/.installed: setup.cfg pyproject.toml $(COMPILED_SOURCES) $(VENV)/.created
	$(BIN)/pip install -q -e '.[api]'
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml $(COMPILED_SOURCES) $(VENV)/.created
	$(BIN)/pip install -q -e '.[api,kafka,cassandra,test]'
	touch $@

peers:
	scripts/install-peers.sh

run: setup
	$(BIN)/python scripts/run_suite.py

# every test with the compiled hot paths (they must be built), then the parsers', the cache's
# and the whisper writer's tests again on their pure-Python twins, which stay the reference
PURE_PYTHON_TESTS := tests/unit/test_parse_plaintext.py tests/unit/test_fuzz_parsers.py \
	tests/unit/test_statsd_engine.py tests/unit/test_statsd_fuzz.py \
	tests/unit/test_statsd_golden.py tests/unit/test_compiled_differential.py \
	tests/unit/test_encode.py tests/unit/test_routers.py tests/unit/test_compiled_encode_route.py \
	tests/unit/test_aggregate_aggregator.py tests/unit/test_aggregate_buffers.py \
	tests/unit/test_aggregate_gather.py tests/unit/test_whisper_batch.py tests/unit/test_drain.py \
	tests/unit/test_whisper_writer.py tests/unit/test_parse_pickle.py tests/unit/test_cache.py

test: setup-test peers
	CADENT_REQUIRE_COMPILED=1 $(BIN)/pytest -q -p no:cacheprovider
	CADENT_PURE_PYTHON=1 $(BIN)/pytest -q -p no:cacheprovider $(PURE_PYTHON_TESTS)

bench: setup-test peers
	$(BIN)/python bench/relay_bench.py

clean:
	rm -rf $(VENV) var build *.egg-info
