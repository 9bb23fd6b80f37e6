"""VectorIndex: the folder collection. FAISS inner-product search over chunk vectors, the chunk
store beside it, BM25 over the same chunks (`bm25.py`), and atomic save/load (`folder_files.py`).

Every chunk has a FAISS id (`IndexIDMap2`), and a document's chunks hold one contiguous
range of ids, so removing a document is `remove_ids` over that range (flat), not a
rebuild; clearing replaces the index. HNSW can't remove ids: there a removal rebuilds
the graph from the remaining vectors (measured in bench/results). Large flat collections on
a CUDA host search on a GPU copy, when and as `store.gpu` allows.
Saving writes a complete new version folder, then switches the `CURRENT` pointer with
one atomic rename: a crash at any point leaves the previous version intact.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from pathlib import Path
from typing import Any

import numpy as np

from ..config import INDEX_KINDS
from ..types import Chunk
from . import folder_files, gpu
from .base import (
    Collection,
    CollectionError,
    DocInfo,
    IndexFolderError,
    KeywordHits,
    check_model,
)
from .bm25 import LexicalIndex

MAX_ORIGINAL_BYTES = 20 * 2**20  # a PDF this size or smaller is kept, so its pages can be shown
# HNSW filtered to at most this many vectors is searched exactly (a graph walk over a small
# subset can miss); flat search through an ID selector is exact at any size
EXACT_WITHIN = 50_000
FORMAT_VERSION = folder_files.FORMAT_VERSION

# Older homes of these names (qsearch.store.vectors), kept importable.
__all__ = [
    "FORMAT_VERSION",
    "CollectionError",
    "DocInfo",
    "IndexFolderError",
    "VectorIndex",
    "brute_force_search",
    "check_model",
]


class VectorIndex(Collection):
    """Chunk vectors (float32, L2-normalised) in FAISS by id, the chunks and documents they
    belong to, and BM25 over the chunks' text, rebuilt once after a batch of changes."""

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        *,
        meta: dict[str, Any] | None = None,
        hnsw_m: int = 32,
        ef_search: int = 128,
        use_gpu: bool | None = None,
    ):
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}, got {kind!r}")
        if dim < 1:
            raise ValueError(f"dimension must be positive, got {dim}")
        self.dim, self.kind, self.hnsw_m, self.ef_search = dim, kind, hnsw_m, ef_search
        self.meta: dict[str, Any] = dict(meta or {})  # model, chunking: recorded in the manifest
        self.chunks: dict[int, Chunk] = {}  # FAISS id -> chunk, in id (insertion) order
        self.docs: dict[str, DocInfo] = {}
        self.originals: dict[str, bytes] = {}  # doc_id -> the file's bytes (small PDFs)
        self.changes = 0  # counts changes, so the BM25 index (and others) know when to rebuild
        self._ids: dict[str, tuple[int, int]] = {}  # doc_id -> its ids, [first, end)
        self._by_source: dict[str, list[str]] = {}  # source -> its doc_ids
        self._next_id = 0
        self._cpu = self._new_faiss()
        self._use_gpu = use_gpu  # None: store.gpu's policy decides; False: never; True: any size
        self._gpu = gpu.GpuCopy()  # made by the first search that uses the GPU, dropped on change
        self._lexical = LexicalIndex()

    def __str__(self) -> str:
        return "the index"

    # --- contents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.chunks)

    def has_doc(self, doc_id: str) -> bool:
        return doc_id in self.docs

    def doc_ids_for_source(self, source: str) -> list[str]:
        return list(self._by_source.get(source, ()))

    def doc_chunks(self, doc_id: str) -> list[Chunk]:
        return [self.chunks[i] for i in self.doc_chunk_ids(doc_id)]

    def doc_chunk_ids(self, doc_id: str) -> list[int]:
        first, end = self._ids[doc_id]
        return [i for i in range(first, end) if i in self.chunks]

    def add(
        self,
        doc: DocInfo,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        original: bytes | None = None,
    ) -> None:
        """Add one document's chunks with their vectors; a doc_id already here is an error.

        `original` (the file's bytes) is kept when it is at most MAX_ORIGINAL_BYTES."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(chunks), self.dim):
            raise ValueError(
                f"expected vectors of shape ({len(chunks)}, {self.dim}), got {vectors.shape}"
            )
        if doc.doc_id in self.docs:
            raise ValueError(f"document {doc.doc_id[:12]}… ({doc.source}) is already in the index")
        first = self._next_id
        ids = np.arange(first, first + len(chunks), dtype=np.int64)
        if len(chunks):
            self._cpu.add_with_ids(vectors, ids)
            self.chunks.update(zip(ids.tolist(), chunks))
        self._next_id += len(chunks)
        self._ids[doc.doc_id] = (first, self._next_id)
        self.docs[doc.doc_id] = doc
        self._by_source.setdefault(doc.source, []).append(doc.doc_id)
        if original is not None and len(original) <= MAX_ORIGINAL_BYTES:
            self.originals[doc.doc_id] = original
        self._changed()

    def remove(self, doc_id: str) -> int:
        """Remove a document and its chunks by their ids; returns how many chunks went.

        Unknown ids: KeyError."""
        if doc_id not in self.docs:
            raise KeyError(f"no document with id {doc_id!r} in the index")
        import faiss

        first, end = self._ids.pop(doc_id)
        removed = [i for i in range(first, end) if self.chunks.pop(i, None) is not None]
        if removed and self.kind == "flat":
            self._cpu.remove_ids(faiss.IDSelectorRange(first, end))
        elif removed:  # HNSW graphs can't drop nodes: rebuild from what remains
            ids, vectors = self._stored()
            kept = (ids < first) | (ids >= end)
            self._cpu = self._new_faiss()
            self._cpu.add_with_ids(np.ascontiguousarray(vectors[kept]), ids[kept])
        source = self.docs.pop(doc_id).source
        self._by_source[source].remove(doc_id)
        if not self._by_source[source]:
            del self._by_source[source]
        self.originals.pop(doc_id, None)
        self._changed()
        return len(removed)

    def clear(self) -> None:
        """Empty the index in O(1): a new FAISS index, new stores."""
        self.chunks, self.docs, self.originals, self._ids, self._by_source = {}, {}, {}, {}, {}
        self._cpu = self._new_faiss()
        self._changed()

    def vectors(self) -> np.ndarray:
        """All stored vectors, (len, dim) float32, in id order (the order of `chunks`)."""
        ids, vectors = self._stored()
        return vectors[np.argsort(ids, kind="stable")]

    def vectors_of(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of `ids`, (len(ids), dim)."""
        return (
            np.vstack([self._cpu.reconstruct(int(i)) for i in ids])
            if len(ids)
            else np.zeros((0, self.dim), np.float32)
        )

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) in FAISS's storage order."""
        import faiss

        if not self._cpu.ntotal:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        ids = faiss.vector_to_array(self._cpu.id_map).astype(np.int64)
        return ids, self._cpu.index.reconstruct_n(0, self._cpu.ntotal)

    def _changed(self) -> None:
        self.changes += 1
        self._gpu.drop()

    # --- search --------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, within: Set[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, min(k, len)); best first; ids are keys of `chunks`.

        `within` (doc ids) filters before ranking: FAISS skips every other id (an ID selector
        in the search parameters), so k results come back whenever k chunks of them exist."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"expected query vectors of shape (n, {self.dim}), got {queries.shape}"
            )
        if within is not None:
            return self._search_within(queries, k, self.ids_within(within))
        k = min(int(k), len(self))
        if k <= 0:
            return _no_results(len(queries))
        if self.kind == "hnsw":
            import faiss

            faiss.downcast_index(self._cpu.index).hnsw.efSearch = max(self.ef_search, 2 * k)
        allowed = False if self.kind != "flat" else self._use_gpu
        return gpu.search(self._cpu, queries, k, self._gpu, allowed=allowed)

    def ids_within(self, within: Set[str]) -> np.ndarray:
        """The chunk ids of the documents `within` (unknown doc ids have none), ascending."""
        ranges = sorted(self._ids[d] for d in within if d in self._ids)
        if not ranges:
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(first, end, dtype=np.int64) for first, end in ranges])

    def _search_within(
        self, queries: np.ndarray, k: int, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among `ids`: FAISS with an ID selector (flat), or over their vectors
        (HNSW, up to EXACT_WITHIN of them; past that the graph walks with the selector)."""
        import faiss

        k = min(int(k), len(ids))
        if k <= 0:
            return _no_results(len(queries))
        if self.kind == "hnsw" and len(ids) <= EXACT_WITHIN:
            scores, rows = brute_force_search(self.vectors_of(ids), queries, k)
            return scores.astype(np.float32), ids[rows]
        selector = faiss.IDSelectorBatch(ids)
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.ef_search, 2 * k))
        else:
            params = faiss.SearchParameters(sel=selector)
        return self._cpu.search(queries, k, params=params)  # the GPU copy takes no selector

    def keyword_search(self, query: str, k: int, within: Set[str] | None = None) -> KeywordHits:
        """BM25 over the chunks' text (bm25.py), brought in step with the chunks first; `within`
        masks every other chunk's score before the top k are taken."""
        allowed = self.ids_within(within) if within is not None else None
        return self.lexical.hits(query, k, allowed)

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index over the chunks, rebuilt once after a batch of changes."""
        self._lexical.keep_up(self.changes, self.chunks)
        return self._lexical

    # --- persistence ---------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        return folder_files.manifest(self)

    def save(self, folder: str | Path | None = None) -> Path:
        """Write a complete new version, then switch to it atomically; returns its folder."""
        if folder is None:
            raise ValueError("no folder given to save the index in")
        return folder_files.save(self, folder)

    @classmethod
    def load(cls, folder: str | Path, *, use_gpu: bool | None = None) -> VectorIndex:
        """The index saved in `folder`; CollectionError when there is none or it is damaged."""
        return folder_files.load(cls, folder, use_gpu)

    def _restore(
        self,
        stored: Any,
        chunks: dict[int, Chunk],
        ids: dict[str, tuple[int, int]],
        docs: list[DocInfo],
        originals: dict[str, bytes],
        next_id: int | None,
    ) -> None:
        """Take the contents read from a folder (folder_files.load)."""
        self._cpu, self.chunks, self._ids, self.originals = stored, chunks, ids, originals
        self.docs, self._by_source = {}, {}
        for d in docs:
            self.docs[d.doc_id] = d
            self._by_source.setdefault(d.source, []).append(d.doc_id)
        self._next_id = int(next_id or max((e for _, e in ids.values()), default=0))
        self._changed()

    def _new_faiss(self) -> Any:
        import faiss

        if self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
        else:
            inner = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIDMap2(inner)
        index.own_fields = True
        inner.this.disown()  # the id map owns the inner index now
        return index


def _no_results(n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n_queries, 0), np.float32), np.zeros((n_queries, 0), np.int64)


def brute_force_search(
    vectors: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k in plain numpy: the reference FAISS results are checked against."""
    scores = queries @ vectors.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, axis=1), rows
