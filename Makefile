# cryolab: `make book` builds the site, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
EXECUTED := _build/executed
# Topaz-Denoise, the peer of chapter 05's denoisers, lives in an environment of its own (its
# dependencies differ from cryolab's); `make topaz` makes it, and every target below then finds
# it through CRYOLAB_TOPAZ_PYTHON (unless that is already set).
TOPAZ_VENV ?= .topaz
export CRYOLAB_TOPAZ_PYTHON ?= $(if $(wildcard $(TOPAZ_VENV)/.installed),$(abspath $(TOPAZ_VENV))/bin/python)

.PHONY: book test lint unit smoke site student bench clean topaz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first: a CPU build of a pinned version when the index has one (avoids pulling the CUDA
# wheels), else any torch>=2.4 (users with a GPU keep their own build).
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==$(TORCH_VERSION) \
		|| $(BIN)/pip install -q "torch>=2.4"
	$(BIN)/pip install -q -e ".[book,dev]"
	touch $@

install: $(VENV)/.installed

## make topaz: Topaz-Denoise (topaz-em 0.3.20, which needs setuptools<81 for pkg_resources and
## a torchvision matching its torch) in $(TOPAZ_VENV), a CPU build of torch where the index has
## one; chapter 05 and benchmarks/bench_topaz.py compare with it when it is there
$(TOPAZ_VENV)/.installed:
	$(PYTHON) -m venv $(TOPAZ_VENV)
	$(TOPAZ_VENV)/bin/pip install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu \
		|| $(TOPAZ_VENV)/bin/pip install -q torch torchvision
	$(TOPAZ_VENV)/bin/pip install -q "topaz-em==0.3.20" "setuptools<81"
	$(TOPAZ_VENV)/bin/python -c "import topaz.denoise"
	touch $@

topaz: $(TOPAZ_VENV)/.installed

## make book: run every notebook in the `book` profile, then build the HTML site in _build/html
## (JOBS=N notebooks at once, each on its share of the cores; default one per core)
book: $(VENV)/.installed
	$(BIN)/python book/execute.py --profile book --out $(EXECUTED) $(if $(JOBS),--jobs $(JOBS))
	$(MAKE) site

## make test: lint, unit tests, every notebook in the `smoke` profile, and a book build from them
## (tests/test_site.py builds the site from the smoke runs and opens every page in Chromium)
test: $(VENV)/.installed lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed
	$(BIN)/ruff check cryolab tests benchmarks data_manifest book notebooks

unit: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not notebook"

smoke: $(VENV)/.installed
	$(BIN)/python book/execute.py --profile smoke --out $(EXECUTED) $(if $(JOBS),--jobs $(JOBS))

# The site is built from a staging copy of the book pages and the *executed* notebooks;
# Sphinx warnings (broken references, missing figures) fail the build.
site: $(VENV)/.installed
	$(BIN)/python book/build_site.py --executed $(EXECUTED)

## make student: the notebooks for a course, exercise solutions removed, in _build/student
## (instructors keep the full notebooks in notebooks/; see book/setup.md)
student: $(VENV)/.installed
	$(BIN)/python book/student.py --out _build/student

bench: $(VENV)/.installed
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done
	$(BIN)/python benchmarks/report.py

clean:
	rm -rf _build results/*/smoke results/*/book
