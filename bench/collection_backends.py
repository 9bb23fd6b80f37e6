"""The folder index (FAISS) against Milvus Lite, on the same synthetic vectors: build time, search
latency (p50/p95 over single queries) and recall@10 against exact brute force. Milvus Lite is the
embedded, single-process Milvus: it shows the code path and its cost, not a cluster's throughput.

    python bench/collection_backends.py --sizes 10000,100000 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import common
import numpy as np


def documents(n: int, dim: int, per_doc: int = 100, seed: int = 0):  # noqa: ANN201
    from qsearch.store.base import DocInfo
    from qsearch.types import Chunk

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for d, start in enumerate(range(0, n, per_doc)):
        doc_id = hashlib.sha256(f"document {d}".encode()).hexdigest()  # as qsearch names documents
        rows = range(start, min(start + per_doc, n))
        chunks = [Chunk(doc_id, f"f{d}.txt", f"chunk {i} of document {d}", 0, 1) for i in rows]
        yield (
            DocInfo(doc_id, f"f{d}.txt", len(chunks)),
            chunks,
            vectors[start : start + len(chunks)],
        )


def measure(index, n: int, dim: int, queries: np.ndarray, durable, k: int = 10) -> dict:  # noqa: ANN001
    """Build `index` from n vectors (`durable` makes it durable: a Milvus flush), then search it."""
    started = time.perf_counter()
    all_vectors = []
    for doc, chunks, vectors in documents(n, dim):
        index.add(doc, chunks, vectors)
        all_vectors.append(vectors)
    durable(index)
    build_s = time.perf_counter() - started
    truth = np.argsort(-(queries @ np.vstack(all_vectors).T), axis=1)[:, :k]
    text_of = {}
    latencies, recalls = [], []
    for q, query in enumerate(queries):
        started = time.perf_counter()
        _, ids = index.search(query[None, :], k)
        latencies.append(1000 * (time.perf_counter() - started))
        found = {index.chunks[int(i)].text for i in ids[0] if i >= 0}
        expected = {text_of.setdefault(r, f"chunk {r} of document {r // 100}") for r in truth[q]}
        recalls.append(len(found & expected) / k)
    return {
        "build_s": build_s,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "recall_at_10_vs_exact": float(np.mean(recalls)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from qsearch.store.milvus import MilvusIndex, connect
    from qsearch.store.vectors import VectorIndex

    rng = np.random.default_rng(1)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows = []
    for n in map(int, args.sizes.split(",")):
        folder = measure(VectorIndex(args.dim), n, args.dim, queries, lambda index: None)
        uri = str(Path(tempfile.mkdtemp()) / "bench.db")
        milvus_index = MilvusIndex(connect(uri), f"bench{n}", uri=uri, dim=args.dim)
        milvus = measure(milvus_index, n, args.dim, queries, lambda index: index.save())
        rows.append({"size": n, "faiss_folder_flat": folder, "milvus_lite_flat": milvus})
        print(
            f"{n:>8} chunks  FAISS build {folder['build_s']:.1f} s, p50 {folder['p50_ms']:.2f} ms, "
            f"recall {folder['recall_at_10_vs_exact']:.3f} | Milvus Lite build "
            f"{milvus['build_s']:.1f} s, p50 {milvus['p50_ms']:.2f} ms, p95 "
            f"{milvus['p95_ms']:.2f} ms, recall {milvus['recall_at_10_vs_exact']:.3f}"
        )
    report = {
        "benchmark": "collection_backends",
        "dim": args.dim,
        "queries": args.queries,
        "collections": rows,
        "note": "Milvus Lite is embedded and single-process: not a cluster",
        "environment": common.environment("cpu"),
    }
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
