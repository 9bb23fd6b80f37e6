"""Keyword coverage: how much of the query a passage holds, each word weighted by its rarity.

BM25 over its best reachable score reads one shared word of four as about half a match when
that word is rare; coverage reads it as the share it is. A query word counts once (`query_words`:
its terms in every language the collection holds), found when the passage holds any of its
terms, and weighs its IDF (Lucene's, as bm25s scores: log(1 + (N - df + 0.5) / (df + 0.5)));
a word no passage holds weighs the most (df 0), so a query of words the collection lacks
is barely covered by the one word it shares. Coverage is 0..1 and never relative to the other
passages found: 1 means every query word is in the passage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def idf(df: np.ndarray | Sequence[int], n: int) -> np.ndarray:
    """The IDF of terms found in `df` of `n` passages (Lucene's BM25 IDF, always > 0)."""
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n - df + 0.5) / (df + 0.5))


def weighted(found: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Coverage of each passage from `found` (words x passages, True where the passage holds the
    word) and each word's weight; zeros without words."""
    total = float(np.sum(weights))
    if not len(weights) or total <= 0:
        return np.zeros(found.shape[1] if found.ndim == 2 else 0)
    return np.asarray(weights, np.float64) @ found.astype(np.float64) / total
