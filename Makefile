# Passerelle: `make test` and `make demo` bootstrap everything they need on Debian 12.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench fuzz clean system-deps faults

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Prosody (and mod_privilege from prosody-modules) for the end-to-end tests and the demo.
system-deps:
	@if ! command -v prosody >/dev/null 2>&1 || [ ! -e /usr/lib/prosody/modules/mod_privilege/mod_privilege.lua ]; then \
		echo "installing prosody and prosody-modules with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prosody prosody-modules lua-unbound >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check gateway transports tests bench
	$(BIN)/mypy

test: $(STAMP) system-deps lint
	$(BIN)/pytest -q

demo: $(STAMP) system-deps
	$(BIN)/python -m gateway.devtools.demo

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

# The property-based tests with many more examples than the suite's fixed-seed run.
fuzz: $(STAMP) system-deps
	PASSERELLE_FUZZ_EXAMPLES=2000 $(BIN)/pytest -q tests/fuzz

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The fault-injection suite (not part of `make test`: it takes minutes). 1,000 messages per
# direction per case, as the reliability issue asks; PASSERELLE_FAULT_MESSAGES=200 for a
# quicker run. Needs root for the disk-full case (a small tmpfs).
faults: $(STAMP) system-deps
	PASSERELLE_FAULTS=1 PASSERELLE_FAULT_MESSAGES=$${PASSERELLE_FAULT_MESSAGES:-1000} $(BIN)/pytest -q -s tests/faults
