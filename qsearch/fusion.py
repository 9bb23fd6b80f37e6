"""Fusing rankings: reciprocal rank fusion (default) and weighted score fusion. Pure functions.

A ranking is (rows, scores), best first. Fusion returns (rows, fused scores), best first,
ties broken by the order in which rows were first seen, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import FUSIONS, SEARCH_MODES

RRF_K = 60  # the constant of Cormack et al. (2009), used by most search engines


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> tuple[list[int], list[float]]:
    """score(row) = sum over rankings of 1 / (k + rank), rank counted from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking, 1):
            scores[int(row)] = scores.get(int(row), 0.0) + 1.0 / (k + rank)
    return _sorted(scores)


def weighted(rankings: Sequence[tuple[Sequence[int], Sequence[float]]],
             weights: Sequence[float]) -> tuple[list[int], list[float]]:
    """sum of weight x min-max-normalised score; a row missing from a ranking scores 0 there."""
    if len(weights) != len(rankings):
        raise ValueError(f"need one weight per ranking: {len(rankings)} rankings, {len(weights)} weights")
    scores: dict[int, float] = {}
    for (rows, values), weight in zip(rankings, weights):
        values = np.asarray(values, dtype=np.float64)
        if not len(values):
            continue
        low, span = values.min(), values.max() - values.min()
        normalised = (values - low) / span if span > 0 else np.ones_like(values)
        for row, value in zip(rows, normalised):
            scores[int(row)] = scores.get(int(row), 0.0) + weight * float(value)
    return _sorted(scores)


def _sorted(scores: dict[int, float]) -> tuple[list[int], list[float]]:
    order = sorted(scores, key=lambda row: -scores[row])  # stable: first seen wins ties
    return order, [scores[row] for row in order]


def fuse(mode: str, dense: tuple[Sequence[int], Sequence[float]] | None,
         lexical: tuple[Sequence[int], Sequence[float]] | None, method: str = "rrf",
         dense_weight: float = 0.5) -> tuple[list[int], list[float]]:
    """The ranking of a search mode: one list as it is, or both fused by `method`."""
    if mode not in SEARCH_MODES:
        raise ValueError(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
    if method not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {method!r}")
    if mode != "hybrid":
        rows, scores = dense if mode == "dense" else lexical
        return [int(r) for r in rows], [float(s) for s in scores]
    if method == "rrf":
        return rrf([dense[0], lexical[0]])
    return weighted([dense, lexical], [dense_weight, 1 - dense_weight])
