"""LexicalIndex: BM25 (bm25s) over the same chunk rows as the dense index, for exact terms.

Dense embeddings miss rare words, names, codes and numbers; BM25 finds them. The
tokenizer lowercases, drops English stop words and stems Latin-script words, and turns
runs of CJK characters (no spaces between words) into single characters plus bigrams,
as search engines' CJK analyzers do, so a Chinese or Japanese keyword is findable.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_CJK_RUN = re.compile(rf"[{_CJK}]")


@lru_cache(maxsize=1)
def _stemmer():  # noqa: ANN202 - PyStemmer's Stemmer
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS  # 179 words: "how do I ..." queries match on content words

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
            tokens.extend(run[i:i + 2] for i in range(len(run) - 1))
        elif run not in stop:
            words.append(run)
    return _stemmer().stemWords(words) + tokens if words else tokens


class LexicalIndex:
    """BM25 over a list of texts, rebuilt when they change; rows match the dense index's rows."""

    def __init__(self) -> None:
        self._bm25 = None
        self._n = 0
        self._tokens: dict[str, list[str]] = {}  # text -> tokens, so a rebuild tokenizes only new texts

    def __len__(self) -> int:
        return self._n

    def build(self, texts: Sequence[str]) -> None:
        """Index `texts` (row i = texts[i]), reusing the tokens of texts seen before."""
        import bm25s

        tokens = [self._tokens[t] if t in self._tokens else self._tokens.setdefault(t, tokenize(t))
                  for t in texts]
        self._tokens = {t: toks for t, toks in zip(texts, tokens)}  # forget removed texts
        self._n = len(texts)
        self._bm25 = None
        if texts:
            self._bm25 = bm25s.BM25()
            self._bm25.index(tokens, show_progress=False)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the k best rows for `query`, best first; rows without a match are left out."""
        terms = [t for t in tokenize(query) if self._bm25 is not None and t in self._bm25.vocab_dict]
        k = min(k, self._n)
        if not terms or k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        rows, scores = self._bm25.retrieve([terms], k=k, show_progress=False, n_threads=1)
        rows, scores = rows[0].astype(np.int64), scores[0].astype(np.float32)
        keep = scores > 0
        return scores[keep], rows[keep]

    @property
    def nbytes(self) -> int:
        """Memory of the BM25 score matrix (CSC arrays)."""
        if self._bm25 is None:
            return 0
        return int(sum(v.nbytes for v in self._bm25.scores.values() if hasattr(v, "nbytes")))
