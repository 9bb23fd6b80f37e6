"""LexicalIndex: BM25 (bm25s) over the same chunk rows as the dense index, for exact terms.

Dense embeddings miss rare words, names, codes and numbers; BM25 finds them. The
tokenizer lowercases, drops English stop words and stems Latin-script words, and turns
runs of CJK characters (no spaces between words) into single characters plus bigrams,
as search engines' CJK analyzers do, so a Chinese or Japanese keyword is findable.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache

import numpy as np

from ..types import CJK, Chunk
from .base import NO_KEYWORDS, KeywordHits

_CJK = CJK

_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_CJK_RUN = re.compile(rf"[{_CJK}]")


@lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202 - PyStemmer's Stemmer
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    # 179 words: "how do I ..." queries match on content words
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


def tokenize(text: str) -> list[str]:
    """Search terms of `text`: stemmed words without stop words; CJK as characters and bigrams."""
    words: list[str] = []
    tokens: list[str] = []
    stop = _stopwords()
    for match in _TOKEN.finditer(unicodedata.normalize("NFKC", text).lower()):
        run = match.group()
        if _CJK_RUN.match(run):
            tokens.extend(run)
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
        elif run not in stop:
            words.append(run)
    return _stemmer().stemWords(words) + tokens if words else tokens


def query_terms(query: str) -> frozenset[str]:
    """The terms BM25 searches `query` by (`tokenize`'s), for highlighting what it matched."""
    return frozenset(tokenize(query))


def term_spans(text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
    """(start, end) in `text` of each word whose term is in `terms` (a stemmed match: "indexing"
    for "indexes"; never a stop word), and of each CJK pair (or lone character) in `terms`."""
    spans: list[tuple[int, int]] = []
    stem, stop = _stemmer().stemWord, _stopwords()
    pairs = any(len(t) == 2 and _CJK_RUN.match(t) for t in terms)
    for match in _TOKEN.finditer(text):
        run, start = match.group(), match.start()
        if _CJK_RUN.match(run):  # marked by the pairs BM25 matched, by characters without pairs
            size = 2 if pairs else 1
            spans += [
                (start + i, start + i + size)
                for i in range(len(run) - size + 1)
                if run[i : i + size] in terms
            ]
            continue
        word = unicodedata.normalize("NFKC", run).lower()
        if word not in stop and stem(word) in terms:
            spans.append(match.span())
    merged: list[tuple[int, int]] = []  # overlapping CJK pairs become one span
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class LexicalIndex:
    """BM25 over texts that each carry an id (the dense index's chunk ids), rebuilt on change.

    bm25s has no incremental update, so the index is rebuilt from the chunk rows, once per
    batch of changes (lazily, at the next search), reusing the tokens of texts seen before.
    """

    def __init__(self) -> None:
        self._bm25 = None
        self._ids = np.zeros(0, np.int64)
        self._row_of: dict[int, int] = {}
        self._term_max = np.zeros(0, np.float32)  # per vocabulary term: its best BM25 contribution
        self._tokens: dict[str, list[str]] = {}  # text -> tokens: a rebuild tokenizes new texts
        self._built_at = -1  # the chunks' change counter when built (keep_up)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def build(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        """Index `texts`, text i under id `ids[i]`."""
        import bm25s

        tokens = [
            self._tokens[t] if t in self._tokens else self._tokens.setdefault(t, tokenize(t))
            for t in texts
        ]
        self._tokens = {t: toks for t, toks in zip(texts, tokens)}  # forget removed texts
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

    def keep_up(self, changes: int, chunks: Mapping[int, Chunk]) -> None:
        """Rebuild from `chunks` if they changed since the last build (`changes`: their counter)."""
        with self._lock:
            if self._built_at != changes:
                ids = list(chunks)
                self.build(ids, [chunks[i].text for i in ids])
                self._built_at = changes

    def hits(self, query: str, k: int) -> KeywordHits:
        """The k best texts for `query`, with every text's score and the scale's upper bound."""
        scores, ids, every = self.search(query, k)
        if not len(ids):
            return NO_KEYWORDS
        return KeywordHits(ids, scores, self.upper_bound(query), _RowScores(self._row_of, every))

    def terms(self, query: str) -> list[str]:
        """The query's search terms that occur in the indexed texts."""
        return [t for t in tokenize(query) if self._bm25 is not None and t in self._bm25.vocab_dict]

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every indexed text for `query` (row i = ids[i]); zeros: no match."""
        terms = self.terms(query)
        if not terms:
            return np.zeros(len(self._ids), np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, ids, all scores) of the k best texts for `query`, best first; no non-matches."""
        every = self.scores(query)
        k = min(k, len(every))
        if k <= 0 or not every.any():
            return np.zeros(0, np.float32), np.zeros(0, np.int64), every
        top = np.argpartition(-every, k - 1)[:k]
        top = top[np.lexsort((top, -every[top]))]  # best first; ties by row
        top = top[every[top] > 0]
        return every[top], self._ids[top], every

    def upper_bound(self, query: str) -> float:
        """The highest BM25 score any text here could reach for `query`: each term's best, summed.

        Dividing by it puts keyword scores on one 0..1 scale for every query."""
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
