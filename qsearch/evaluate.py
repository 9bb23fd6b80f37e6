"""Retrieval quality on BEIR-format data: loading, the standard metrics, and a full run.

Metrics follow BEIR / pytrec_eval: nDCG@10 with linear gains, Recall@100, MRR@10; a
query's own id is never counted as a result (BEIR's ignore_identical_ids).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embed import Embedder
from .index import DocInfo, IndexFolderError, VectorIndex
from .rerank import Reranker
from .types import Chunk


@dataclass
class BeirData:
    corpus_ids: list[str]
    corpus_texts: list[str]  # title + " " + text, as BEIR embeds them
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}
    fingerprint: str  # identifies the corpus, for the embedding cache


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv; only queries judged in SPLIT are kept."""
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: not a BEIR folder, or no {split!r} split")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows, None)
        if header and header[-1].strip().lstrip("-").isdigit():  # no header line
            rows = iter([header, *rows])
        for row in rows:
            if len(row) >= 3 and int(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    digest = hashlib.sha256()
    corpus_ids, corpus_texts = [], []
    with open(folder / "corpus.jsonl", "rb") as f:
        for line in f:
            digest.update(line)
            if line.strip():
                doc = json.loads(line)
                corpus_ids.append(str(doc["_id"]))
                corpus_texts.append(f"{doc.get('title') or ''} {doc.get('text') or ''}".strip())
    query_ids, query_texts = [], []
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                if str(q["_id"]) in qrels:
                    query_ids.append(str(q["_id"]))
                    query_texts.append(q["text"])
    return BeirData(corpus_ids, corpus_texts, query_ids, query_texts, qrels, digest.hexdigest()[:16])


def metrics(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries in `run`."""
    ndcg, recall, mrr = [], [], []
    for qid, ranked in run.items():
        relevant = qrels.get(qid, {})
        if not relevant:
            continue
        ranked = [d for d in ranked if d != qid]
        dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
        ideal = sum(r / math.log2(i + 2) for i, r in enumerate(sorted(relevant.values(), reverse=True)[:10]))
        ndcg.append(dcg / ideal)
        recall.append(len(set(ranked[:100]) & set(relevant)) / len(relevant))
        mrr.append(next((1 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0))
    n = len(ndcg)
    return {"ndcg_at_10": sum(ndcg) / n if n else 0.0, "recall_at_100": sum(recall) / n if n else 0.0,
            "mrr_at_10": sum(mrr) / n if n else 0.0}


def corpus_index(data: BeirData, embedder: Embedder, cache: str | Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[VectorIndex, float | None]:
    """The corpus embedded into an exact index, from `cache` when it holds this corpus and model.

    Returns (index, documents per second), the rate None when the cache was used.
    """
    meta = {"embed_model": embedder.model_name, "corpus": data.fingerprint}
    if cache is not None and (Path(cache) / "CURRENT").is_file():
        try:
            index = VectorIndex.load(cache)
            if index.meta.get("corpus") == data.fingerprint and index.dim == embedder.dim:
                index.check_model(embedder.model_name, embedder.dim, cache)
                return index, None
        except IndexFolderError:
            pass  # another model or corpus, or damaged: embed again and overwrite
    started = time.perf_counter()
    vectors = embedder.encode(data.corpus_texts, progress=progress)
    rate = len(data.corpus_texts) / max(time.perf_counter() - started, 1e-9)
    index = VectorIndex(embedder.dim, "flat", meta=meta)
    chunks = [Chunk(doc_id=i, source=i, text=t, start=0, end=len(t)) for i, t in
              zip(data.corpus_ids, data.corpus_texts)]
    index.add(DocInfo(f"beir-{data.fingerprint}", "corpus", len(chunks)), chunks, vectors)
    if cache is not None:
        index.save(cache)
    return index, rate


def run_eval(data: BeirData, embedder: Embedder, *, reranker: Reranker | None = None,
             rerank_candidates: int = 100, instruction: str | None = None, cache: str | Path | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, float | int | None]:
    """Embed the corpus, search every query (top 100), optionally rerank; return the metrics."""
    report = (lambda stage: (lambda done, total: progress(stage, done, total))) if progress else (lambda _: None)
    index, docs_per_s = corpus_index(data, embedder, cache, report("embedding corpus"))
    started = time.perf_counter()
    queries = embedder.encode(data.query_texts, is_query=True, instruction=instruction)
    _, rows = index.search(queries, 100)
    run: dict[str, list[str]] = {}
    for n, (qid, text, row) in enumerate(zip(data.query_ids, data.query_texts, rows), 1):
        ranked = [index.chunks[r] for r in row if r >= 0]
        if reranker is not None and ranked:
            head = ranked[:rerank_candidates]
            scores = reranker.score(text, [c.text for c in head], instruction=instruction)
            ranked = [head[i] for i in np.argsort(-scores, kind="stable")] + ranked[rerank_candidates:]
            if progress:
                progress("reranking", n, len(data.query_ids))
        run[qid] = [c.doc_id for c in ranked]
    query_seconds = time.perf_counter() - started
    return {**metrics(run, data.qrels), "docs_per_s": docs_per_s,
            "ms_per_query": 1000 * query_seconds / max(len(data.query_ids), 1),
            "n_queries": len(data.query_ids), "n_docs": len(data.corpus_ids)}
