"""How the engine puts a batch of read files into a collection: each distinct text embedded once,
then every file added at the very end, replacing the older version of its source, so a
cancelled or failed batch leaves the collection as it was.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from .config import VERSION, Settings
from .documents.pool import Parsed, check_stop
from .models.embedder import Embedder
from .store.base import Collection, DocInfo
from .store.vectors import VectorIndex
from .types import Chunk, IngestError

Progress = Callable[[str, int, int], None]  # (stage, done, total): stage "reading" or "embedding"


def embed_unique(
    embedder: Embedder,
    texts: list[str],
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
) -> np.ndarray:
    """Embed each distinct text once; duplicates share the vector. Stops between windows."""
    unique = list(dict.fromkeys(texts))
    where = {t: i for i, t in enumerate(unique)}

    def report(done: int, total: int) -> None:
        check_stop(should_stop)
        if progress:
            progress("embedding", done, total)

    if not unique:
        return np.zeros((0, embedder.dim), np.float32)
    return embedder.encode(unique, progress=report)[[where[t] for t in texts]]


def add_parsed(index: Collection, parsed: Sequence[Parsed], vectors: np.ndarray) -> None:
    """Add each parsed file with its rows of `vectors`, replacing older versions of its source.

    The older versions are found in one lookup for the whole batch, not one per file."""
    older = index.doc_ids_for_sources([p.doc.source for p in parsed])
    row = 0
    for p in parsed:
        n, row = len(p.chunks), row + len(p.chunks)
        if index.has_doc(p.doc.doc_id):  # added meanwhile by another thread
            p.report.status = "unchanged"
            continue
        for old in older.get(p.doc.source, ()):
            if index.has_doc(old):
                index.remove(old)
                p.report.status = "replaced"
        older[p.doc.source] = [p.doc.doc_id]  # a later file of this name replaces it
        info = DocInfo(
            p.doc.doc_id,
            p.doc.source,
            n,
            p.doc.n_pages,
            kind=p.doc.kind,
            ocr_pages=list(p.doc.ocr_pages),
        )
        original = p.data if p.doc.kind == "pdf" else None
        index.add(info, p.chunks, vectors[row - n : row], original=original)


class Admission(Protocol):
    """What may refuse a file for lack of memory (IngestError): a server's MemoryBudget."""

    def admit_text(self, chars: int, dim: int) -> None: ...  # before chunking `chars` of text

    def admit(self, chunks: Sequence[Chunk], dim: int) -> None: ...  # its chunks, to embed


def check_room(index: Collection, settings: Settings, new_files: int, new_chunks: int = 0) -> None:
    """Refuse a file that would take the collection past its limits (max_files, max_chunks)."""
    s = settings
    if s.max_files is not None and len(index.docs) + new_files >= s.max_files:
        raise IngestError("", f"not added: the collection is full ({s.max_files} files at most)")
    if s.max_chunks is not None and len(index) + new_chunks > s.max_chunks:
        raise IngestError(
            "", f"not added: it would take the collection past {s.max_chunks:,} chunks"
        )


def new_folder_index(embedder: Embedder, settings: Settings) -> VectorIndex:
    """An empty folder collection for `embedder`'s vectors, recording how its chunks are made."""
    meta = {
        "embed_model": embedder.model_name,
        "embed_dim": settings.embed_dim,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "versions": versions(),
    }
    return VectorIndex(embedder.dim, settings.index_kind, meta=meta)


def versions() -> dict[str, str]:
    """qsearch's version and the model libraries', as a collection records them."""
    found = {"qsearch": VERSION}
    for package in ("torch", "transformers"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return found
