"""The folder index on disk: what `VectorIndex.save` writes and `VectorIndex.load` reads.

A version folder holds `index.faiss` (the FAISS index with its ids), `chunks.jsonl` (one
chunk per line with its id), `docs.json` (each document with its id range), `originals/`
(small PDFs, for page views) and `manifest.json` (format, model, versions). `folders.py`
writes it as a new version and switches to it atomically.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..types import Chunk
from .base import CollectionError, DocInfo
from .folders import POINTER, current_version, write_version

if TYPE_CHECKING:
    from .vectors import VectorIndex

FORMAT_VERSION = 2  # 2: FAISS ids (IndexIDMap2); 1 (rows, no ids) still loads
_NOT_META = ("format_version", "dim", "kind", "chunks", "documents", "saved", "next_id")


def manifest(index: VectorIndex) -> dict[str, Any]:
    """What the folder says about itself: format, sizes, the model and the library versions."""
    import faiss

    return {
        "format_version": FORMAT_VERSION,
        "dim": index.dim,
        "kind": index.kind,
        "chunks": len(index.chunks),
        "documents": len(index.docs),
        "next_id": index._next_id,
        **index.meta,
        "versions": {
            "faiss": faiss.__version__,
            "numpy": np.__version__,
            **index.meta.get("versions", {}),
        },
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save(index: VectorIndex, folder: str | Path) -> Path:
    """Write a complete new version of `folder`, then switch to it atomically."""
    import faiss

    docs = [{**vars(d), "ids": list(index._ids[d.doc_id])} for d in index.docs.values()]
    files: dict[str, bytes | str] = {
        "index.faiss": faiss.serialize_index(index._cpu).tobytes(),
        "chunks.jsonl": "".join(
            json.dumps({"id": i, **c.to_dict()}, ensure_ascii=False) + "\n"
            for i, c in index.chunks.items()
        ),
        "docs.json": json.dumps(docs, ensure_ascii=False),
        **{f"originals/{doc_id}": data for doc_id, data in index.originals.items()},
        "manifest.json": json.dumps(manifest(index), indent=2, ensure_ascii=False),
    }
    return write_version(folder, files)


def load(cls: type[VectorIndex], folder: str | Path, use_gpu: bool | None) -> VectorIndex:
    """The index saved in `folder`; CollectionError naming the folder when it can't be used."""
    folder = Path(folder)
    version = current_version(folder)
    if version is None:
        raise CollectionError(f"{folder} holds no qsearch index (no {POINTER} file)")
    try:
        found = json.loads((version / "manifest.json").read_text())
        if found.get("format_version") not in (1, FORMAT_VERSION):
            raise CollectionError(
                f"{folder}: index format {found.get('format_version')} is not "
                f"supported (this qsearch reads formats 1 and {FORMAT_VERSION})"
            )
        meta = {k: v for k, v in found.items() if k not in _NOT_META}
        index = cls(int(found["dim"]), found["kind"], meta=meta, use_gpu=use_gpu)
        _read(index, version, found)
    except CollectionError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CollectionError(f"{folder}: the index is damaged or incomplete ({e})") from None
    if index._cpu.ntotal != len(index.chunks) or index._cpu.d != index.dim:
        raise CollectionError(
            f"{folder}: the index is inconsistent ({index._cpu.ntotal} vectors, "
            f"{len(index.chunks)} chunks)"
        )
    return index


def _read(index: VectorIndex, version: Path, found: dict[str, Any]) -> None:
    import faiss

    stored = faiss.read_index(str(version / "index.faiss"))
    with open(version / "chunks.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    docs = json.loads((version / "docs.json").read_text(encoding="utf-8"))
    if found["format_version"] == 1:
        stored = _ids_from_rows(index, stored, rows, docs)
    originals = version / "originals"
    index._restore(
        stored,
        {r.pop("id"): Chunk.from_dict(r) for r in rows},
        {d["doc_id"]: tuple(d.pop("ids")) for d in docs},
        [DocInfo(**d) for d in docs],
        {p.name: p.read_bytes() for p in originals.iterdir()} if originals.is_dir() else {},
        found.get("next_id"),
    )


def _ids_from_rows(index: VectorIndex, stored: Any, rows: list[dict], docs: list[dict]) -> Any:
    """Format 1 (rows, no ids): a document's chunks are one run of rows; give them ids."""
    for i, r in enumerate(rows):
        r["id"] = i
    runs: dict[str, list[int]] = {}
    for r in rows:
        runs.setdefault(r["doc_id"], []).append(r["id"])
    for d in docs:
        ids = runs.get(d["doc_id"], [])
        d["ids"] = [ids[0], ids[-1] + 1] if ids else [len(rows), len(rows)]
    vectors = (
        stored.reconstruct_n(0, stored.ntotal) if stored.ntotal else np.zeros((0, index.dim), "f4")
    )
    fresh = index._new_faiss()
    fresh.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    return fresh
