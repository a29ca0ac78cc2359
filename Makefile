# liverlib: two commands set up and run everything on a fresh machine with Python 3.11.
#   make book   build the book (laptop profile) into _build/html
#   make test   run every test, every notebook (quick profile), and check the book offline in a browser
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup browser book book-quick test lab app bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# uv installs from pyproject.toml as pip does, in a fraction of the time (the setup stage of course_cost.json),
	@# but reads none of pip's configuration (pip.conf, PIP_*): where it fails, pip installs instead.
	@# --compile-bytecode writes the .pyc files at install, as pip does and uv otherwise does not: where
	@# PYTHONDONTWRITEBYTECODE is set (as on the machines this course is built on), every kernel and test
	@# process would compile TensorFlow, pandas and scipy again (stack_import_seconds in course_cost.json)
	$(PY) -m pip install --quiet --progress-bar off "uv>=0.5,<1" 2>&1 | grep -v "^WARNING: Location" || true
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e ".[book,test,app]" || \
	  $(PY) -m pip install --quiet --progress-bar off -e ".[book,test,app]" 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import liverlib, tensorflow, keras_tuner, jupyter_book" || { echo "install failed: see the pip output above"; exit 1; }
	@touch $(STAMP)

setup: $(STAMP)

# Debian's chromium, for the browser tests (offline book rendering, the web app)
browser:
	@bash scripts/install-chromium.sh

# the chapters run in two streams into the book's jupyter-cache (scripts/execute_chapters.py); the build renders them
book: setup
	$(PY) scripts/execute_chapters.py _build/laptop
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --path-output _build/laptop
	@rm -rf _build/html && cp -r _build/laptop/_build/html _build/html
	@echo "book: open _build/html/index.html"

book-quick: setup
	LIVERLIB_PROFILE=quick $(PY) scripts/execute_chapters.py _build/quick
	LIVERLIB_PROFILE=quick $(VENV)/bin/jupyter-book build . -W -n --keep-going --path-output _build/quick

test:
	@bash scripts/run-tests.sh

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

app: setup
	$(VENV)/bin/liverlib app

bench: setup
	$(PY) -m benchmarks.run_all

clean:
	rm -rf _build .pytest_cache
