"""VectorIndex: FAISS inner-product search over chunk vectors, the chunk store beside it,
and atomic save/load.

Row i of the FAISS index is chunk i of the store. The CPU index is the source of truth;
on a GPU host with faiss-gpu, searches run on a GPU copy made when first needed after a
change. Saving writes a complete new version folder, then switches the `CURRENT` pointer
with one atomic rename: a crash at any point leaves the previous version intact.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .types import Chunk

FORMAT_VERSION = 1
KINDS = ("flat", "hnsw")
POINTER = "CURRENT"


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


class VectorIndex:
    """Chunk vectors (float32, L2-normalised) in FAISS, and the chunks and documents they belong to."""

    def __init__(self, dim: int, kind: str = "flat", *, meta: dict[str, Any] | None = None,
                 hnsw_m: int = 32, ef_search: int = 128, use_gpu: bool | None = None):
        if kind not in KINDS:
            raise ValueError(f"index kind must be one of {KINDS}, got {kind!r}")
        if dim < 1:
            raise ValueError(f"dimension must be positive, got {dim}")
        self.dim, self.kind, self.hnsw_m, self.ef_search = dim, kind, hnsw_m, ef_search
        self.meta: dict[str, Any] = dict(meta or {})  # model, chunking: recorded in the manifest
        self.chunks: list[Chunk] = []
        self.docs: dict[str, DocInfo] = {}
        self.changes = 0  # counts changes, so derived indexes (BM25) know when to rebuild
        self._cpu = self._new_faiss()
        self._use_gpu = _gpu_available() if use_gpu is None else use_gpu
        self._gpu: Any = None  # GPU copy for search; None when stale

    # --- contents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.chunks)

    def has_doc(self, doc_id: str) -> bool:
        return doc_id in self.docs

    def doc_ids_for_source(self, source: str) -> list[str]:
        return [d.doc_id for d in self.docs.values() if d.source == source]

    def add(self, doc: DocInfo, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add one document's chunks with their vectors; a doc_id already here is an error."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(chunks), self.dim):
            raise ValueError(f"expected vectors of shape ({len(chunks)}, {self.dim}), got {vectors.shape}")
        if doc.doc_id in self.docs:
            raise ValueError(f"document {doc.doc_id[:12]}… ({doc.source}) is already in the index")
        if len(chunks):
            self._cpu.add(vectors)
            self.chunks.extend(chunks)
        self.docs[doc.doc_id] = doc
        self.changes += 1
        self._gpu = None

    def remove(self, doc_id: str) -> int:
        """Remove a document and its chunks; returns how many chunks went. Unknown ids: KeyError."""
        if doc_id not in self.docs:
            raise KeyError(f"no document with id {doc_id!r} in the index")
        keep = np.array([c.doc_id != doc_id for c in self.chunks], dtype=bool)
        removed = int((~keep).sum())
        if removed:
            vectors = self.vectors()[keep]
            self.chunks = [c for c, k in zip(self.chunks, keep) if k]
            self._cpu = self._new_faiss()
            self._cpu.add(vectors)
        del self.docs[doc_id]
        self.changes += 1
        self._gpu = None
        return removed

    def vectors(self) -> np.ndarray:
        """All stored vectors, (len, dim) float32, in row order."""
        if not len(self):
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._cpu.reconstruct_n(0, self._cpu.ntotal)

    # --- search --------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (n_queries, min(k, len)); best first; rows index `self.chunks`."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"expected query vectors of shape (n, {self.dim}), got {queries.shape}")
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.kind == "hnsw":
            self._cpu.hnsw.efSearch = max(self.ef_search, 2 * k)  # HNSW's breadth: recall against speed
        scores, rows = self._searcher().search(queries, k)
        return scores, rows

    def _searcher(self) -> Any:
        if not self._use_gpu or self.kind != "flat":
            return self._cpu
        if self._gpu is None:
            import faiss

            self._gpu = faiss.index_cpu_to_gpu(_gpu_resources(), 0, self._cpu)
        return self._gpu

    # --- persistence ---------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        import faiss

        return {
            "format_version": FORMAT_VERSION, "dim": self.dim, "kind": self.kind,
            "chunks": len(self.chunks), "documents": len(self.docs), **self.meta,
            "versions": {"faiss": faiss.__version__, "numpy": np.__version__, **self.meta.get("versions", {})},
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self, folder: str | Path) -> Path:
        """Write a complete new version, then switch to it atomically. Returns the version folder."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        _write(tmp / "index.faiss", faiss.serialize_index(self._cpu).tobytes())
        _write(tmp / "chunks.jsonl", "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n"
                                             for c in self.chunks))
        _write(tmp / "docs.json", json.dumps([vars(d) for d in self.docs.values()], ensure_ascii=False))
        _write(tmp / "manifest.json", json.dumps(self.manifest(), indent=2, ensure_ascii=False))
        _fsync_dir(tmp)
        version = folder / f"v-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        os.rename(tmp, version)
        _write(folder / f".{POINTER}.tmp", version.name)
        os.replace(folder / f".{POINTER}.tmp", folder / POINTER)  # the commit point
        _fsync_dir(folder)
        _clean(folder, keep=version.name)
        return version

    @classmethod
    def load(cls, folder: str | Path, *, use_gpu: bool | None = None) -> VectorIndex:
        import faiss

        folder = Path(folder)
        pointer = folder / POINTER
        if not pointer.is_file():
            raise IndexFolderError(f"{folder} holds no qsearch index (no {POINTER} file)")
        version = folder / pointer.read_text().strip()
        try:
            manifest = json.loads((version / "manifest.json").read_text())
            if manifest.get("format_version") != FORMAT_VERSION:
                raise IndexFolderError(f"{folder}: index format {manifest.get('format_version')} is not "
                                  f"supported (this qsearch reads format {FORMAT_VERSION})")
            meta = {k: v for k, v in manifest.items()
                    if k not in ("format_version", "dim", "kind", "chunks", "documents", "saved")}
            index = cls(int(manifest["dim"]), manifest["kind"], meta=meta, use_gpu=use_gpu)
            index._cpu = faiss.read_index(str(version / "index.faiss"))
            with open(version / "chunks.jsonl", encoding="utf-8") as f:
                index.chunks = [Chunk.from_dict(json.loads(line)) for line in f if line.strip()]
            docs = json.loads((version / "docs.json").read_text(encoding="utf-8"))
            index.docs = {d["doc_id"]: DocInfo(**d) for d in docs}
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise IndexFolderError(f"{folder}: the index is damaged or incomplete ({e})") from None
        if index._cpu.ntotal != len(index.chunks) or index._cpu.d != index.dim:
            raise IndexFolderError(f"{folder}: the index is inconsistent ({index._cpu.ntotal} vectors, "
                              f"{len(index.chunks)} chunks)")
        return index

    def check_model(self, model_name: str, dim: int, folder: str | Path = "the index") -> None:
        """Refuse to mix vectors of two models or dimensions in one index."""
        built_with = self.meta.get("embed_model")
        if dim != self.dim or (built_with and model_key(built_with) != model_key(model_name)):
            raise IndexFolderError(
                f"{folder} was built with model {built_with!r} at dimension {self.dim}, but the "
                f"embedder is {model_name!r} at dimension {dim}. Use --embed-model {built_with}"
                f"{f' --dim {self.dim}' if dim != self.dim else ''}, or index into a new folder."
            )

    def _new_faiss(self) -> Any:
        import faiss

        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            return index
        return faiss.IndexFlatIP(self.dim)


def model_key(name: str) -> str:
    """'Qwen/Qwen3-Embedding-0.6B' and '/models/Qwen3-Embedding-0.6B/' name the same model."""
    return Path(name.rstrip("/\\")).name.lower()


def brute_force_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k in plain numpy: the reference FAISS results are checked against."""
    scores = queries @ vectors.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, axis=1), rows


def _write(path: Path, data: str | bytes) -> None:
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean(folder: Path, keep: str) -> None:
    """Remove older versions and temporary folders left by an interrupted save."""
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name != keep and entry.name.startswith(("v-", ".tmp-")):
            shutil.rmtree(entry, ignore_errors=True)


def _gpu_available() -> bool:
    try:
        import faiss

        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # noqa: BLE001 - no GPU support is the common case
        return False


_GPU_RESOURCES: Any = None


def _gpu_resources() -> Any:
    global _GPU_RESOURCES
    if _GPU_RESOURCES is None:
        import faiss

        _GPU_RESOURCES = faiss.StandardGpuResources()
    return _GPU_RESOURCES
