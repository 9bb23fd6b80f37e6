"""Checks of a collection file's parts (store/portable.py), once parsed: each refusal is one line.

Pure functions over JSON values and arrays: the manifest against this server's model and
limits, documents and chunks field by field (exact types), and the vectors (dtype, shape,
finite, unit length).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import same_model
from ..types import Chunk
from .base import DocInfo

FORMAT, FORMAT_VERSION = "qsearch-collection", 2  # 2: chunks may say `where` (a slide, rows)
READS = (1, FORMAT_VERSION)
MANIFEST, VECTORS, DOCUMENTS, CHUNKS = (
    "manifest.json",
    "vectors.npy",
    "documents.json",
    "chunks.json",
)
HARD_MAX_FILES, HARD_MAX_CHUNKS = 100_000, 5_000_000  # when the caller sets no limit
UNIT_TOLERANCE = 1e-3
_DOC_ID = re.compile(r"[0-9a-f]{64}")  # sha256 of the file's bytes (documents/read.py)
_KIND = re.compile(r"[a-z0-9]{0,16}")
INT, OPT_INT = (int,), (int, type(None))
_CHUNK_FIELDS = {"doc_id": (str,), "source": (str,), "text": (str,), "start": INT, "end": INT}
_CHUNK_FIELDS |= {"page": OPT_INT, "page_end": OPT_INT, "ocr": (bool,)}
_CHUNK_OPTIONAL = {"where": (str, type(None))}  # format 2
MAX_WHERE = 500  # characters of a chunk's `where` label
_DOC_FIELDS = {"doc_id": (str,), "source": (str,), "chunks": INT, "pages": OPT_INT}
_DOC_FIELDS |= {"added": (int, float), "kind": (str,), "ocr_pages": (list,)}


class CollectionFileError(ValueError):
    """A collection file that can't be opened; str() is one line naming what is wrong."""


def check_manifest(
    m: Any, model: str, dim: int, max_files: int | None, max_chunks: int | None
) -> tuple[int, int]:
    """(documents, chunks) the manifest announces, after checking format, model and limits."""
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise CollectionFileError(f"{MANIFEST} does not describe a {FORMAT} file")
    if m.get("format_version") not in READS:
        raise CollectionFileError(
            f"collection format {m.get('format_version')!r} is not supported "
            f"(this qsearch reads formats {' and '.join(map(str, READS))})"
        )
    for key, types in (("embed_model", (str,)), ("dim", INT)):
        _field(m, key, types, MANIFEST)
    for key in ("documents", "chunks"):
        if not is_type(m, key, INT) or m[key] < 0:
            raise CollectionFileError(f"{MANIFEST}: {key} must be a count, got {m.get(key)!r}")
    if not same_model(m["embed_model"], model) or m["dim"] != dim:
        theirs = m["embed_model"][:200]
        raise CollectionFileError(
            f"this collection was embedded with {theirs!r} at dimension {m['dim']}, "
            f"but this qsearch embeds with {model!r} at dimension {dim}: open it on a qsearch "
            f"running --embed-model {theirs} --dim {m['dim']}"
        )
    for key, limit, hard in (
        ("documents", max_files, HARD_MAX_FILES),
        ("chunks", max_chunks, HARD_MAX_CHUNKS),
    ):
        if m[key] > (limit or hard):
            raise CollectionFileError(
                f"the collection holds {m[key]:,} {key}, over this server's limit of "
                f"{limit or hard:,} {key} per collection"
            )
    return m["documents"], m["chunks"]


def parse_documents(rows: Any) -> list[DocInfo]:
    docs = _records(rows, DOCUMENTS, _DOC_FIELDS, DocInfo)
    for i, d in enumerate(docs):
        where = f"{DOCUMENTS}[{i}]"
        if not _DOC_ID.fullmatch(d.doc_id):
            raise CollectionFileError(
                f"{where}: doc_id must be 64 hex digits, got {d.doc_id[:80]!r}"
            )
        if d.chunks < 0 or not _KIND.fullmatch(d.kind) or not math.isfinite(d.added):
            raise CollectionFileError(f"{where}: chunks, kind or added is out of range")
        if (d.pages is not None and d.pages < 0) or not all(
            type(p) is int and p >= 1 for p in d.ocr_pages
        ):
            raise CollectionFileError(f"{where}: pages and ocr_pages must be page numbers")
    if len({d.doc_id for d in docs}) != len(docs):
        raise CollectionFileError(f"{DOCUMENTS} lists a document twice")
    return docs


