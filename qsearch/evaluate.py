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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .embed import Embedder
from .fusion import fuse
from .index import DocInfo, IndexFolderError, VectorIndex
from .lexical import LexicalIndex
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


@dataclass(frozen=True)
class Config:
    """One retrieval configuration to measure."""

    mode: str = "dense"  # "dense", "lexical" or "hybrid"
    fusion: str = "rrf"
    dim: int | None = None  # MRL: first `dim` dimensions of the shared embeddings, renormalised
    dense_weight: float = 0.5

    @property
    def name(self) -> str:
        name = self.mode if self.mode != "hybrid" else f"hybrid-{self.fusion}"
        return f"{name}@{self.dim}" if self.dim and self.mode != "lexical" else name


def run_eval(data: BeirData, embedder: Embedder, *, config: Config = Config(), reranker: Reranker | None = None,
             rerank_candidates: int = 100, instruction: str | None = None, cache: str | Path | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, float | int | None]:
    """Embed the corpus, search every query (top 100), optionally rerank; return the metrics."""
    return compare(data, embedder, [config], reranker=reranker, rerank_candidates=rerank_candidates,
                   instruction=instruction, cache=cache, progress=progress)[0]


def compare(data: BeirData, embedder: Embedder, configs: Sequence[Config], *, reranker: Reranker | None = None,
            rerank_candidates: int = 100, instruction: str | None = None, cache: str | Path | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> list[dict[str, Any]]:
    """Measure several configurations over one shared embedding pass (corpus and queries)."""
    report = (lambda stage: (lambda done, total: progress(stage, done, total))) if progress else (lambda _: None)
    needs_dense = any(c.mode != "lexical" for c in configs)
    index, docs_per_s, queries, query_s = None, None, None, 0.0
    if needs_dense:
        index, docs_per_s = corpus_index(data, embedder, cache, report("embedding corpus"))
        started = time.perf_counter()
        queries = embedder.encode(data.query_texts, is_query=True, instruction=instruction)
        query_s = time.perf_counter() - started
    lexical = None
    if any(c.mode != "dense" for c in configs):
        lexical = LexicalIndex()
        lexical.build(data.corpus_texts)
    results = []
    for config in configs:
        started = time.perf_counter()
        dense_index, dense_queries = _at_dim(index, queries, config.dim) if config.mode != "lexical" else (None, None)
        if dense_index is not None:
            dense_scores, dense_rows = dense_index.search(dense_queries, 100)
        run: dict[str, list[str]] = {}
        for n, (qid, text) in enumerate(zip(data.query_ids, data.query_texts)):
            dense = (dense_rows[n], dense_scores[n]) if dense_index is not None else None
            lex = None
            if config.mode != "dense":
                lex_scores, lex_rows = lexical.search(text, 100)
                lex = (lex_rows, lex_scores)
            rows, _ = fuse(config.mode, dense, lex, config.fusion, config.dense_weight)
            ranked = [data.corpus_ids[r] for r in rows[:100]]
            if reranker is not None and ranked:
                head = rows[:rerank_candidates]
                scores = reranker.score(text, [data.corpus_texts[r] for r in head], instruction=instruction)
                ranked = [data.corpus_ids[head[i]] for i in np.argsort(-scores, kind="stable")] + \
                    ranked[rerank_candidates:]
                report(f"reranking ({config.name})")(n + 1, len(data.query_ids))
            run[qid] = ranked
        seconds = time.perf_counter() - started + (query_s if config.mode != "lexical" else 0.0)
        size = (len(data.corpus_ids) * (config.dim or embedder.dim) * 4 if config.mode != "lexical" else 0) + \
            (lexical.nbytes if config.mode != "dense" else 0)
        results.append({"config": config.name, **metrics(run, data.qrels),
                        "docs_per_s": docs_per_s if config.mode != "lexical" else None,
                        "ms_per_query": 1000 * seconds / max(len(data.query_ids), 1), "index_bytes": size,
                        "n_queries": len(data.query_ids), "n_docs": len(data.corpus_ids)})
    return results


def _at_dim(index: VectorIndex, queries: np.ndarray, dim: int | None) -> tuple[VectorIndex, np.ndarray]:
    """The index and queries cut to the first `dim` dimensions and renormalised (MRL)."""
    if dim is None or dim == index.dim:
        return index, queries
    if not 1 <= dim <= index.dim:
        raise ValueError(f"dimension must be in 1..{index.dim}, got {dim}")

    def cut(v: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(v[:, :dim])
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    small = VectorIndex(dim)
    small.add(DocInfo("mrl", "corpus", len(index)), index.chunks, cut(index.vectors()))
    return small, cut(queries)
