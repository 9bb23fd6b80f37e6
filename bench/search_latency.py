"""Query latency, end to end: query embedding, FAISS search (exact and HNSW) at several collection
sizes, and reranking the top N. Synthetic unit vectors stand in for the collection (clustered,
as real embeddings are; uniform random vectors are a worst case no real corpus looks like);
queries are real (SciFact's) and really embedded. Percentiles over single queries, after a warm-up.
HNSW's recall is measured twice: on clusters seeded with the queries' own vectors (each query has
near neighbours: the easy case) and on clusters that owe nothing to the queries.
Instant repeats: `Engine.search`'s time for a query's first search and for its repeats (same
query; another k, mode or rerank setting), answered from the engine's cache.

    python bench/search_latency.py --sizes 10000,100000 --json
    python bench/search_latency.py --random-weights --device cuda \
        --sizes 10000,100000,1000000 --rerank --json
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
    rng: np.random.Generator, n: int, dim: int, centers: np.ndarray | None = None
) -> np.ndarray:
    """n unit vectors in 1,000 clusters. With `centers` (the queries' own vectors), they seed
    some of the clusters, so every query has a cluster of near neighbours around it: the
    easiest case for HNSW. Without, the queries fall between clusters as they please."""
    seeds = rng.standard_normal((1000, dim), dtype=np.float32)
    if centers is not None:
        seeds[: len(centers)] = centers[:1000] * np.sqrt(dim)
    data = (
        seeds[rng.integers(0, len(seeds), n)]
        + rng.standard_normal((n, dim), dtype=np.float32) * 0.8
    )
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def timed(fn, *args, **kwargs) -> tuple[float, object]:  # noqa: ANN001
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - started) * 1000, out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="embedding model, hub id or folder (default: bundled MiniLM)")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B architectures with random weights",
    )
    p.add_argument("--rerank-model", help="reranker, hub id or folder (with --rerank)")
    p.add_argument("--rerank", action="store_true", help="also time reranking --rerank-top")
    p.add_argument("--rerank-top", type=int, default=50)
    p.add_argument("--rerank-queries", type=int, default=20)
    p.add_argument("--data", type=Path, default=common.SHARED / "scifact-dev")
    p.add_argument("--sizes", default="10000,100000,1000000", help="collection sizes, a,b,c")
    p.add_argument("--hnsw-max", type=int, default=1_000_000, help="skip HNSW above this size")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--ef-search", type=int, default=128, help="HNSW search breadth")
    p.add_argument(
        "--repeat-chunks",
        type=int,
        default=2000,
        help="passages of the engine the repeated-query measurement searches (0: skip it)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def index_latency(args: argparse.Namespace, size: int, qv: np.ndarray, embed_ms: list) -> dict:
    """Exact and HNSW search over `size` clustered vectors seeded with the queries, and HNSW's
    recall on the same number of vectors whose clusters owe nothing to the queries."""
    from qsearch.store.vectors import DocInfo, VectorIndex
    from qsearch.types import Chunk

    rng, dim = np.random.default_rng(size), qv.shape[1]
    row: dict = {"size": size}
    for label, centers in (("", qv), ("_unseeded", None)):
        data = clustered_unit_vectors(rng, size, dim, centers)
        chunks = [Chunk("d", "synthetic", "", i, i) for i in range(size)]
        truth = None
        for kind in ("flat", "hnsw"):
            if kind == "hnsw" and size > args.hnsw_max:
                continue
            index = VectorIndex(dim, kind, ef_search=args.ef_search)
            build_ms, _ = timed(index.add, DocInfo("d", "synthetic", size), chunks, data)
            index.search(qv[:5], args.k)  # warm-up (and the GPU copy, where there is one)
            search_ms, found = [], []
            for i in range(len(qv)):
                ms, (_, rows) = timed(index.search, qv[i : i + 1], args.k)
                search_ms.append(ms)
                found.append(rows[0])
            stats = {**percentiles(search_ms), "build_s": build_ms / 1000}
            stats["end_to_end_p50_ms"] = float(np.percentile(np.add(search_ms, embed_ms), 50))
            if kind == "flat":
                truth = found
            else:
                stats["recall_at_10_vs_exact"] = float(
                    np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found)])
                )
            row[kind + label] = stats
            del index
    return row


def describe(row: dict) -> str:
    line = f"{row['size']:>9,} chunks: exact p50 {row['flat']['p50_ms']:.2f} ms"
    if "hnsw" in row:
        h, u = row["hnsw"], row["hnsw_unseeded"]
        line += (
            f"; HNSW p50 {h['p50_ms']:.2f} ms, recall@10 {h['recall_at_10_vs_exact']:.3f} "
            f"(seeded) {u['recall_at_10_vs_exact']:.3f} (unseeded), built in {h['build_s']:.0f} s"
        )
    return line


def count_calls(model, method: str) -> list[int]:  # noqa: ANN001
    """Wrap `model.method` (on the instance) to record the size of each call's batch."""
    sizes: list[int] = []
    inner = getattr(model, method)

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - encode(texts), score(q, texts)
        sizes.append(len(args[0] if method == "encode" else args[1]))
        return inner(*args, **kwargs)

    setattr(model, method, counted)
    return sizes


def repeat_latency(args: argparse.Namespace, embedder, queries: list[str], reranker) -> dict:  # noqa: ANN001
    """`Engine.search`'s time (the server's share of a request) for a query's first search, its
    exact repeat, and the same query with another k, mode or rerank setting (issue 26 item 4).

    The passages are real text (BM25 needs it); their vectors are clustered stand-ins, as in
    the index measurement: this times the pipeline, not the quality of its answers."""
    from qsearch import Engine, Settings
    from qsearch.store.vectors import DocInfo, VectorIndex
    from qsearch.types import Chunk

    texts = common.chunk_texts(args.data, embedder.tokenizer, limit=args.repeat_chunks)
    if not texts:
        texts = [f"passage {i} about topic {i % 50}" for i in range(args.repeat_chunks)]
    rng = np.random.default_rng(1)
    index = VectorIndex(embedder.dim)
    chunks = [Chunk(f"p{i}", f"p{i}", t, 0, len(t)) for i, t in enumerate(texts)]
    vectors = clustered_unit_vectors(rng, len(texts), embedder.dim)
    index.add(DocInfo("bench", "bench", len(chunks)), chunks, vectors)
    embedded = count_calls(embedder, "encode")
    scored = count_calls(reranker, "score") if reranker else []
    settings = Settings(embed_model=embedder.model_name)
    engine = Engine(settings, embedder=embedder, index=index, reranker=reranker)
    rerank = {"rerank": True, "rerank_candidates": args.rerank_top} if reranker else {}
    engine.search("warm-up query", k=args.k, **rerank)
    steps = {
        "first": {"k": args.k, **rerank},
        "repeat": {"k": args.k, **rerank},
        "other_k": {"k": max(1, args.k // 2), **rerank},
        "other_mode": {"k": args.k, "mode": "dense", **rerank},
        **({"rerank_off": {"k": args.k}} if reranker else {}),
    }
    ms: dict[str, list[float]] = {name: [] for name in steps}
    # per step, summed over the queries: embedder calls, passages sent to the reranker
    calls = {name: {"embedder": 0, "reranker": 0} for name in steps}
    for q in queries:
        for name, kwargs in steps.items():
            before = len(embedded), sum(scored)
            ms[name].append(timed(engine.search, q, **kwargs)[0])
            calls[name]["embedder"] += len(embedded) - before[0]
            calls[name]["reranker"] += sum(scored) - before[1]
    out = {name: percentiles(values) for name, values in ms.items()}
    for name in steps:
        if name != "first":
            out[name]["speedup_median"] = out["first"]["p50_ms"] / out[name]["p50_ms"]
            out[name]["speedup_fastest"] = min(ms["first"]) / min(ms[name])
    return {"passages": len(texts), "reranked": bool(reranker), "calls": calls, **out}


def main() -> None:
    args = parse_args()
    from qsearch.models import loading
    from qsearch.models.embedder import load_embedder

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
    queries, embed_ms, qv = embed_queries(args, embedder)
    report = {
        "benchmark": "search_latency",
        "model": common.model_label(args.model, folder),
        "dim": embedder.dim,
        "random_weights": args.random_weights,
        "k": args.k,
        "query_embedding": percentiles(embed_ms),
        "collections": [],
        "environment": {**common.environment(device), "cpu_model": cpu_model()},
    }
    for size in [int(s) for s in args.sizes.split(",") if s]:
        report["collections"].append(index_latency(args, size, qv, embed_ms))
        print(describe(report["collections"][-1]))
    reranker = load_rerank(args, tmp, device) if args.rerank else None
    if reranker is not None:
        report["rerank"] = rerank_latency(args, reranker, embedder.tokenizer, queries)
        print(f"rerank top {args.rerank_top}: p50 {report['rerank']['p50_ms']:.1f} ms")
    if args.repeat_chunks:
        report["repeats"] = r = repeat_latency(args, embedder, queries, reranker)
        print(
            f"Engine.search p50: first {r['first']['p50_ms']:.2f} ms, repeat "
            f"{r['repeat']['p50_ms']:.3f} ms ({r['repeat']['speedup_median']:.0f}x median, "
            f"{r['repeat']['speedup_fastest']:.0f}x fastest)"
        )
    print(
        f"query embedding: p50 {report['query_embedding']['p50_ms']:.2f} ms, "
        f"p95 {report['query_embedding']['p95_ms']:.2f} ms on {device}"
    )
    if args.random_weights:
        report["note"] = "random weights: latency is the real models', the results mean nothing"
    if args.json:
        print(json.dumps(report))


def embed_queries(args: argparse.Namespace, embedder) -> tuple[list[str], list[float], np.ndarray]:  # noqa: ANN001
    """The queries, each embedded alone (after a warm-up), with its time."""
    queries_file = args.data / "queries.jsonl"
    queries = (
        [json.loads(line)["text"] for line in open(queries_file)][: args.queries]
        if queries_file.is_file()
        else [f"what is known about topic number {i}?" for i in range(args.queries)]
    )
    for q in queries[:10]:
        embedder.encode([q], is_query=True)  # warm-up
    timings = [timed(embedder.encode, [q], is_query=True) for q in queries]
    return queries, [ms for ms, _ in timings], np.concatenate([v for _, v in timings])


def cpu_model() -> str:
    """The CPU's model name as lscpu shows it (from /proc/cpuinfo)."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def load_rerank(args: argparse.Namespace, tmp: Path, device: str):  # noqa: ANN201
    from qsearch.models.reranker import load_reranker

    folder = (
        common.random_qwen3(tmp / "qsearch-bench-qwen3-reranker-0.6b-random", reranker=True)
        if args.random_weights
        else args.rerank_model
    )
    if not folder:
        raise SystemExit("--rerank needs --rerank-model or --random-weights")
    return load_reranker(str(folder), device=device)


def rerank_latency(args: argparse.Namespace, reranker, tokenizer, queries: list[str]) -> dict:  # noqa: ANN001
    passages = (
        common.chunk_texts(args.data, tokenizer, limit=args.rerank_top * 4)
        if args.data.is_dir()
        else ["a passage of ordinary length " * 30] * (args.rerank_top * 4)
    )
    reranker.score(queries[0], passages[: args.rerank_top])  # warm-up
    rerank_ms = []
    for i, q in enumerate(queries[: args.rerank_queries]):
        start = (i * args.rerank_top) % max(len(passages) - args.rerank_top, 1)
        ms, _ = timed(reranker.score, q, passages[start : start + args.rerank_top])
        rerank_ms.append(ms)
    return {"top": args.rerank_top, "model": reranker.model_name, **percentiles(rerank_ms)}


if __name__ == "__main__":
    main()
