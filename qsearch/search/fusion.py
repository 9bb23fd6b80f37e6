"""Fusing the dense and BM25 scores of one candidate set into one score in [0, 1]. Pure functions.

- "tmm": a convex combination of scores normalised by their theoretical minimum (cosine -1,
  BM25 0) and the query's observed maximum (Bruch, Gai & Ingber, ACM TOIS 2023);
- "minmax": the same with the observed minimum instead;
- "rrf": reciprocal rank fusion (Cormack et al. 2009), divided by its largest possible
  value so that it too lies in [0, 1].
Every candidate carries both scores (the engine computes the one a ranking did not find),
so a convex combination never has to guess a missing value.
"""

from __future__ import annotations

import numpy as np

from ..config import FUSIONS

RRF_K = 60  # the constant of Cormack et al. (2009), used by most search engines
THEORETICAL_MIN = {"dense": -1.0, "lexical": 0.0}  # cosine similarity; BM25


def normalise(values: np.ndarray, method: str, floor: float) -> np.ndarray:
    """Scores onto [0, 1]: (s - low) / (max - low), low = `floor` ("tmm") or the observed
    minimum ("minmax")."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return values
    # tmm: the score's theoretical minimum (cosine -1, BM25 0), so the weakest candidate of a
    # strong query is not stretched to 0; minmax: the weakest candidate actually seen
    low = floor if method == "tmm" else values.min()
    span = values.max() - low  # the best candidate maps to 1
    # equal scores (or a single candidate) carry no ranking information: all 0
    return np.clip((values - low) / span, 0.0, 1.0) if span > 0 else np.zeros_like(values)


def convex(
    dense: np.ndarray, lexical: np.ndarray, dense_weight: float, method: str = "tmm"
) -> np.ndarray:
    """dense_weight x normalised cosine + (1 - dense_weight) x normalised BM25, per candidate."""
    return dense_weight * normalise(dense, method, THEORETICAL_MIN["dense"]) + (
        1 - dense_weight
    ) * normalise(lexical, method, THEORETICAL_MIN["lexical"])


def rrf(ranks: list[np.ndarray], k: int = RRF_K) -> np.ndarray:
    """Sum over rankings of 1 / (k + rank), rank from 1 (0 = not in that ranking), over its
    maximum."""
    total = np.zeros(len(ranks[0]) if ranks else 0)
    for r in ranks:
        r = np.asarray(r)
        total += np.where(r > 0, 1.0 / (k + np.maximum(r, 1)), 0.0)
    return total / (len(ranks) / (k + 1)) if ranks else total


def fuse(
    method: str,
    dense: np.ndarray,
    lexical: np.ndarray,
    dense_rank: np.ndarray,
    lexical_rank: np.ndarray,
    *,
    dense_weight: float = 0.5,
    rrf_k: int = RRF_K,
) -> np.ndarray:
    """The fused score of each candidate, in [0, 1]; higher is better. ("relevance" ranks by
    overall relevance instead: retrieval.pooled, not a fusion of ranks or scores.)"""
    fusions = tuple(f for f in FUSIONS if f != "relevance")
    if method not in fusions:
        raise ValueError(f"fusion must be one of {fusions}, got {method!r}")
    if method == "rrf":
        return rrf([dense_rank, lexical_rank], rrf_k)
    return convex(dense, lexical, dense_weight, method)
