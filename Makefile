# Two commands do everything on a fresh machine:
#   make book   -> creates .venv if missing, installs, builds the book (executes every notebook)
#   make test   -> creates .venv if missing, installs, runs unit tests + every notebook (nbval)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup book test bench sync-url clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements-test.txt
	touch $(STAMP)

book: setup
	$(BIN)/jupyter-book build . --builder html -W --keep-going
	@echo "Open _build/html/index.html"

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python scripts/benchmark_fit.py

sync-url: setup
	$(BIN)/python scripts/sync_repo_url.py

clean:
	rm -rf _build
