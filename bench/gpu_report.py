"""The GPU figures in one command (`make gpu-report`): `make test-gpu`, then the GPU benchmarks,
each result as JSON under bench/results/ with the GPU, driver, CUDA and versions.

Steps (STEPS), one after another, each under its own time limit and all within --budget seconds
(default 510: the lent machines stop a command at 10 minutes):
  tests        make test-gpu (tests/test_gpu_cuda.py): driver, CUDA, dtype, models on GPU vs CPU
  embed-bf16   ingest tokens/s against sentence-transformers, bf16 (2,000 SciFact chunks); the
               GPU memory (and the process's RSS) of each model in that precision, after loading
               and at its peak (`gpu_memory`: the embedder's ingest, the reranker's rerank)
  embed-fp16   the same in fp16
  search       query embedding + exact search at 1M vectors, rerank of the top 50
  faiss        where FAISS on the GPU starts to pay (needs faiss-gpu; skipped with a note else)
Without CUDA it says so in one line and exits 0. The results are named after the GPU
(`gpu-embed-throughput-bf16-qwen3-0.6b-random-nvidia-h200.json`, ...); gpu-report-<gpu>.json
says what ran, how long each step took and why any did not.

    make gpu-report                      # the venv's python, or: make gpu-report PYTHON_BIN=python3
    python bench/gpu_report.py --plan    # the steps and their commands, nothing run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
EMBED = ["--random-weights", "--device", "cuda", "--limit", "2000", "--rounds", "3", "--json"]
NEEDED = ("pydantic", "bm25s", "Stemmer", "faiss", "sentence_transformers", "tiktoken", "pytest")
# name: (command after the python, result file stem, time limit in s, what it takes on an H100)
STEPS = {
    "tests": (["make", "test-gpu", "PYTEST_ARGS=--junitxml={junit}"], "gpu-tests", 150, 60),
    "embed-bf16": (
        ["bench/embed_throughput.py", *EMBED, "--dtype", "bfloat16"],
        "gpu-embed-throughput-bf16-qwen3-0.6b-random",
        180,
        110,
    ),
    "embed-fp16": (
        ["bench/embed_throughput.py", *EMBED, "--dtype", "float16"],
        "gpu-embed-throughput-fp16-qwen3-0.6b-random",
        150,
        80,
    ),
    "search": (
        ["bench/search_latency.py", "--random-weights", "--device", "cuda", "--sizes",
         "1000000", "--hnsw-max", "0", "--queries", "200", "--rerank", "--rerank-queries", "20",
         "--json"],
        "gpu-search-latency-qwen3-0.6b-random",
        210,
        140,
    ),
    "faiss": (
        ["bench/faiss_gpu_threshold.py", "--sizes", "10000,50000,200000,1000000", "--dim",
         "1024", "--json"],
        "gpu-faiss-threshold",
        150,
        90,
    ),
}  # fmt: skip


def gpu_slug() -> str | None:
    """'nvidia-h200' for the first CUDA GPU, None without one (or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")


def command(name: str, python: str, junit: Path) -> list[str]:
    """The step's command line: a script under `python`, or make with PYTHON_BIN=`python` (the
    tests: pytest itself where there is no make)."""
    args = [a.format(junit=junit) for a in STEPS[name][0]]
    if args[0] != "make":
        return [python, *args]
    if shutil.which("make") is None:
        return [python, "-m", "pytest", "-m", "gpu", "-rs", f"--junitxml={junit}",
                "tests/test_gpu_cuda.py"]  # fmt: skip
    return [*args, f"PYTHON_BIN={python}"]


def missing() -> list[str]:
    """The modules the steps import that this Python lacks (a GPU image's own Python may)."""
    return [m for m in NEEDED if importlib.util.find_spec(m) is None]


def run_step(name: str, python: str, slug: str, limit: float) -> dict:
    """Run one step; its JSON (the last line of a benchmark, or the tests' counts) goes to
    bench/results/<stem>-<gpu>.json. Returns what happened."""
    stem = STEPS[name][1]
    junit = Path("/tmp") / f"qsearch-gpu-tests-{slug}.xml"
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command(name, python, junit), cwd=ROOT, capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        return {"step": name, "status": "timed out", "seconds": round(limit)}
    seconds = round(time.perf_counter() - started, 1)
    tail = (done.stdout + done.stderr)[-1500:]
    if name == "tests":
        result = {"benchmark": "gpu_tests", **junit_counts(junit), "output_tail": tail}
    elif done.returncode != 0:
        status = "skipped" if "no GPU that FAISS can use" in tail else "failed"
        return {"step": name, "status": status, "seconds": seconds, "output_tail": tail}
    else:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    path = RESULTS / f"{stem}-{slug}.json"
    path.write_text(json.dumps({**result, "gpu_report": {"step": name, "seconds": seconds}}))
    status = "passed" if done.returncode == 0 else "failed"
    return {"step": name, "status": status, "seconds": seconds, "file": path.name}


def junit_counts(junit: Path) -> dict:
    """pytest's counts from its JUnit XML (tests, failures, errors, skipped)."""
    import xml.etree.ElementTree as ET

    if not junit.is_file():
        return {"tests": 0, "note": "pytest wrote no report"}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=list(STEPS), default=list(STEPS))
    p.add_argument("--budget", type=float, default=510, help="seconds for all steps together")
    p.add_argument("--plan", action="store_true", help="print the steps and exit")
    args = p.parse_args()
    if args.plan:
        for name in args.only:
            line = " ".join(command(name, sys.executable, Path("/tmp/junit.xml")))
            print(json.dumps({"step": name, "command": line, "h100_s": STEPS[name][3]}))
        return
    slug = gpu_slug()
    if slug is None:
        print("gpu-report: no CUDA GPU here (torch sees none): nothing to measure")
        return
    if missing():
        sys.exit(
            f"gpu-report: this Python ({sys.executable}) lacks {', '.join(missing())}: on a "
            "machine without network, carry the wheels `make gpu-carry` downloads (.whl/) and "
            "install them first (bench/results/README.md, GPU commands)"
        )
    from common import SHARED, environment  # imports torch: only once a GPU is there

    if not (SHARED / "scifact-dev").is_dir():
        sys.exit(
            f"gpu-report: no SciFact data at {SHARED}: `make gpu-carry` copies it to .devdata/"
        )

    begun, report = time.perf_counter(), []
    for name in args.only:
        left = args.budget - (time.perf_counter() - begun)
        if left < 30:
            report.append({"step": name, "status": "not run: the budget was spent"})
            continue
        report.append(run_step(name, sys.executable, slug, min(STEPS[name][2], left)))
        print(json.dumps(report[-1])[:300], flush=True)
    summary = {"benchmark": "gpu_report", "steps": report, "environment": environment("cuda")}
    (RESULTS / f"gpu-report-{slug}.json").write_text(json.dumps(summary))
    sys.exit(0 if all(s["status"] in ("passed", "skipped") for s in report) else 1)


if __name__ == "__main__":
    main()
