"""VectorIndex: FAISS inner-product search over chunk vectors, the chunk store beside it,
and atomic save/load.

Every chunk has a FAISS id (`IndexIDMap2`), and a document's chunks hold one contiguous
range of ids, so removing a document is `remove_ids` over that range (flat), not a
rebuild; clearing replaces the index. HNSW can't remove ids: there a removal rebuilds
the graph from the remaining vectors (measured in bench/results). Large flat collections on
a CUDA host search on a GPU copy, when and as `store.gpu` allows.
Saving writes a complete new version folder, then switches the `CURRENT` pointer with
one atomic rename: a crash at any point leaves the previous version intact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import INDEX_KINDS
from ..models.loading import served_name
from ..types import Chunk
from . import gpu
from .folders import POINTER, current_version, write_version

FORMAT_VERSION = 2  # 2: FAISS ids (IndexIDMap2); 1 (rows, no ids) still loads
MAX_ORIGINAL_BYTES = 20 * 2**20  # a PDF this size or smaller is kept, so its pages can be shown


class IndexFolderError(Exception):
    """An index folder that can't be used: missing, damaged, or built with another model."""


@dataclass
class DocInfo:
    """One indexed document: where it came from and what it made."""

    doc_id: str
    source: str
    chunks: int
    pages: int | None = None
    added: float = field(default_factory=time.time)
    kind: str = ""  # "pdf", "text", "html", "docx", "image"
    ocr_pages: list[int] = field(default_factory=list)  # pages read by OCR (1-based)


