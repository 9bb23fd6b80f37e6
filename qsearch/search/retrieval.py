"""The one retrieval pipeline: candidates from the dense and BM25 indexes, their score breakdown and
fusion, merging collections, reranking. `Engine.search`, `evaluate`, the app, the CLI and the
API all rank through `retrieve`, so a figure measured by `eval` is what users get.

Every candidate carries its full breakdown: the cosine similarity (computed from its stored
vector when the dense ranking did not find it), its BM25 score, the BM25 score over the
best any passage could reach for the query's terms (one 0..1 scale for every query), the
fused score in [0, 1] that ranks it, and, after reranking, P(relevant) and its old rank.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import DEFAULT_DENSE_WEIGHT, DEFAULT_FUSION, FUSIONS, SEARCH_MODES, Settings
from ..models.reranker import Reranker
from ..store.base import Collection
from ..types import Chunk, Hit, Hits
from .fusion import RRF_K, fuse

DEPTH = 100  # candidates each ranking contributes to fusion


@dataclass(frozen=True)
class Ranking:
    """How candidates are ranked: the search mode and, for hybrid, how scores are fused."""

    mode: str = "hybrid"
    fusion: str = DEFAULT_FUSION
    dense_weight: float = DEFAULT_DENSE_WEIGHT
    rrf_k: int = RRF_K
    depth: int = DEPTH

    def __post_init__(self) -> None:
        if self.mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")

    @classmethod
    def from_settings(cls, settings: Settings, mode: str | None = None) -> Ranking:
        return cls(
            mode or settings.search_mode, settings.fusion, settings.dense_weight, settings.rrf_k
        )


@dataclass(frozen=True)
class Candidate:
    """A chunk and its score breakdown, before reranking."""

    id: int
    chunk: Chunk
    score: float  # what ranks it: fused (hybrid), cosine (dense) or keywords (lexical)
    cosine: float | None
    bm25: float | None
    keywords: float | None  # bm25 / the best score the query's terms can reach here, in [0, 1]


def candidates(
    collection: Collection, query: str, vector: np.ndarray | None, n: int, ranking: Ranking
) -> list[Candidate]:
    """The `n` best candidates of one collection, best first, each with its full breakdown."""
    width = max(n, ranking.depth)
    dense_ids: list[int] = []
    cosine_of: dict[int, float] = {}
    if ranking.mode != "lexical":
        scores, ids = collection.search(vector[None, :], width)
        dense_ids = ids[0][ids[0] >= 0].tolist()
        cosine_of = dict(zip(dense_ids, scores[0][: len(dense_ids)].tolist()))
    keyword, lexical_ids, bound = None, [], 0.0
    if ranking.mode != "dense":
        keyword = collection.keyword_search(query, width)
        lexical_ids, bound = keyword.ids.tolist(), keyword.bound
    ids = list(dict.fromkeys(dense_ids + lexical_ids))  # first seen first: ties keep this order
    if not ids:
        return []
    if ranking.mode == "hybrid":
        missing = [i for i in ids if i not in cosine_of]
        if missing:
            cosine_of.update(zip(missing, (collection.vectors_of(missing) @ vector).tolist()))
    cosine = np.array([cosine_of.get(i, np.nan) for i in ids])
    bm25 = np.array(keyword.scores_of(ids) if keyword is not None else [0.0] * len(ids))
    keywords = bm25 / bound if bound > 0 else np.zeros(len(ids))
    if ranking.mode == "dense":
        score = cosine
    elif ranking.mode == "lexical":
        score = keywords
    else:
        score = fuse(
            ranking.fusion,
            cosine,
            bm25,
            _ranks(ids, dense_ids),
            _ranks(ids, lexical_ids),
            dense_weight=ranking.dense_weight,
            rrf_k=ranking.rrf_k,
        )
    order = np.argsort(-score, kind="stable")[:n]
    return [
        Candidate(
            ids[i],
            collection.chunks[ids[i]],
            float(score[i]),
            None if ranking.mode == "lexical" else float(cosine[i]),
            None if ranking.mode == "dense" else float(bm25[i]),
            None if ranking.mode == "dense" else float(keywords[i]),
        )
        for i in order
    ]


def _ranks(ids: list[int], ranking: list[int]) -> np.ndarray:
    """1-based rank of each id in `ranking`, 0 where it is absent."""
    position = {row: r for r, row in enumerate(ranking, 1)}
    return np.array([position.get(i, 0) for i in ids])


def retrieve(
    collections: Sequence[Collection],
    query: str,
    vector: np.ndarray | None,
    *,
    k: int,
    ranking: Ranking,
    reranker: Reranker | None = None,
    rerank_candidates: int = 0,
    instruction: str | None = None,
) -> Hits:
    """The k best chunks over `collections` (candidates merged by score), reranked when a reranker is given."""
    started = time.perf_counter()
    depth = max(k, rerank_candidates if reranker is not None else 0)
    pool = [
        c
        for coll in collections
        if len(coll)
        for c in candidates(coll, query, vector, depth, ranking)
    ]
    pool.sort(key=lambda c: -c.score)  # stable: within a collection, its own order holds
    pool = pool[:depth]
    timings = {"search_ms": 1000 * (time.perf_counter() - started)}
    ranked: list[tuple[Candidate, float | None, int]] = [
        (c, None, r) for r, c in enumerate(pool, 1)
    ]
    if reranker is not None and pool:
        started = time.perf_counter()
        head = ranked[:rerank_candidates]
        p = reranker.score(query, [c.chunk.text for c, _, _ in head], instruction=instruction)
        ranked = sorted(
            ((c, float(s), r) for (c, _, r), s in zip(head, p)), key=lambda t: (-t[1], t[2])
        )
        timings["rerank_ms"] = 1000 * (time.perf_counter() - started)
    hits = [
        _hit(rank, c, p, r if p is not None else None)
        for rank, (c, p, r) in enumerate(ranked[:k], 1)
    ]
    return Hits(hits, timings)


def _hit(rank: int, c: Candidate, rerank_score: float | None, retrieval_rank: int | None) -> Hit:
    ch = c.chunk
    return Hit(
        rank=rank,
        score=c.score,
        source=ch.source,
        page=ch.page,
        page_end=ch.page_end,
        text=ch.text,
        start=ch.start,
        end=ch.end,
        doc_id=ch.doc_id,
        rerank_score=rerank_score,
        dense_score=c.cosine,
        lexical_score=c.bm25,
        keyword_score=c.keywords,
        retrieval_rank=retrieval_rank,
        ocr=ch.ocr,
    )
