"""LexicalIndex: BM25 (bm25s) over the same chunk rows as the dense index, for exact terms.

Dense embeddings miss rare words, names, codes and numbers; BM25 finds them. Each chunk is
analysed in its own language (analysis.py: detected, then that language's stemmer and stop
words; CJK runs as characters plus bigrams), and a query in every language its collection
holds, so a mixed-language collection finds each passage by the terms of its language.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np

from ..types import Chunk
from .analysis import (
    DEFAULT_LANGUAGE,
    DETECT_CONFIDENCE,
    analysis_key,
    analyzer,
    detect,
    query_terms,
    query_words,
    term_spans,
    tokenize,
)
from .base import NO_KEYWORDS, KeywordHits
from .coverage import idf, weighted

__all__ = ["LexicalIndex", "query_terms", "term_spans", "tokenize"]


class LexicalIndex:
    """BM25 over texts that each carry an id (the dense index's chunk ids), rebuilt on change.

    bm25s has no incremental update, so the index is rebuilt from the chunk rows, once per
    batch of changes (lazily, at the next search), reusing the tokens of texts seen before.
    """

    def __init__(self, language: str | None = None) -> None:
        """`language`: one analysis for every text and query (a code, e.g. "en": qsearch's
        analysis before it detected languages); None: each text's and query's own."""
        self.language = language
        start = analysis_key(language or DEFAULT_LANGUAGE)
        self.languages: list[str] = [start]  # the collection's languages, most common first
        self._bm25 = None
        self._ids = np.zeros(0, np.int64)
        self._row_of: dict[int, int] = {}
        self._term_max = np.zeros(0, np.float32)  # per vocabulary term: its best BM25 contribution
        # text -> (its language, its tokens): a rebuild analyses only new texts (and those whose
        # language was unclear, when the collection's most common language changed)
        self._tokens: dict[str, tuple[str, list[str]]] = {}
        self._detected: dict[str, tuple[str, float]] = {}  # text -> (language, probability)
        self._built_at = -1  # the chunks' change counter when built (keep_up)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def build(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        """Index `texts`, text i under id `ids[i]`, each analysed in its language."""
        import bm25s

        chosen = self._languages_of(texts)
        tokens = []
        for text, language in zip(texts, chosen):
            known = self._tokens.get(text)
            if known is None or known[0] != language:
                known = self._tokens[text] = (language, analyzer(language).terms(text))
            tokens.append(known[1])
        self._tokens = {t: self._tokens[t] for t in texts}  # forget removed texts
        self._ids = np.asarray(ids, dtype=np.int64)
        self._row_of = {int(i): row for row, i in enumerate(ids)}
        self._bm25 = None
        if len(texts):
            self._bm25 = bm25s.BM25()
            self._bm25.index(tokens, show_progress=False)
            data, indptr = self._bm25.scores["data"], self._bm25.scores["indptr"]
            self._term_max = np.zeros(len(indptr) - 1, np.float32)
            filled = indptr[1:] > indptr[:-1]
            if filled.any():
                self._term_max[filled] = np.maximum.reduceat(data, indptr[:-1][filled])

    def _languages_of(self, texts: Sequence[str]) -> list[str]:
        """Each text's analysis: its detected language where the detector is sure, else the most
        common sure one (English without any); sets `languages`, most common first."""
        if self.language is not None:
            return [analysis_key(self.language)] * len(texts)
        seen = self._detected
        found = [seen[t] if t in seen else detect(t) for t in texts]
        self._detected = dict(zip(texts, found))  # detected once per text, removed ones forgotten
        sure = [analysis_key(lang) if p >= DETECT_CONFIDENCE else None for lang, p in found]
        counts = Counter(x for x in sure if x is not None)
        common = counts.most_common(1)[0][0] if counts else analysis_key(DEFAULT_LANGUAGE)
        chosen = [x if x is not None else common for x in sure]
        self.languages = [x for x, _ in Counter(chosen).most_common()] or [common]
        return chosen

    def keep_up(self, changes: int, chunks: Mapping[int, Chunk]) -> None:
        """Rebuild from `chunks` if they changed since the last build (`changes`: their counter)."""
        with self._lock:
            if self._built_at != changes:
                ids = list(chunks)
                self.build(ids, [chunks[i].text for i in ids])
                self._built_at = changes

    def hits(self, query: str, k: int, allowed: np.ndarray | None = None) -> KeywordHits:
        """The k best texts for `query`, with every text's score, its keyword coverage and the
        scale's upper bound; with `allowed` (ids), only those texts score (the others are
        masked out)."""
        scores, ids, every = self.search(query, k, self.mask(allowed))
        if not len(ids):  # no text holds a query term: nothing is covered either
            return replace(NO_KEYWORDS, coverage={})
        covered = _RowScores(self._row_of, self.coverage(query))
        return KeywordHits(
            ids, scores, self.upper_bound(query), _RowScores(self._row_of, every), covered
        )

    def coverage(self, query: str) -> np.ndarray:
        """Each indexed text's keyword coverage of `query` (coverage.py), row i = ids[i]: the
        query's words found in it, weighted by IDF, from the index's postings."""
        n = len(self._ids)
        if self._bm25 is None or not n:
            return np.zeros(n)
        if self.language is not None:  # one analysis for all, as `query_terms` does
            words = query_words(query, [self.language], own=self.language)
        else:
            words = query_words(query, self.languages)
        vocab, data = self._bm25.vocab_dict, self._bm25.scores
        indptr, rows = data["indptr"], data["indices"]
        found = np.zeros((len(words), n), dtype=bool)
        weights = np.empty(len(words))
        for w, word in enumerate(words):
            ids = [vocab[t] for t in word.terms if t in vocab and vocab[t] < len(indptr) - 1]
            counts = [int(indptr[i + 1] - indptr[i]) for i in ids]
            weights[w] = idf(max(counts, default=0), n)  # its most common form; df 0: unseen
            for i in ids:
                found[w, rows[indptr[i] : indptr[i + 1]]] = True
        return weighted(found, weights)

    def query_terms(self, query: str) -> list[str]:
        """The query's search terms here: analysed in each language of the collection."""
        if self.language is not None:
            return analyzer(self.language).terms(query)
        return query_terms(query, self.languages)

    def terms(self, query: str) -> list[str]:
        """The query's search terms that occur in the indexed texts."""
        if self._bm25 is None:
            return []
        vocab = self._bm25.vocab_dict
        return [t for t in self.query_terms(query) if t in vocab]

    def mask(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """1.0 for each row whose id is in `allowed`, else 0.0 (bm25s' weight mask); None: all."""
        if allowed is None:
            return None
        return np.isin(self._ids, allowed).astype(np.float32)

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """The BM25 score of every indexed text for `query` (row i = ids[i]); zeros: no match, or
        masked out (`mask`: a weight per row, 0 leaves the row out)."""
        terms = self.terms(query)
        if not terms:
            return np.zeros(len(self._ids), np.float32)
        return np.asarray(self._bm25.get_scores(terms, weight_mask=mask), dtype=np.float32)

    def search(
        self, query: str, k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, ids, all scores) of the k best texts for `query`, best first; no non-matches
        (nor rows `mask` leaves out)."""
        every = self.scores(query, mask)
        k = min(k, len(every))
        if k <= 0 or not every.any():
            return np.zeros(0, np.float32), np.zeros(0, np.int64), every
        top = np.argpartition(-every, k - 1)[:k]
        top = top[np.lexsort((top, -every[top]))]  # best first; ties by row
        top = top[every[top] > 0]
        return every[top], self._ids[top], every

    def upper_bound(self, query: str) -> float:
        """The highest BM25 score any text here could reach for `query`: each term's best, summed.

        Dividing by it puts keyword scores on one 0..1 scale for every query. In a collection of
        several languages the terms are those of every language's analysis, so the bound holds
        for every text (none scores more), though no text may reach it."""
        if self._bm25 is None:
            return 0.0
        ids = [self._bm25.vocab_dict[t] for t in self.terms(query)]
        return float(self._term_max[ids].sum()) if ids else 0.0

    def scores_of(self, every: np.ndarray, ids: list[int]) -> list[float]:
        """The scores of `ids` in `every` (as returned by `search`): only these are looked up."""
        return [float(every[self._row_of[i]]) if i in self._row_of else 0.0 for i in ids]

    @property
    def nbytes(self) -> int:
        """Memory of the BM25 score matrix (CSC arrays)."""
        if self._bm25 is None:
            return 0
        return int(sum(v.nbytes for v in self._bm25.scores.values() if hasattr(v, "nbytes")))


class _RowScores(Mapping[int, float]):
    """chunk id -> BM25 score, read from the array of every row's score (`LexicalIndex.search`)."""

    def __init__(self, row_of: dict[int, int], every: np.ndarray):
        self._row_of, self._every = row_of, every

    def __getitem__(self, chunk_id: int) -> float:
        return float(self._every[self._row_of[chunk_id]])

    def __iter__(self) -> Iterator[int]:
        return iter(self._row_of)

    def __len__(self) -> int:
        return len(self._row_of)
