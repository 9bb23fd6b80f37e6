"""The one retrieval pipeline: candidates from the dense and BM25 indexes, their score breakdown and
fusion, merging collections, reranking. `Engine.search`, `evaluate`, the app, the CLI and the
API all rank through `retrieve`, so a figure measured by `eval` is what users get.

Every candidate carries its full breakdown: the cosine similarity (computed from its stored
vector when the dense ranking did not find it), its BM25 score, its keyword coverage (the
IDF-weighted share of the query's words it holds), the fused score that ranks it, its overall
relevance (relevance.py: an absolute estimate, never relative to the other candidates), and,
after reranking, P(relevant) and its old rank. Whether a hit is weak (below the minimum
relevance) is decided once, by strength.is_weak.
"""

from __future__ import annotations

import time
from collections.abc import Sequence, Set
from dataclasses import dataclass

import numpy as np

from ..config import DEFAULT_DENSE_WEIGHT, DEFAULT_FUSION, FUSIONS, SEARCH_MODES, Settings
from ..models.reranker import Reranker
from ..store.base import Collection
from ..types import Chunk, Hit, Hits
from .cache import SearchCache
from .fusion import RRF_K, fuse
from .relevance import Scale, with_rerank
from .strength import DEFAULT_MIN_SCORE, check_min_score, is_weak

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
    score: float  # what ranks it: fused (hybrid), cosine (dense) or bm25 / bound (lexical)
    cosine: float | None
    bm25: float | None
    keywords: float | None  # bm25 / the best score the query's terms can reach here, in [0, 1]
    coverage: float | None = None  # IDF-weighted share of the query's words it holds, 0..1
    relevance: float = 0.0  # overall: P(relevant) from the evidence (relevance.py), 0..1


@dataclass
class Found:
    """One collection's candidates (the union of its dense and BM25 top lists), unscored."""

    collection: Collection
    ids: list[int]  # dense ranking first, then the BM25 ranking's new ids
    cosine: np.ndarray  # NaN where not computed (lexical mode)
    bm25: np.ndarray  # zeros in dense mode
    keywords: np.ndarray  # bm25 / this collection's bound for the query: one 0..1 scale
    coverage: np.ndarray | None = None  # keyword coverage (store/coverage.py); None in dense mode


def gather(
    collection: Collection,
    query: str,
    vector: np.ndarray | None,
    width: int,
    mode: str,
    within: Set[str] | None = None,
) -> Found:
    """The `width` best of each ranking of one collection, with every candidate's raw scores;
    `within` (doc ids) narrows both rankings before they rank (None: every document)."""
    dense_ids: list[int] = []
    cosine_of: dict[int, float] = {}
    if mode != "lexical":
        scores, ids = collection.search(vector[None, :], width, within)
        dense_ids = ids[0][ids[0] >= 0].tolist()
        cosine_of = dict(zip(dense_ids, scores[0][: len(dense_ids)].tolist()))
    keyword, lexical_ids, bound = None, [], 0.0
    if mode != "dense":
        keyword = collection.keyword_search(query, width, within)
        lexical_ids, bound = keyword.ids.tolist(), keyword.bound
    ids = list(dict.fromkeys(dense_ids + lexical_ids))  # first seen first: ties keep this order
    if mode == "hybrid":
        missing = [i for i in ids if i not in cosine_of]
        if missing:
            cosine_of.update(zip(missing, (collection.vectors_of(missing) @ vector).tolist()))
    cosine = np.array([cosine_of.get(i, np.nan) for i in ids], dtype=np.float64)
    bm25 = np.array(keyword.scores_of(ids) if keyword is not None else [0.0] * len(ids))
    keywords = bm25 / bound if bound > 0 else np.zeros(len(ids))
    coverage = None if mode == "dense" else collection.keyword_coverage(query, ids, keyword)
    return Found(collection, ids, cosine, bm25, keywords, coverage)


