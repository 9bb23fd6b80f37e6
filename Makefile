# Two commands on a fresh machine:  `make run`  and  `make test`.
# Each creates the virtual environment in .venv on first use (and again when a requirements file changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
CHROMIUM := /usr/bin/chromium

.PHONY: run cli test test-slow test-gpu check-platforms lint browser ocr clean

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

test-gpu: $(VENV)/.dev     ## the first run on a GPU: driver, CUDA, dtype, models on GPU vs CPU, FAISS GPU
	-nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
	$(BIN)/python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
	$(BIN)/python -m pytest -m gpu -rs -s $(PYTEST_ARGS) tests/test_gpu_cuda.py

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

lint: $(VENV)/.dev
	$(BIN)/ruff check qsearch app.py bench tests
	$(BIN)/ruff format --check qsearch app.py bench tests

clean:
	rm -rf $(VENV)
