# Two commands on a fresh machine:  `make run`  and  `make test`.
# Each creates the virtual environment in .venv on first use (and again when a requirements file changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
CHROMIUM := /usr/bin/chromium
# The GPU targets run on the venv's python, made on first use; PYTHON_BIN=python3 runs them on the
# system's python instead, with no venv (a GPU image brings its own CUDA torch and has no network)
ifeq ($(origin PYTHON_BIN),undefined)
PYTHON_BIN := $(BIN)/python
GPU_SETUP := $(VENV)/.dev
endif

.PHONY: run cli test test-slow test-gpu gpu-report gpu-carry check-platforms lint browser ocr clean docs wheelhouse

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

ocr:                       # Tesseract reads scanned pages and images; without it, OCR is off (the rest runs)
	@command -v tesseract >/dev/null || (command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null) || \
		echo "note: Tesseract is not installed, so scanned pages and images will not be read." \
		"Install it with: brew install tesseract (macOS), sudo apt-get install tesseract-ocr" \
		"(Debian, Ubuntu), winget install UB-Mannheim.TesseractOCR (Windows); then run again."

test-slow: $(VENV)/.dev ocr ## the slow tests: real data from ../shared when present
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-gpu: $(GPU_SETUP)     ## the first run on a GPU: driver, CUDA, dtype, models on GPU vs CPU, FAISS GPU
	-nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
	$(PYTHON_BIN) -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
	$(PYTHON_BIN) -m pytest -m gpu -rs -s $(PYTEST_ARGS) tests/test_gpu_cuda.py

gpu-report: $(GPU_SETUP)   ## on a CUDA GPU: test-gpu, then the GPU benchmarks (~8 min), JSON in bench/results/
	$(PYTHON_BIN) bench/gpu_report.py $(ARGS)

gpu-carry:                 ## here, for a lent GPU machine: the wheels its image lacks (.whl/), ../shared's data (.devdata/)
	rm -rf .whl && $(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: \
		--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl -r bench/gpu_wheels.txt
	mkdir -p .devdata && cp -r ../shared/data/tokenizer ../shared/data/scifact-dev .devdata/ && chmod -R u+w .devdata

check-platforms: $(VENV)/.dev ## requirements resolve on macOS arm64, Linux x86_64/aarch64, Windows
	$(BIN)/python -m pytest -m slow -q $(PYTEST_ARGS) tests/test_platforms.py

$(VENV)/.app: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.app requirements-dev.txt requirements-milvus.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@# Linux x86_64: Milvus Lite on faiss-gpu's `faiss`, without the faiss-cpu it asks for
	@[ "$$(uname -s)/$$(uname -m)" != Linux/x86_64 ] || \
		$(BIN)/python -m pip install --quiet --no-deps "milvus-lite>=2.5"
	touch $@

docs: $(VENV)/.dev         ## serve the documentation site at http://127.0.0.1:8000 (mkdocs, live reload)
	$(BIN)/mkdocs serve

wheelhouse:                ## online, for a machine without network: every wheel `make run` needs, in wheelhouse/
	$(PYTHON) -m pip download --quiet -d wheelhouse -r requirements.txt "setuptools>=77" wheel
	$(PYTHON) -m pip wheel --quiet --no-deps -w wheelhouse .

lint: $(VENV)/.dev
	$(BIN)/ruff check qsearch app.py bench tests
	$(BIN)/ruff format --check qsearch app.py bench tests

clean:
	rm -rf $(VENV)