def pooled(
    found: Sequence[Found], n: int, ranking: Ranking, scale: Scale | None = None
) -> list[Candidate]:
    """The `n` best candidates of all collections, scored once over the pool, best first.

    Pooling before scoring keeps every collection on one scale: cosines are comparable (one
    embedder), and the fusion normalises over the whole pool, not per collection, so a
    collection's weakest passage can't inherit another's full marks. The keyword side is the
    per-collection keyword score (BM25 / the best score the query's terms can reach in that
    collection), not raw BM25: raw scores of two collections carry different IDFs (a small
    session collection inflates them), whereas the keyword score is on one 0..1 scale
    everywhere. Fusion is monotone in both cosine and keyword score, so a candidate that
    beats another on both never ranks below it; ties fall back to cosine, then keywords.
    With one collection, keyword score is BM25 times a constant, so rankings are unchanged.
    Each candidate's overall relevance comes from `scale` (relevance.py) and its own evidence;
    the default hybrid ranking ("relevance") is by it: monotone in cosine and coverage, and
    absolute, so pooling collections changes no candidate's score.
    """
    if not found:
        return []
    cosine = np.concatenate([f.cosine for f in found])
    bm25 = np.concatenate([f.bm25 for f in found])
    keywords = np.concatenate([f.keywords for f in found])
    dense, lexical = ranking.mode == "dense", ranking.mode == "lexical"
    coverage = None if dense else np.concatenate([_covered(f) for f in found])
    relevance = (scale or Scale()).overall(ranking.mode, None if lexical else cosine, coverage)
    if ranking.mode == "dense":
        score = cosine
    elif ranking.mode == "lexical":
        score = keywords
    elif ranking.fusion == "relevance":  # monotone in cosine and coverage
        score = relevance
    else:
        width = max(n, ranking.depth)
        score = fuse(
            ranking.fusion,
            cosine,
            keywords,
            _ranks(cosine, width),
            _ranks(np.where(keywords > 0, keywords, np.nan), width),
            dense_weight=ranking.dense_weight,
            rrf_k=ranking.rrf_k,
        )
    tiebreak = np.nan_to_num(cosine, nan=-2.0), keywords
    order = np.lexsort((-tiebreak[1], -tiebreak[0], -score))[:n]  # last key sorts first
    rows = [(f, i) for f in found for i in f.ids]
    return [
        Candidate(
            rows[j][1],
            rows[j][0].collection.chunks[rows[j][1]],
            float(score[j]),
            None if lexical else float(cosine[j]),
            None if dense else float(bm25[j]),
            None if dense else float(keywords[j]),
            None if coverage is None else float(coverage[j]),
            float(relevance[j]),
        )
        for j in order
    ]


def _covered(found: Found) -> np.ndarray:
    return found.coverage if found.coverage is not None else np.zeros(len(found.ids))


def candidates(
    collection: Collection,
    query: str,
    vector: np.ndarray | None,
    n: int,
    ranking: Ranking,
    scale: Scale | None = None,
) -> list[Candidate]:
    """The `n` best candidates of one collection, best first, each with its full breakdown."""
    width = max(n, ranking.depth)
    return pooled([gather(collection, query, vector, width, ranking.mode)], n, ranking, scale)


def _ranks(values: np.ndarray, width: int) -> np.ndarray:
    """1-based rank of each value among `values` (best first, ties in order), 0 past `width`
    or where NaN (not in that ranking)."""
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(1, len(values) + 1)
    return np.where(np.isnan(values) | (ranks > width), 0, ranks)


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
    cache: SearchCache | None = None,
    within: Sequence[Set[str] | None] | None = None,
    scale: Scale | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
) -> Hits:
    """The k best chunks over `collections` (candidates pooled, then scored once), reranked when a
    reranker is given. With a `cache`, a repeat reuses the candidates and the reranker's scores.
    `within`: for each collection, the doc ids it may answer with (None: all of them).
    `scale` places the embedder's cosines (relevance.py: Engine.search measures it; without it,
    a cautious default that reads no cosine as a strong match); a hit whose overall relevance
    is below `min_score` is weak (strength.is_weak)."""
    started, min_score = time.perf_counter(), check_min_score(min_score)
    depth = max(k, rerank_candidates if reranker is not None else 0)
    width = max(depth, ranking.depth)
    scopes = list(within) if within is not None else [None] * len(collections)
    live = [(c, s) for c, s in zip(collections, scopes) if len(c) and (s is None or s)]

    def pool() -> list[Candidate]:
        found = [gather(c, query, vector, width, ranking.mode, s) for c, s in live]
        return pooled(found, width, ranking, scale)

    if cache is not None:
        scope = tuple(None if s is None else frozenset(s) for _, s in live)
        found = cache.candidates(
            [c for c, _ in live], query, vector, (ranking, scale), width, pool, scope
        )
    else:
        found = pool()
    found = found[:depth]
    timings = {"search_ms": 1000 * (time.perf_counter() - started)}
    ranked: list[tuple[Candidate, float | None, int]] = [
        (c, None, r) for r, c in enumerate(found, 1)
    ]
    if reranker is not None and found:
        started = time.perf_counter()
        head = ranked[:rerank_candidates]
        texts = [c.chunk.text for c, _, _ in head]
        if cache is not None:
            p = cache.rerank_scores(reranker, query, texts, instruction)
        else:
            p = reranker.score(query, texts, instruction=instruction)
        ranked = sorted(
            ((c, float(s), r) for (c, _, r), s in zip(head, p)), key=lambda t: (-t[1], t[2])
        )
        timings["rerank_ms"] = 1000 * (time.perf_counter() - started)
    hits = [
        _hit(rank, c, p, r if p is not None else None, min_score)
        for rank, (c, p, r) in enumerate(ranked[:k], 1)
    ]
    return Hits(hits, timings, min_score=min_score)


def _hit(
    rank: int,
    c: Candidate,
    rerank_score: float | None,
    retrieval_rank: int | None,
    min_score: float,
) -> Hit:
    ch = c.chunk
    overall = c.relevance
    if rerank_score is not None:
        overall = float(with_rerank([c.relevance], [rerank_score])[0])
    return Hit(
        rank=rank,
        score=overall,
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
        keyword_score=c.coverage,
        retrieval_rank=retrieval_rank,
        ocr=ch.ocr,
        weak=is_weak(overall, min_score),
        where=ch.where,
    )
