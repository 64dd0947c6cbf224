# The README's two commands: `make demo` and `make test`. Both set the machine up first.
PYTHON     ?= /usr/bin/python3
VENV       := .venv
ECI        := $(VENV)/bin/eci
STAMP      := $(VENV)/.installed
# The demo uses the admin's file when there is one, the example (ECI on, locked) otherwise.
ADMIN_SETTINGS ?= $(if $(wildcard /etc/eci/admin-settings.json),/etc/eci/admin-settings.json,$(CURDIR)/examples/admin-settings.json)

.PHONY: setup host venv demo down test lint unit integration clean

setup: host venv

host:
	@scripts/setup-host

venv: $(STAMP)

$(STAMP): pyproject.toml | host
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

demo: setup
	@chown root:root examples/admin-settings.json && chmod 644 examples/admin-settings.json
	$(ECI) up --registry --admin-settings $(ADMIN_SETTINGS)
	$(ECI) images
	$(ECI) verify
	@echo
	@echo "Point the Docker CLI at eci (as root or a member of group docker):"
	@echo "    eval \"\$$($(ECI) env)\"      # or: docker -H unix:///run/eci/docker.sock ..."
	@echo "    docker run --rm busybox echo ok"
	@echo "Stop it with: $(ECI) down"

down:
	$(ECI) down

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src/eci

test: setup lint
	@scripts/run-tests

unit: venv
	$(VENV)/bin/pytest tests/unit -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
