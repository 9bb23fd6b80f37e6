"""Search within chosen documents on the folder collection: filtering before ranking (a FAISS ID
selector, bm25s' weight mask) beside the unfiltered search and beside filtering afterwards (the
top `depth` of the whole collection, then only the chosen documents' chunks), side by side in one
run on one synthetic collection: milliseconds per query (median) and how many of the k results
come back (filtering afterwards comes up short when the chosen documents rank low).

    python bench/search_within.py --chunks 100000 --dim 384 --docs 1000 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import common
import numpy as np


def _median_ms(run, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - started))
    return round(statistics.median(times), 3)


def build(chunks: int, dim: int, docs: int):  # noqa: ANN201 - (index, doc ids)
    from qsearch.store.base import DocInfo
    from qsearch.store.vectors import VectorIndex
    from qsearch.types import Chunk

    rng = np.random.default_rng(0)
    index = VectorIndex(dim, meta={"embed_model": "bench/model"})
    per_doc = chunks // docs
    ids = []
    for d in range(docs):
        doc_id = f"{d:064x}"
        vectors = rng.standard_normal((per_doc, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        words = [f"term{rng.integers(0, 5000)} common word{d % 50}" for _ in range(per_doc)]
        rows = [Chunk(doc_id, f"file{d}.txt", w, i, i + 1) for i, w in enumerate(words)]
        index.add(DocInfo(doc_id, f"file{d}.txt", per_doc), rows, vectors)
        ids.append(doc_id)
    return index, ids


def measure(chunks: int, dim: int, docs: int, k: int, depth: int, repeats: int) -> list[dict]:
    index, ids = build(chunks, dim, docs)
    query = np.random.default_rng(1).standard_normal((1, dim)).astype(np.float32)
    query /= np.linalg.norm(query)
    results = []
    for share in (0.001, 0.01, 0.1):
        chosen = set(ids[: max(1, int(share * docs))])
        allowed = set(index.ids_within(chosen).tolist())

        def after(allowed: set[int] = allowed) -> list[int]:
            _, found = index.search(query, depth)
            return [i for i in found[0].tolist() if i in allowed][:k]

        got_after = len(after())
        got_before = int((index.search(query, k, chosen)[1] >= 0).sum())
        keywords_before = len(index.keyword_search("common", k, chosen).ids)
        results.append(
            {
                "chosen_docs": len(chosen),
                "chosen_chunks": len(allowed),
                "k": k,
                "dense_ms_unfiltered": _median_ms(lambda: index.search(query, k), repeats),
                "dense_ms_filtered_before": _median_ms(
                    lambda chosen=chosen: index.search(query, k, chosen), repeats
                ),
                "dense_ms_filtered_after": _median_ms(after, repeats),
                "dense_results_before": got_before,
                "dense_results_after": got_after,
                "bm25_ms_unfiltered": _median_ms(
                    lambda: index.keyword_search("common", k), repeats
                ),
                "bm25_ms_filtered_before": _median_ms(
                    lambda chosen=chosen: index.keyword_search("common", k, chosen), repeats
                ),
                "bm25_results_before": keywords_before,
            }
        )
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--docs", type=int, default=1000)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--depth", type=int, default=100, help="filtering afterwards: top this many")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    report = {
        "benchmark": "search_within",
        "collection": {"chunks": args.chunks, "dim": args.dim, "docs": args.docs},
        "results": measure(args.chunks, args.dim, args.docs, args.k, args.depth, args.repeats),
        "environment": common.environment("cpu"),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