class VectorIndex:
    """Chunk vectors (float32, L2-normalised) in FAISS by id, and the chunks and documents they belong to."""

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
        self.originals: dict[
            str, bytes
        ] = {}  # doc_id -> the file's bytes (small PDFs), for page views
        self.changes = 0  # counts changes, so derived indexes (BM25) know when to rebuild
        self._ids: dict[str, tuple[int, int]] = {}  # doc_id -> its ids, [first, end)
        self._next_id = 0
        self._cpu = self._new_faiss()
        self._use_gpu = use_gpu  # None: store.gpu's policy decides; False: never; True: any size
        self._gpu = gpu.GpuCopy()  # made by the first search that uses the GPU, dropped on change

    # --- contents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.chunks)

    def has_doc(self, doc_id: str) -> bool:
        return doc_id in self.docs

    def doc_ids_for_source(self, source: str) -> list[str]:
        return [d.doc_id for d in self.docs.values() if d.source == source]

    def doc_chunks(self, doc_id: str) -> list[Chunk]:
        first, end = self._ids[doc_id]
        return [self.chunks[i] for i in range(first, end) if i in self.chunks]

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
        if original is not None and len(original) <= MAX_ORIGINAL_BYTES:
            self.originals[doc.doc_id] = original
        self._changed()

    def remove(self, doc_id: str) -> int:
        """Remove a document and its chunks by their ids; returns how many chunks went. Unknown ids: KeyError."""
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
        del self.docs[doc_id]
        self.originals.pop(doc_id, None)
        self._changed()
        return len(removed)

    def clear(self) -> None:
        """Empty the index in O(1): a new FAISS index, new stores."""
        self.chunks, self.docs, self.originals, self._ids = {}, {}, {}, {}
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

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, min(k, len)); best first; ids are keys of `self.chunks`."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"expected query vectors of shape (n, {self.dim}), got {queries.shape}"
            )
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.kind == "hnsw":
            import faiss

            faiss.downcast_index(self._cpu.index).hnsw.efSearch = max(self.ef_search, 2 * k)
        allowed = False if self.kind != "flat" else self._use_gpu
        return gpu.search(self._cpu, queries, k, self._gpu, allowed=allowed)

    # --- persistence ---------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        import faiss

        return {
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "kind": self.kind,
            "chunks": len(self.chunks),
            "documents": len(self.docs),
            "next_id": self._next_id,
            **self.meta,
            "versions": {
                "faiss": faiss.__version__,
                "numpy": np.__version__,
                **self.meta.get("versions", {}),
            },
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self, folder: str | Path) -> Path:
        """Write a complete new version, then switch to it atomically. Returns the version folder."""
        import faiss

        docs = [{**vars(d), "ids": list(self._ids[d.doc_id])} for d in self.docs.values()]
        files: dict[str, bytes | str] = {
            "index.faiss": faiss.serialize_index(self._cpu).tobytes(),
            "chunks.jsonl": "".join(
                json.dumps({"id": i, **c.to_dict()}, ensure_ascii=False) + "\n"
                for i, c in self.chunks.items()
            ),
            "docs.json": json.dumps(docs, ensure_ascii=False),
            **{f"originals/{doc_id}": data for doc_id, data in self.originals.items()},
            "manifest.json": json.dumps(self.manifest(), indent=2, ensure_ascii=False),
        }
        return write_version(folder, files)

    @classmethod
    def load(cls, folder: str | Path, *, use_gpu: bool | None = None) -> VectorIndex:
        folder = Path(folder)
        version = current_version(folder)
        if version is None:
            raise IndexFolderError(f"{folder} holds no qsearch index (no {POINTER} file)")
        try:
            manifest = json.loads((version / "manifest.json").read_text())
            if manifest.get("format_version") not in (1, FORMAT_VERSION):
                raise IndexFolderError(
                    f"{folder}: index format {manifest.get('format_version')} is not "
                    f"supported (this qsearch reads formats 1 and {FORMAT_VERSION})"
                )
            meta = {
                k: v
                for k, v in manifest.items()
                if k
                not in ("format_version", "dim", "kind", "chunks", "documents", "saved", "next_id")
            }
            index = cls(int(manifest["dim"]), manifest["kind"], meta=meta, use_gpu=use_gpu)
            index._read(version, manifest)
        except IndexFolderError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise IndexFolderError(f"{folder}: the index is damaged or incomplete ({e})") from None
        if index._cpu.ntotal != len(index.chunks) or index._cpu.d != index.dim:
            raise IndexFolderError(
                f"{folder}: the index is inconsistent ({index._cpu.ntotal} vectors, "
                f"{len(index.chunks)} chunks)"
            )
        return index

    def _read(self, version: Path, manifest: dict[str, Any]) -> None:
        import faiss

        stored = faiss.read_index(str(version / "index.faiss"))
        with open(version / "chunks.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        docs = json.loads((version / "docs.json").read_text(encoding="utf-8"))
        if manifest["format_version"] == 1:  # rows, no ids: a document's chunks are one run of rows
            rows = [{"id": i, **r} for i, r in enumerate(rows)]
            runs: dict[str, list[int]] = {}
            for r in rows:
                runs.setdefault(r["doc_id"], []).append(r["id"])
            for d in docs:
                ids = runs.get(d["doc_id"], [])
                d["ids"] = [ids[0], ids[-1] + 1] if ids else [len(rows), len(rows)]
            vectors = (
                stored.reconstruct_n(0, stored.ntotal)
                if stored.ntotal
                else np.zeros((0, self.dim), "f4")
            )
            stored = self._new_faiss()
            stored.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
        self._cpu = stored
        self.chunks = {r.pop("id"): Chunk.from_dict(r) for r in rows}
        self._ids = {d["doc_id"]: tuple(d.pop("ids")) for d in docs}
        self.docs = {d["doc_id"]: DocInfo(**d) for d in docs}
        self._next_id = int(
            manifest.get("next_id") or max((e for _, e in self._ids.values()), default=0)
        )
        originals = version / "originals"
        self.originals = (
            {p.name: p.read_bytes() for p in originals.iterdir()} if originals.is_dir() else {}
        )

    def check_model(self, model_name: str, dim: int, folder: str | Path = "the index") -> None:
        """Refuse to mix vectors of two models or dimensions in one index."""
        check_model(self.meta.get("embed_model"), self.dim, model_name, dim, folder)

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


def check_model(
    built_with: str | None, built_dim: int, model_name: str, dim: int, where: str | Path
) -> None:
    """Refuse to mix vectors of two models or dimensions in one collection."""
    if dim != built_dim or (built_with and model_key(built_with) != model_key(model_name)):
        raise IndexFolderError(
            f"{where} was built with model {built_with!r} at dimension {built_dim}, but the "
            f"embedder is {model_name!r} at dimension {dim}. Use --embed-model {built_with}"
            f"{f' --dim {built_dim}' if dim != built_dim else ''}, or index into a new folder or collection."
        )


def model_key(name: str) -> str:
    """'Qwen/Qwen3-Embedding-0.6B' and '/models/Qwen3-Embedding-0.6B/' name the same model (and the
    bundled MiniLM folder is 'all-MiniLM-L6-v2')."""
    return served_name(name).lower()


def brute_force_search(
    vectors: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k in plain numpy: the reference FAISS results are checked against."""
    scores = queries @ vectors.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, axis=1), rows
