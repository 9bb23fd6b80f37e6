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

from .config import DEFAULT_DENSE_WEIGHT, DEFAULT_FUSION, Settings
from .engine import Engine
from .models.embedder import Embedder
from .models.reranker import Reranker
from .search.relevance import Scale, measure_anchors
from .search.retrieval import Ranking, retrieve
from .store.vectors import DocInfo, IndexFolderError, VectorIndex
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
    return BeirData(
        corpus_ids, corpus_texts, query_ids, query_texts, qrels, digest.hexdigest()[:16]
    )


def metrics(
    run: dict[str, list[str]], qrels: dict[str, dict[str, int]], recall_at: int = 100
) -> dict[str, float]:
    """Mean nDCG@10, Recall@`recall_at` and MRR@10 over the judged queries in `run`."""
    ndcg, recall, mrr = [], [], []
    for qid, ranked in run.items():
        relevant = qrels.get(qid, {})
        if not relevant:
            continue
        ranked = [d for d in ranked if d != qid]
        dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
        ideal = sum(
            r / math.log2(i + 2) for i, r in enumerate(sorted(relevant.values(), reverse=True)[:10])
        )
        ndcg.append(dcg / ideal)
        recall.append(len(set(ranked[:recall_at]) & set(relevant)) / len(relevant))
        mrr.append(next((1 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0))
    n = len(ndcg)
    return {
        "ndcg_at_10": sum(ndcg) / n if n else 0.0,
        f"recall_at_{recall_at}": sum(recall) / n if n else 0.0,
        "mrr_at_10": sum(mrr) / n if n else 0.0,
    }


def corpus_index(
    data: BeirData,
    embedder: Embedder,
    cache: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[VectorIndex, float | None]:
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
    chunks = [
        Chunk(doc_id=i, source=i, text=t, start=0, end=len(t))
        for i, t in zip(data.corpus_ids, data.corpus_texts)
    ]
    index.add(DocInfo(f"beir-{data.fingerprint}", "corpus", len(chunks)), chunks, vectors)
    if cache is not None:
        index.save(cache)
    return index, rate


@dataclass(frozen=True)
class Config:
    """One retrieval configuration to measure: a Ranking, and optionally an MRL dimension."""

    mode: str = "hybrid"  # "dense", "lexical" or "hybrid"
    fusion: str = DEFAULT_FUSION
    dim: int | None = None  # MRL: first `dim` dimensions of the shared embeddings, renormalised
    dense_weight: float = DEFAULT_DENSE_WEIGHT
    rrf_k: int = 60

    @classmethod
    def from_settings(
        cls, settings: Settings, mode: str | None = None, dim: int | None = None
    ) -> Config:
        r = Ranking.from_settings(settings, mode)
        return cls(r.mode, r.fusion, dim, r.dense_weight, r.rrf_k)

    @property
    def ranking(self) -> Ranking:
        return Ranking(self.mode, self.fusion, self.dense_weight, self.rrf_k)

    @property
    def name(self) -> str:
        if self.mode != "hybrid":
            name = self.mode
        elif self.fusion in ("rrf", "relevance"):
            name = f"hybrid-rrf(k={self.rrf_k})" if self.fusion == "rrf" else "hybrid-relevance"
        else:
            name = f"hybrid-{self.fusion}(w={self.dense_weight:g})"
        return f"{name}@{self.dim}" if self.dim and self.mode != "lexical" else name


def sweep(settings: Settings) -> list[Config]:
    """The fusion comparison of the README's Quality section: RRF over k, both convex fusions over
    the weight."""
    configs = [Config("dense"), Config("lexical"), Config("hybrid", "relevance")]
    configs += [Config("hybrid", "rrf", rrf_k=k) for k in (10, 30, 60, 100)]
    weights = [round(0.1 * i, 1) for i in range(1, 10)]
    configs += [Config("hybrid", f, dense_weight=w) for f in ("minmax", "tmm") for w in weights]
    return configs


def compare(
    data: BeirData,
    embedder: Embedder,
    configs: Sequence[Config],
    *,
    settings: Settings | None = None,
    reranker: Reranker | None = None,
    rerank_candidates: int = 100,
    instruction: str | None = None,
    cache: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure configurations over one shared embedding pass (corpus and queries), each ranked by
    `retrieval.retrieve`: the very code `Engine.search` runs."""

    def report(stage: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(stage, done, total)) if progress else None

    settings = settings or Settings()
    index, docs_per_s = corpus_index(data, embedder, cache, report("embedding corpus"))
    started = time.perf_counter()
    dense = any(c.mode != "lexical" for c in configs)
    queries = (
        embedder.encode(data.query_texts, is_query=True, instruction=instruction) if dense else None
    )
    query_s = time.perf_counter() - started
    results, engines = [], {}  # engines: per dimension, with the scale Engine.search uses
    for config in configs:
        dim = config.dim if config.mode != "lexical" else None
        if dim not in engines:
            engines[dim] = _engine_at(index, dim, settings, embedder, instruction, dense)
        (engine, scale), vectors = engines[dim], _cut(queries, dim) if queries is not None else None
        started = time.perf_counter()
        run = rank_queries(
            data,
            engine,
            vectors,
            config.ranking,
            reranker=reranker,
            rerank_candidates=rerank_candidates,
            instruction=instruction,
            progress=report(f"reranking ({config.name})") if reranker is not None else None,
            scale=scale,
        )
        seconds = time.perf_counter() - started + (query_s if config.mode != "lexical" else 0.0)
        size = (
            len(data.corpus_ids) * (dim or embedder.dim) * 4 if config.mode != "lexical" else 0
        ) + (engine.index.lexical.nbytes if config.mode != "dense" else 0)
        results.append(
            {
                "config": config.name,
                **metrics(run, data.qrels),
                "docs_per_s": docs_per_s if config.mode != "lexical" else None,
                "ms_per_query": 1000 * seconds / max(len(data.query_ids), 1),
                "index_bytes": size,
                "n_queries": len(data.query_ids),
                "n_docs": len(data.corpus_ids),
            }
        )
    return results


def rank_queries(
    data: BeirData,
    engine: Engine,
    vectors: np.ndarray | None,
    ranking: Ranking,
    *,
    reranker: Reranker | None = None,
    rerank_candidates: int = 100,
    instruction: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    scale: Scale | None = None,
) -> dict[str, list[str]]:
    """Query id -> the top 100 document ids, ranked by `retrieve` exactly as `Engine.search`
    ranks (`scale`: the embedder's relevance anchors, as Engine.search measures them)."""
    run: dict[str, list[str]] = {}
    for n, (qid, text) in enumerate(zip(data.query_ids, data.query_texts)):
        hits = retrieve(
            [engine.index],
            text,
            None if vectors is None else vectors[n],
            k=100,
            ranking=ranking,
            reranker=reranker,
            rerank_candidates=rerank_candidates,
            instruction=instruction,
            scale=scale,
        )
        run[qid] = list(dict.fromkeys(h.doc_id for h in hits))  # a document at its best chunk
        if progress is not None:
            progress(n + 1, len(data.query_ids))
    return run


def _engine_at(index: VectorIndex, dim: int | None, settings: Settings, embedder: Embedder,
               instruction: str | None, dense: bool) -> tuple[Engine, Scale]:  # fmt: skip
    """An engine over `index` cut to `dim`, with the relevance scale Engine.search uses there."""
    anchors = measure_anchors(embedder, instruction, dim) if dense else None
    return Engine(settings, embedder=embedder, index=_at_dim(index, dim)), Scale(anchors)


def _cut(vectors: np.ndarray, dim: int | None) -> np.ndarray:
    """The first `dim` dimensions, renormalised (MRL); all of them when dim is None."""
    if dim is None or dim == vectors.shape[1]:
        return vectors
    v = np.ascontiguousarray(vectors[:, :dim])
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _at_dim(index: VectorIndex, dim: int | None) -> VectorIndex:
    """The index cut to the first `dim` dimensions (MRL); the index itself when dim is None."""
    if dim is None or dim == index.dim:
        return index
    if not 1 <= dim <= index.dim:
        raise ValueError(f"dimension must be in 1..{index.dim}, got {dim}")
    small = VectorIndex(dim, meta=index.meta)
    chunks = list(index.chunks.values())
    small.add(DocInfo("mrl", "corpus", len(chunks)), chunks, _cut(index.vectors(), dim))
    return small
