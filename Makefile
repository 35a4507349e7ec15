# Two entry points for a fresh Debian machine: `make demo` and `make test`.
# Both are safe to run twice: each step is skipped when already done.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages: python3-venv for .venv itself, then the servers the tests and the
# demo start for real on loopback, and the browser of the dashboard test.
DEB_PACKAGES := python3-venv rabbitmq-server mariadb-server postgresql chromium chromium-driver fonts-noto-cjk

.PHONY: demo test test-unit bench lint system-deps venv clean

demo: system-deps venv
	$(BIN)/exgate demo

test: system-deps venv
	$(BIN)/python -m pytest -q

test-unit: venv
	$(BIN)/python -m pytest -q tests/unit

bench: system-deps venv
	$(BIN)/python -m bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "system packages: present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "missing Debian packages:$$missing (run as root, or: sudo apt-get install$$missing)"; exit 1; fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
