# Build, test and set-up commands for dagr and its book.
#
#   make test   unit tests and every chapter under nbval (DAGR_PROFILE=ci)
#   make book   execute every chapter and build the HTML book (DAGR_PROFILE=book)
#
# Both create .venv and install requirements.txt on first use.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Written after a successful install; older than requirements.txt or
# pyproject.toml means the environment must be refreshed.
STAMP := $(VENV)/.installed

DAGR_PROFILE ?= book
export DAGR_PROFILE

# jupyter-cache keys each notebook on its code cells only. `make book` also
# keys the whole cache on the profile, the requirements and every file under
# dagr/, benchmarks/ and results/ (the stored runs that chapters reload), and
# clears it when any of them changed. The key is written again after the
# build, because executing a chapter may store new runs in results/.
CACHE := _build/.jupyter_cache
CACHE_KEY := _build/.cache-key
CACHE_INPUTS = requirements.txt pyproject.toml $$(find $$(ls -d dagr benchmarks results 2>/dev/null) -type f -not -path '*/__pycache__/*' | sort)
COMPUTE_KEY = echo "profile=$(DAGR_PROFILE) $$(cat $(CACHE_INPUTS) | sha256sum | cut -c1-16)"

# Jupyter looks up kernels in the environment before the user's directories.
export JUPYTER_PREFER_ENV_PATH := 1

# pip on some machines prints one "Location ... is ignored" warning per
# configured local index and package. The filter drops only those lines, and
# pipefail keeps pip's exit status.
PIP_NOISE := ^WARNING: Location '.*' is ignored

.PHONY: help venv test book clean

help:
	@echo "make test   run tests/ and every notebook under nbval (DAGR_PROFILE=ci)"
	@echo "make book   execute the notebooks and build _build/html (DAGR_PROFILE=$(DAGR_PROFILE))"
	@echo "make venv   create .venv and install requirements.txt (both targets do this first)"
	@echo "make clean  remove _build"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || { echo "Creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "Installing requirements.txt into $(VENV) (takes a few minutes the first time)"
	$(PY) -m pip install --quiet -r requirements.txt 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@# Register this environment's kernel as "python3" inside the venv, so
	@# notebooks run with the venv's interpreter and its editable dagr.
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	$(PY) -c "import dagr, torch, jupyter_book, jupytext, nbval; print('dagr', dagr.__version__, 'torch', torch.__version__)"
	@touch $@

test: $(STAMP)
	@start=$$SECONDS; \
	mkdir -p _build; \
	notebooks_dir=$$(mktemp -d "$$PWD/_build/nbval.XXXXXX"); \
	trap 'rm -rf "$$notebooks_dir"' EXIT; \
	shopt -s nullglob; \
	for source in notebooks/*.md; do \
		name=$$(basename "$$source" .md); \
		$(VENV)/bin/jupytext --quiet --to ipynb --output "$$notebooks_dir/$$name.ipynb" "$$source"; \
	done; \
	notebooks=("$$notebooks_dir"/*.ipynb); \
	echo "Running tests/ and $${#notebooks[@]} notebook(s) with DAGR_PROFILE=ci"; \
	DAGR_PROFILE=ci $(PY) -m pytest -p no:cacheprovider \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
		tests "$${notebooks[@]}"; \
	echo "make test took $$((SECONDS - start)) s"

book: $(STAMP)
	@start=$$SECONDS; \
	key=$$($(COMPUTE_KEY)); \
	if [ -d $(CACHE) ] && [ "$$(cat $(CACHE_KEY) 2>/dev/null)" != "$$key" ]; then \
		echo "Clearing $(CACHE): the profile, the requirements, dagr/, benchmarks/ or results/ changed"; \
		rm -rf $(CACHE); \
	fi; \
	mkdir -p _build; \
	echo "$$key" > $(CACHE_KEY); \
	echo "Building the book with DAGR_PROFILE=$(DAGR_PROFILE)"; \
	DAGR_BUILDING_BOOK=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going; \
	$(COMPUTE_KEY) > $(CACHE_KEY); \
	echo "make book took $$((SECONDS - start)) s"; \
	echo "Book: $$(pwd)/_build/html/index.html"

clean:
	rm -rf _build
