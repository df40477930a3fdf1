# Two commands do everything on a fresh machine:
#   make book   -> creates .venv if missing, installs, builds the book with every chapter's
#                  outputs (executes only notebooks whose executed copy is missing or stale)
#   make test   -> creates .venv if missing, installs, runs unit tests + every notebook (nbval);
#                  each passing notebook's outputs are kept for `make book`
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup book test bench reference ledger sync sync-url clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements-test.txt
	touch $(STAMP)

BOOK_FLAGS ?=
book: setup
	$(BIN)/python scripts/book.py $(BOOK_FLAGS)

test: setup
	$(BIN)/python -m pytest

# a chapter's converged reference comparison -> results/NN_slug.json (slow on a CPU)
#   make reference CH=03 NPROC=2 THREADS=1   spreads the runs over 2 processes (torchrun) with
#   1 torch thread each; NPROC and THREADS are optional and checked by scripts/reference.py
reference: setup
	@test -n "$(CH)" || { echo "usage: make reference CH=03 [NPROC=2] [THREADS=1]"; exit 2; }
	$(BIN)/python scripts/reference.py $(CH) $(if $(NPROC),--nproc=$(NPROC)) $(if $(THREADS),--threads=$(THREADS))

# after a reference file or results/claims.json changes: rewrite the ledger page (book/ledger.md)
ledger: setup
	$(BIN)/python scripts/ledger.py

bench: setup
	$(BIN)/python scripts/benchmark_fit.py

# after editing a chapter's .md in a text editor: update its paired .ipynb (and vice versa)
sync: setup
	$(BIN)/jupytext --sync notebooks/*.md

sync-url: setup
	$(BIN)/python scripts/sync_repo_url.py

clean:
	rm -rf _build
