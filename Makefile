# The two commands: `make run` and `make test`. Both bootstrap the virtualenv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= routes.yaml

.PHONY: run test unit check routes bench lint venv redis-server

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	touch $@

run: venv  # gateway.py serve, or demo mode on a machine with no secrets file and no provider key
	$(PY) -m server.launch -c $(CONFIG)

check: venv
	$(PY) gateway.py check -c $(CONFIG)

routes: venv
	$(PY) gateway.py routes -c $(CONFIG)

# The state tests (tests/state) start real redis-server processes: Debian's package.
redis-server:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q redis-server; \
	  else sudo apt-get update -q && sudo apt-get install -y -q redis-server; fi; }

test: venv redis-server
	$(PY) -m ruff check .
	$(PY) -m pytest -q

unit: venv  # the fast inner loop: in-process tests only, no gateway or mock started
	$(PY) -m pytest -q -n 0 tests/unit

bench: venv
	$(PY) bench/run.py

lint: venv
	$(PY) -m ruff check .
