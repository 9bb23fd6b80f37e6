"""The collection contract: what every place that keeps chunks and vectors offers the engine.

In the spirit of txtai's `ann/base.py`: one small abstract class, implemented by the FAISS
folder (`vectors.VectorIndex`, with its BM25) and by Milvus (`milvus.MilvusIndex`). The
engine, retrieval and the web use collections only through this face, so no code above
`store/` asks which backend it holds. One error type, `CollectionError`, says why a
collection can't be used (`IndexFolderError` is its older name).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import same_model
from ..types import Chunk

if TYPE_CHECKING:
    from .analysis import QueryWord


class CollectionError(Exception):
    """A collection that can't be used: missing, damaged, unreachable, or of another model."""


IndexFolderError = CollectionError  # the name qsearch has exported since the folder index


@dataclass
class DocInfo:
    """One indexed document: where it came from and what it made."""

    doc_id: str
    source: str
    chunks: int
    pages: int | None = None
    added: float = field(default_factory=time.time)
    kind: str = ""  # Document.kind: "pdf", "text", "html", "docx", "slides", "sheet", ...
    ocr_pages: list[int] = field(default_factory=list)  # pages read by OCR (1-based)


@dataclass(frozen=True)
class KeywordHits:
    """One query's BM25 answer from a collection.

    `bound` is the highest score any chunk here could reach for the query's terms, so
    bm25 / bound puts keyword scores on one 0..1 scale (0 when nothing matches); `coverage`
    is how much of the query's words (IDF-weighted) each chunk holds (coverage.py), where the
    backend knows it from its index (else the collection's `keyword_coverage` computes it)."""

    ids: np.ndarray  # the best matching chunk ids, best first; non-matches left out
    scores: np.ndarray  # their BM25 scores
    bound: float
    every: Mapping[int, float]  # chunk id -> BM25 score, for candidates found otherwise
    coverage: Mapping[int, float] | None = None  # chunk id -> keyword coverage, when known

    def scores_of(self, ids: Sequence[int]) -> list[float]:
        """The BM25 score of each of `ids` (0 for a chunk the query's terms miss)."""
        return [float(self.every.get(int(i), 0.0)) for i in ids]


NO_KEYWORDS = KeywordHits(np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0, {})


class Collection(ABC):
    """Chunks of documents with their vectors: add, remove, search (dense and BM25), count, save.

    Chunk ids are ints chosen by the collection; `changes` counts changes, so what is
    derived from the contents (a cache, a BM25 index) knows when it is stale."""

    dim: int
    meta: dict[str, Any]  # "embed_model" at least: the model the vectors come from
    changes: int

    docs: Mapping[str, DocInfo]  # doc_id -> DocInfo of every document (a live view if remote)
    chunks: Mapping[int, Chunk]  # chunk id -> Chunk; iteration lists every chunk (paged if remote)
    originals: Mapping[str, bytes]  # doc_id -> the file's bytes where kept (small PDFs, page views)

    # --- contents ------------------------------------------------------------------------

    @abstractmethod
    def __len__(self) -> int:
        """How many chunks the collection holds."""

    def count(self) -> int:
        return len(self)

    def has_doc(self, doc_id: str) -> bool:
        return doc_id in self.docs

    @abstractmethod
    def doc_ids_for_source(self, source: str) -> list[str]:
        """The ids of the documents read from `source`: a lookup, never a scan of all documents."""

    def doc_ids_for_sources(self, sources: Sequence[str]) -> dict[str, list[str]]:
        """source -> its doc ids, for the sources that have any: one lookup for a batch of files."""
        found = {s: self.doc_ids_for_source(s) for s in dict.fromkeys(sources)}
        return {s: ids for s, ids in found.items() if ids}

    @abstractmethod
    def doc_chunks(self, doc_id: str) -> list[Chunk]:
        """Every chunk of one document, in text order."""

    @abstractmethod
    def doc_chunk_ids(self, doc_id: str) -> list[int]:
        """The ids of one document's chunks, in text order (for `vectors_of`: a copy, an undo)."""

    # --- changes -------------------------------------------------------------------------

    @abstractmethod
    def add(
        self,
        doc: DocInfo,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        original: bytes | None = None,
    ) -> None:
        """Add one document's chunks and (L2-normalised) vectors; a known doc_id: ValueError."""

    @abstractmethod
    def remove(self, doc_id: str) -> int:
        """Remove a document and its chunks; returns how many chunks went. Unknown ids: KeyError."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every document."""

    # --- search --------------------------------------------------------------------------

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, within: Set[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, up to k): inner products, best first; ids -1 pad.

        `within`: only the chunks of these documents (doc ids; None: every chunk), filtered
        before ranking, so k come back whenever that many chunks of them exist."""

    @abstractmethod
    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of `ids`, (len(ids), dim) float32."""

    @abstractmethod
    def keyword_search(self, query: str, k: int, within: Set[str] | None = None) -> KeywordHits:
        """The k best chunks for `query` by BM25 over their text, with the scale's upper bound;
        `within` as for `search` (the bound stays the whole collection's: one scale)."""

    def keyword_coverage(
        self, query: str, ids: Sequence[int], found: KeywordHits | None = None
    ) -> np.ndarray:
        """How much of `query`'s words (IDF-weighted) each chunk of `ids` holds, 0..1
        (coverage.py): from `found` (this query's keyword search) when it knows, else from the
        chunks' text, analysed as BM25 analyses it, with `document_frequencies` for the IDF."""
        if found is not None and found.coverage is not None:
            return np.array([float(found.coverage.get(int(i), 0.0)) for i in ids])
        from .analysis import language_of, query_words, tokenize
        from .coverage import idf, weighted

        texts = [self.chunks[int(i)].text for i in ids]
        languages = [language_of(t) for t in texts]
        words = query_words(query, list(dict.fromkeys(languages)))
        if not words or not texts:
            return np.zeros(len(ids))
        held = [frozenset(tokenize(t, x)) for t, x in zip(texts, languages)]
        found_in = np.array([[bool(w.terms & h) for h in held] for w in words])
        return weighted(found_in, idf(self.document_frequencies(words), max(len(self), 1)))

    def document_frequencies(self, words: Sequence[QueryWord]) -> list[int]:
        """How many chunks hold each word (any of its terms), for its IDF. This default knows no
        index: every word counts as rare (df 0), so each weighs alike; backends override it."""
        return [0] * len(words)

    # --- model and persistence -----------------------------------------------------------

    def check_model(self, model_name: str, dim: int, where: str | Path | None = None) -> None:
        """Refuse to mix vectors of two models or dimensions in one collection."""
        check_model(self.meta.get("embed_model"), self.dim, model_name, dim, where or str(self))

    @abstractmethod
    def save(self, folder: str | Path | None = None) -> Path | None:
        """Make what was added durable: a folder collection writes `folder`, a server flushes."""

    @classmethod
    @abstractmethod
    def load(cls, where: str | Path, **options: Any) -> Collection:
        """Open a collection saved or kept at `where`; CollectionError when it can't be used."""


def check_model(
    built_with: str | None, built_dim: int, model_name: str, dim: int, where: str | Path
) -> None:
    """Refuse to mix vectors of two models or dimensions in one collection."""
    if dim != built_dim or (built_with and not same_model(built_with, model_name)):
        again = f"--embed-model {built_with}" + (f" --dim {built_dim}" if dim != built_dim else "")
        raise CollectionError(
            f"{where} was built with model {built_with!r} at dimension {built_dim}, but the "
            f"embedder is {model_name!r} at dimension {dim}. Use {again}, or index into a new "
            "folder or collection."
        )
