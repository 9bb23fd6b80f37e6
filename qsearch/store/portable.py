"""One file holding a collection, to download and open again without embedding anything.

The file is a zip of data only: `manifest.json` (format, model, dimension, counts),
`vectors.npy` (float32, one L2-normalised row per chunk, read with `allow_pickle=False`),
`documents.json` and `chunks.json` (a document's chunks are consecutive, in the order of
the documents), and `originals/<doc_id>` for the PDFs the index keeps for page views. No
pickle and no FAISS binary is ever read: the index is rebuilt from the vectors. Everything
is checked before anything is built: members, sizes (before reading: zip bombs), the
manifest against this server's model and limits, documents and chunks field by field (exact
types), the vectors' dtype and shape, finite and unit rows. Each refusal is one line.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import VERSION, model_name, same_model
from ..types import Chunk
from .base import DocInfo
from .vectors import MAX_ORIGINAL_BYTES, VectorIndex

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


ORIGINALS = "originals/"
MAX_MANIFEST_BYTES = 64 * 1024
JSON_BYTES_PER_CHUNK = 64 * 1024  # a chunk's text and fields, generously
JSON_BYTES_PER_DOC = 64 * 1024  # a document's fields (its OCR'd pages list can be long)
NPY_HEADER_BYTES = 4096

__all__ = ["CollectionFileError", "read_collection", "write_collection"]


def write_collection(index: VectorIndex, path: str | Path) -> Path:
    """Write `index` as one collection file at `path` (replaced atomically); returns the path."""
    model = index.meta.get("embed_model")
    if not model:
        raise ValueError("the collection records no embedding model, so it can't be written")
    for _ in range(5):  # another thread may change the index meanwhile: take a consistent copy
        before = index.changes
        chunks, vectors = dict(index.chunks), index.vectors()
        docs, originals = list(index.docs.values()), dict(index.originals)
        if index.changes == before and len(vectors) == len(chunks):
            break
    else:
        raise RuntimeError("the collection kept changing while it was being written; try again")
    rows: dict[str, list[int]] = {d.doc_id: [] for d in docs}
    for row, chunk in enumerate(chunks.values()):
        rows[chunk.doc_id].append(row)
    order = [r for d in docs for r in rows[d.doc_id]]
    chunk_list = list(chunks.values())
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "embed_model": model_name(model) if Path(model).expanduser().exists() else model,
        "dim": index.dim,
        "documents": len(docs),
        "chunks": len(order),
        "chunk_tokens": index.meta.get("chunk_tokens"),
        "chunk_overlap": index.meta.get("chunk_overlap"),
        "qsearch": VERSION,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    npy = io.BytesIO()
    np.save(npy, np.ascontiguousarray(vectors[order], dtype="<f4"), allow_pickle=False)
    members: dict[str, bytes | str] = {
        MANIFEST: json.dumps(manifest, indent=1, ensure_ascii=False),
        DOCUMENTS: json.dumps([{**vars(d), "chunks": len(rows[d.doc_id])} for d in docs]),
        CHUNKS: json.dumps([chunk_list[r].to_dict() for r in order], ensure_ascii=False),
        VECTORS: npy.getvalue(),
        **{f"{ORIGINALS}{doc_id}": data for doc_id, data in originals.items()},
    }
    return _write_zip(Path(path), members)


def _write_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            for name, data in members.items():
                stored = name == VECTORS or name.startswith(ORIGINALS)  # floats, PDFs: no gain
                z.writestr(name, data, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_collection(
    path: str | Path,
    *,
    embed_model: str,
    dim: int,
    max_files: int | None,
    max_chunks: int | None,
    kind: str = "flat",
) -> VectorIndex:
    """The collection in the file at `path`, as a new index for `embed_model` at `dim`.

    Raises CollectionFileError (one line) for anything wrong; nothing outside is changed."""
    try:
        with zipfile.ZipFile(path) as z:
            members = _members(z)
            manifest = _json(z, members, MANIFEST, MAX_MANIFEST_BYTES)
            n_docs, n_chunks = check_manifest(manifest, embed_model, dim, max_files, max_chunks)
            docs = parse_documents(_json(z, members, DOCUMENTS, JSON_BYTES_PER_DOC * (n_docs + 1)))
            chunks = parse_chunks(_json(z, members, CHUNKS, JSON_BYTES_PER_CHUNK * (n_chunks + 1)))
            check_counts(docs, chunks, n_docs, n_chunks)
            data = _read(z, members, VECTORS, n_chunks * dim * 4 + NPY_HEADER_BYTES)
            vectors = _vectors(data, n_chunks, dim)
            originals = _originals(z, members, docs)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as e:
        raise CollectionFileError(f"not a readable collection file (a zip): {e}") from None
    except NotImplementedError as e:  # a compression method zipfile lacks
        raise CollectionFileError(
            f"the collection file uses an unsupported zip feature: {e}"
        ) from None
    meta = {"embed_model": embed_model, "embed_dim": dim}
    meta |= {k: manifest[k] for k in ("chunk_tokens", "chunk_overlap") if is_type(manifest, k, INT)}
    index = VectorIndex(dim, kind, meta=meta)
    row = 0
    for doc in docs:
        end = row + doc.chunks
        index.add(doc, chunks[row:end], vectors[row:end], original=originals.get(doc.doc_id))
        row = end
    return index


def _members(z: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = z.infolist()
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise CollectionFileError("the collection file names a member twice")
    for name in names:
        if name not in (MANIFEST, VECTORS, DOCUMENTS, CHUNKS) and not name.startswith(ORIGINALS):
            raise CollectionFileError(f"unexpected member {name[:80]!r} in the collection file")
    for name in (MANIFEST, VECTORS, DOCUMENTS, CHUNKS):
        if name not in names:
            raise CollectionFileError(f"the collection file has no {name}: is it a collection?")
    return {i.filename: i for i in infos}


def _read(z: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str, limit: int) -> bytes:
    """A member's bytes, refused before reading when it says it is over `limit` (and after)."""
    info = members[name]
    if info.file_size > limit:
        raise CollectionFileError(
            f"{name} unpacks to {info.file_size:,} bytes, over the {limit:,} its counts allow"
        )
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise CollectionFileError(f"{name} unpacks to over {limit:,} bytes")
    return data


