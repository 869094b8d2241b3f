# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install, poll the bundled sample feeds once, print the alerts
#   make test   - create .venv, install, lint and type-check, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test check bench install clean sysdeps

install: $(STAMP)

# torch is pinned to the CPU build that lies on this kind of machine's disk:
# camel-tools depends on it, the daemon never imports it, and an unpinned
# resolve would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m monitor demo

# System packages the tests use, from Debian's archive, installed when missing and
# when we may (root with apt-get); otherwise the tests that need them skip, saying why:
#   systemd     - systemd-analyze verify/security for the unit in deploy/
#   postgresql  - a real PostgreSQL server for the state-layer and multi-instance tests
sysdeps:
	@missing=""; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: missing$$missing (not root or no apt-get); the tests that need them will be skipped"; fi; \
	fi

# Zero findings or the build fails: ruff on everything, mypy --strict (pydantic plugin) on monitor/.
check: $(STAMP)
	$(PY) -m ruff check monitor tests bench examples
	$(PY) -m mypy

test: $(STAMP) sysdeps check
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
