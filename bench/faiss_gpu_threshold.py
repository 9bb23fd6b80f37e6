"""Where FAISS on the GPU starts to pay: exact (flat) search on the CPU against the GPU copy,
through qsearch's own path (store/gpu.py), at growing collection sizes, side by side.

For each size: the first GPU search (the copy is made: what a change costs), then single
queries (the app's case) and batches of 32 (an evaluation's case), median ms. The size
where the GPU's single-query median beats the CPU's is the threshold to set
(QSEARCH_FAISS_GPU_MIN_VECTORS; default 200,000 until measured).

    python bench/faiss_gpu_threshold.py --sizes 10000,50000,200000,1000000 --dim 1024 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import common
import numpy as np

from qsearch.store import gpu
from qsearch.store.vectors import DocInfo, VectorIndex
from qsearch.types import Chunk


def filled(n: int, dim: int, rng: np.random.Generator) -> VectorIndex:
    index = VectorIndex(dim)
    for start in range(0, n, 100_000):  # documents of up to 100k chunks
        rows = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        chunks = [Chunk(f"d{start}", "x", "", i, i) for i in range(len(rows))]
        index.add(DocInfo(f"d{start}", "x", len(rows)), chunks, rows)
    return index


def median_ms(index: VectorIndex, queries: np.ndarray, batch: int, k: int, allowed: bool) -> float:
    times = []
    for i in range(0, len(queries) - batch + 1, batch):
        started = time.perf_counter()
        gpu.search(index._cpu, queries[i : i + batch], k, index._gpu, allowed=allowed)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,50000,200000,1000000")
    p.add_argument("--dim", type=int, default=1024, help="Qwen3-Embedding-0.6B: 1024")
    p.add_argument("--queries", type=int, default=256)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    gpu.configure("cuda", min_vectors=1)
    if gpu.gpu_device() is None:
        raise SystemExit("no GPU that FAISS can use here (faiss-gpu, Linux x86_64, CUDA)")
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        index = filled(n, args.dim, rng)
        started = time.perf_counter()
        gpu.search(index._cpu, queries[:1], args.k, index._gpu, allowed=True)  # makes the copy
        row = {"size": n, "first_gpu_search_ms": round((time.perf_counter() - started) * 1000)}
        for batch in (1, 32):
            for where, allowed in (("cpu", False), ("gpu", True)):
                row[f"{where}_batch{batch}_ms"] = median_ms(index, queries, batch, args.k, allowed)
        row["gpu_failed"] = index._gpu.failed
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"benchmark": "faiss_gpu_threshold", "rows": rows, **common.environment("cuda")}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