def _json(z: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str, limit: int) -> Any:
    try:
        return json.loads(_read(z, members, name, limit).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CollectionFileError(f"{name} is not valid JSON: {e}") from None


def _vectors(data: bytes, n_chunks: int, dim: int) -> np.ndarray:
    """The array, its header (dtype, shape) checked before any of it is loaded."""
    fmt = np.lib.format
    if not data.startswith(fmt.MAGIC_PREFIX):
        raise CollectionFileError(f"{VECTORS} is not a .npy array")
    f = io.BytesIO(data)
    try:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        check_array(shape, dtype, fortran_order, n_chunks, dim)
        vectors = np.load(io.BytesIO(data), allow_pickle=False)  # never unpickles
    except ValueError as e:
        raise CollectionFileError(f"{VECTORS} can't be read as plain numbers: {e}") from None
    check_array(vectors.shape, vectors.dtype, False, n_chunks, dim)
    check_values(vectors)
    return vectors


def _originals(
    z: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], docs: list[DocInfo]
) -> dict[str, bytes]:
    pdfs = {d.doc_id for d in docs if d.kind == "pdf"}
    out = {}
    for name in members:
        if name.startswith(ORIGINALS):
            doc_id = name[len(ORIGINALS) :]
            if doc_id not in pdfs:
                raise CollectionFileError(f"{name[:80]} is not the original of a PDF listed")
            out[doc_id] = _read(z, members, name, MAX_ORIGINAL_BYTES)
            if not out[doc_id].startswith(b"%PDF-"):
                raise CollectionFileError(f"{name} is not a PDF")
    return out


# --- the checks of each part, once parsed ---------------------------------------------------


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
