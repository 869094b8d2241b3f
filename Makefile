# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install, poll the bundled sample feeds once, print the alerts
#   make test   - create .venv, install, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean sysdeps

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

# The deploy tests run systemd-analyze (Debian package "systemd"); install it
# when it is missing and we may (root, apt-get); otherwise those tests skip.
sysdeps:
	@command -v systemd-analyze >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; } \
	  || echo "note: systemd-analyze unavailable; the deploy checks that need it will be skipped"; }

test: $(STAMP) sysdeps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
