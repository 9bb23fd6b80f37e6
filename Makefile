# Two commands on a fresh machine:  `make run`  and  `make test`.
# Each creates the virtual environment in .venv on first use (and again when a requirements file changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
CHROMIUM := /usr/bin/chromium

.PHONY: run cli test test-slow test-gpu lint browser ocr clean

run: $(VENV)/.app ocr      ## set up, then start the web app: make run ARGS='--share --index DIR'
	$(BIN)/python app.py $(ARGS)

cli: $(VENV)/.app          ## the command line: make cli ARGS='search --index DIR "query"'
	$(BIN)/python -m qsearch $(ARGS)

test: $(VENV)/.dev browser ocr ## set up, then run the fast tests (no GPU, no model hub needed)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

browser:                   # Debian's Chromium for the browser test; without it that test skips
	@test -x $(CHROMIUM) || (command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "note: chromium could not be installed; the browser test will skip"

ocr:                       # Debian's Tesseract reads scanned pages and images; without it, OCR is off
	@command -v tesseract >/dev/null || (command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null) || \
		echo "note: tesseract-ocr could not be installed; scanned pages and images will not be read"

test-slow: $(VENV)/.dev ocr ## the slow tests: real data from ../shared when present
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-gpu: $(VENV)/.dev     ## the GPU tests (skip without CUDA)
	$(BIN)/python -m pytest -m gpu $(PYTEST_ARGS)

$(VENV)/.app: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.app requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

lint: $(VENV)/.dev
	$(BIN)/ruff check qsearch app.py bench tests
	$(BIN)/ruff format --check qsearch app.py bench tests

clean:
	rm -rf $(VENV)
