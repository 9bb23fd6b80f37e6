"""Query latency, end to end: query embedding, FAISS search (exact and HNSW) at several collection
sizes, and reranking the top N. Synthetic unit vectors stand in for the collection (clustered,
as real embeddings are; uniform random vectors are a worst case no real corpus looks like);
queries are real (SciFact's) and really embedded. Percentiles over single queries, after a warm-up.

    python bench/search_latency.py --sizes 10000,100000 --json
    python bench/search_latency.py --random-weights --device cuda --sizes 10000,100000,1000000 --rerank --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import common
import numpy as np


def percentiles(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "n": len(ms),
    }


def clustered_unit_vectors(
    rng: np.random.Generator, n: int, dim: int, centers: np.ndarray
) -> np.ndarray:
    """n unit vectors in 1,000 clusters; the queries' own vectors seed some of the clusters."""
    seeds = rng.standard_normal((1000, dim), dtype=np.float32)
    seeds[: len(centers)] = centers[:1000] * np.sqrt(dim)
    data = (
        seeds[rng.integers(0, len(seeds), n)]
        + rng.standard_normal((n, dim), dtype=np.float32) * 0.8
    )
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def timed(fn, *args) -> tuple[float, object]:  # noqa: ANN001
    started = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - started) * 1000, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", help="embedding model, hub id or folder (default: the bundled all-MiniLM-L6-v2)"
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B architectures with random weights",
    )
    p.add_argument("--rerank-model", help="reranker, hub id or folder (with --rerank)")
    p.add_argument(
        "--rerank", action="store_true", help="also time reranking the top --rerank-top chunks"
    )
    p.add_argument("--rerank-top", type=int, default=50)
    p.add_argument("--rerank-queries", type=int, default=20)
    p.add_argument("--data", type=Path, default=common.SHARED / "scifact-dev")
    p.add_argument(
        "--sizes", default="10000,100000,1000000", help="collection sizes, comma-separated"
    )
    p.add_argument(
        "--hnsw-max",
        type=int,
        default=1_000_000,
        help="skip HNSW above this size (its build is slow)",
    )
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--ef-search", type=int, default=128, help="HNSW search breadth")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from qsearch.models import loading
    from qsearch.models.embedder import load_embedder
    from qsearch.store.vectors import DocInfo, VectorIndex
    from qsearch.types import Chunk

    tmp = Path(tempfile.gettempdir())
    folder = (
        common.random_qwen3(tmp / "qsearch-bench-qwen3-embedding-0.6b-random")
        if args.random_weights
        else Path(args.model)
        if args.model
        else loading.bundled_small_model()
    )
    device = loading.pick_device(args.device)
    embedder = load_embedder(str(folder), device=device)
    queries_file = args.data / "queries.jsonl"
    queries = (
        [json.loads(line)["text"] for line in open(queries_file)][: args.queries]
        if queries_file.is_file()
        else [f"what is known about topic number {i}?" for i in range(args.queries)]
    )
    for q in queries[:10]:
        embedder.encode([q], is_query=True)  # warm-up
    embed_ms, vectors = [], []
    for q in queries:
        ms, v = timed(lambda text: embedder.encode([text], is_query=True), q)
        embed_ms.append(ms)
        vectors.append(v)
    qv = np.concatenate(vectors)
    report = {
        "benchmark": "search_latency",
        "model": common.model_label(args.model, folder),
        "dim": embedder.dim,
        "random_weights": args.random_weights,
        "k": args.k,
        "query_embedding": percentiles(embed_ms),
        "collections": [],
        "environment": common.environment(device),
    }

    rng = np.random.default_rng(0)
    for size in [int(s) for s in args.sizes.split(",")]:
        data = clustered_unit_vectors(rng, size, embedder.dim, centers=qv)
        chunks = [Chunk("d", "synthetic", "", i, i) for i in range(size)]
        row: dict = {"size": size}
        truth = None
        for kind in ("flat", "hnsw"):
            if kind == "hnsw" and size > args.hnsw_max:
                continue
            index = VectorIndex(embedder.dim, kind, ef_search=args.ef_search)
            build_ms, _ = timed(index.add, DocInfo("d", "synthetic", size), chunks, data)
            index.search(qv[:5], args.k)  # warm-up (and the GPU copy, where there is one)
            search_ms, found = [], []
            for i in range(len(qv)):
                ms, (_, rows) = timed(index.search, qv[i : i + 1], args.k)
                search_ms.append(ms)
                found.append(rows[0])
            stats = {
                **percentiles(search_ms),
                "build_s": build_ms / 1000,
                "end_to_end_p50_ms": float(
                    np.percentile(np.asarray(search_ms) + np.asarray(embed_ms), 50)
                ),
            }
            if kind == "flat":
                truth = found
            else:
                stats["recall_at_10_vs_exact"] = float(
                    np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found)])
                )
            row[kind] = stats
            del index
        report["collections"].append(row)
        print(
            f"{size:>9,} chunks: exact p50 {row['flat']['p50_ms']:.2f} ms (end to end "
            f"{row['flat']['end_to_end_p50_ms']:.1f} ms)"
            + (
                f"; HNSW p50 {row['hnsw']['p50_ms']:.2f} ms, recall@10 {row['hnsw']['recall_at_10_vs_exact']:.3f}, "
                f"built in {row['hnsw']['build_s']:.0f} s"
                if "hnsw" in row
                else ""
            )
        )

    if args.rerank:
        from qsearch.models.reranker import load_reranker

        rerank_folder = (
            common.random_qwen3(tmp / "qsearch-bench-qwen3-reranker-0.6b-random", reranker=True)
            if args.random_weights
            else args.rerank_model
        )
        if not rerank_folder:
            raise SystemExit("--rerank needs --rerank-model or --random-weights")
        reranker = load_reranker(str(rerank_folder), device=device)
        passages = (
            common.chunk_texts(args.data, embedder.tokenizer, limit=args.rerank_top * 4)
            if args.data.is_dir()
            else ["a passage of ordinary length " * 30] * (args.rerank_top * 4)
        )
        reranker.score(queries[0], passages[: args.rerank_top])  # warm-up
        rerank_ms = []
        for i, q in enumerate(queries[: args.rerank_queries]):
            start = (i * args.rerank_top) % max(len(passages) - args.rerank_top, 1)
            ms, _ = timed(reranker.score, q, passages[start : start + args.rerank_top])
            rerank_ms.append(ms)
        report["rerank"] = {
            "top": args.rerank_top,
            "model": str(rerank_folder),
            **percentiles(rerank_ms),
        }
        print(f"rerank top {args.rerank_top}: p50 {report['rerank']['p50_ms']:.1f} ms")
    print(
        f"query embedding: p50 {report['query_embedding']['p50_ms']:.2f} ms, "
        f"p95 {report['query_embedding']['p95_ms']:.2f} ms on {device}"
    )
    if args.random_weights:
        report["note"] = "random weights: latency is the real models', the results mean nothing"
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
