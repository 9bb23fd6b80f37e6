"""One file holding a collection, to download and open again without embedding anything.

The file is a zip of data only: `manifest.json` (format, model, dimension, counts),
`vectors.npy` (float32, one L2-normalised row per chunk, read with `allow_pickle=False`),
`documents.json` and `chunks.json` (a document's chunks are consecutive, in the order of
the documents), and `originals/<doc_id>` for the PDFs the index keeps for page views. No
pickle and no FAISS binary is ever read: the index is rebuilt from the vectors. Everything
is checked before anything is built: members, sizes (before reading: zip bombs), model and
dimension, counts against the limits, types, offsets, shapes, dtype, finite and unit rows.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..config import VERSION, model_name
from .portable_checks import (
    CHUNKS,
    DOCUMENTS,
    FORMAT,
    FORMAT_VERSION,
    INT,
    MANIFEST,
    VECTORS,
    CollectionFileError,
    check_array,
    check_counts,
    check_manifest,
    check_values,
    is_type,
    parse_chunks,
    parse_documents,
)
from .vectors import MAX_ORIGINAL_BYTES, DocInfo, VectorIndex

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