def parse_chunks(rows: Any) -> list[Chunk]:
    chunks = _records(rows, CHUNKS, _CHUNK_FIELDS, Chunk, _CHUNK_OPTIONAL)
    for i, c in enumerate(chunks):
        if c.where is not None and not 0 < len(c.where) <= MAX_WHERE:
            raise CollectionFileError(f"{CHUNKS}[{i}]: where must be 1 to {MAX_WHERE} characters")
        pages_ok = (c.page is None and c.page_end is None) or (
            c.page is not None and c.page_end is not None and 1 <= c.page <= c.page_end
        )
        if not (0 <= c.start <= c.end and c.end - c.start == len(c.text)) or not pages_ok:
            raise CollectionFileError(
                f"{CHUNKS}[{i}]: offsets {c.start}..{c.end} or pages {c.page}..{c.page_end} "
                f"don't fit its text of {len(c.text)} characters"
            )
    return chunks


def _records(
    rows: Any,
    name: str,
    spec: dict[str, tuple[type, ...]],
    make: Callable,
    optional: dict[str, tuple[type, ...]] | None = None,
) -> list:
    """Each row of `rows` as `make(**row)`, after checking it has exactly `spec`'s typed fields
    (and of `optional`'s, any that are there)."""
    if not isinstance(rows, list):
        raise CollectionFileError(f"{name} must be a list")
    optional, out = optional or {}, []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not set(spec) <= set(row) <= set(spec) | set(optional):
            keys = sorted(row)[:12] if isinstance(row, dict) else type(row).__name__
            raise CollectionFileError(
                f"{name}[{i}] must have the fields {sorted(spec)}"
                + (f" (and may have {sorted(optional)})" if optional else "")
                + f", got {keys}"
            )
        for key, types in {**spec, **{k: optional[k] for k in row if k in optional}}.items():
            _field(row, key, types, f"{name}[{i}]")
        out.append(make(**row))
    return out


def check_counts(docs: list[DocInfo], chunks: list[Chunk], n_docs: int, n_chunks: int) -> None:
    if len(docs) != n_docs or len(chunks) != n_chunks or sum(d.chunks for d in docs) != n_chunks:
        raise CollectionFileError(
            f"the manifest announces {n_docs} documents and {n_chunks} chunks, but the file "
            f"holds {len(docs)} documents with {sum(d.chunks for d in docs)} chunks "
            f"and {len(chunks)} chunks"
        )
    row = 0
    for d in docs:
        for c in chunks[row : row + d.chunks]:
            if c.doc_id != d.doc_id or c.source != d.source:
                raise CollectionFileError(
                    f"{CHUNKS}[{row}] belongs to {c.source[:80]!r}, not to {d.source[:80]!r}"
                )
            row += 1


def check_array(
    shape: tuple, dtype: np.dtype, fortran_order: bool, n_chunks: int, dim: int
) -> None:
    """The vectors' header: float32, little-endian, C order, one row of `dim` per chunk."""
    if dtype != np.dtype("<f4"):
        raise CollectionFileError(f"{VECTORS} must hold float32 numbers, got {dtype}")
    if tuple(shape) != (n_chunks, dim) or fortran_order:
        raise CollectionFileError(
            f"{VECTORS} has shape {tuple(shape)}; expected ({n_chunks}, {dim}) in C order"
        )


def check_values(vectors: np.ndarray) -> None:
    """Finite numbers, each row of unit length (cosine = inner product)."""
    if not np.isfinite(vectors).all():
        raise CollectionFileError(f"{VECTORS} holds non-finite values (NaN or infinity)")
    norms = np.linalg.norm(vectors, axis=1)
    if len(norms) and np.abs(norms - 1).max() > UNIT_TOLERANCE:
        row = int(np.argmax(np.abs(norms - 1)))
        raise CollectionFileError(f"{VECTORS} row {row} has length {norms[row]:.4f}, not 1")


def is_type(row: dict, key: str, types: tuple[type, ...]) -> bool:
    value = row.get(key)
    return type(value) in types  # exact: a bool is not a count, a float is not an offset


def _field(row: dict, key: str, types: tuple[type, ...], where: str) -> None:
    if not is_type(row, key, types):
        wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise CollectionFileError(f"{where}: {key} must be {wanted}, got {row.get(key)!r:.80}")
