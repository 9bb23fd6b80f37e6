"""Keeping a collection: the one-file download (store/portable.py) beside the saved folder
(web/keeping.py's store of libraries), on the same synthetic collection: size on disk, write
and read seconds (median of --repeats). Reading the file checks every part and rebuilds the
FAISS index; loading the folder reads FAISS's own file and copies into a new engine.

    python bench/collection_file.py --sizes 2000,20000 --dim 1024 --json
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import common
import numpy as np
from collection_backends import documents


class _Embedder:
    """What CollectionStore.load asks of an engine's embedder: its model name and dimension."""

    model_name, max_tokens, supports_instruction = "bench/model", 512, False

    def __init__(self, dim: int):
        self.dim = dim


def _median(run, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(n: int, dim: int, repeats: int) -> dict:
    from qsearch import Engine, Settings
    from qsearch.library import Library
    from qsearch.store.portable import read_collection, write_collection
    from qsearch.store.vectors import VectorIndex
    from qsearch.web.keeping import CollectionStore

    index = VectorIndex(dim, meta={"embed_model": "bench/model"})
    text = "word " * 200  # about a 256-token chunk's worth of characters
    for doc, chunks, vectors in documents(n, dim):
        chunks = [c.__class__(c.doc_id, c.source, text, 0, len(text)) for c in chunks]
        index.add(doc, chunks, vectors)
    embedder = _Embedder(dim)
    engine = Engine(Settings(), embedder=embedder, index=index)
    library = Library(lambda: engine)  # its one collection: this engine
    with tempfile.TemporaryDirectory() as tmp:
        path, token = Path(tmp) / "c.zip", secrets.token_urlsafe(32)
        store = CollectionStore(Path(tmp) / "data", 3600)
        limits = {"max_files": n, "max_chunks": n}
        opened = read_collection(
            write_collection(index, path), embed_model="bench/model", dim=dim, **limits
        )
        assert np.array_equal(opened.vectors(), index.vectors())
        store.save(token, library)
        folder_bytes = sum(f.stat().st_size for f in store.root.rglob("*") if f.is_file())
        new_engine = lambda: Engine(Settings(), embedder=embedder)  # noqa: E731
        return {
            "chunks": n,
            "dim": dim,
            "file_mb": round(path.stat().st_size / 2**20, 2),
            "folder_mb": round(folder_bytes / 2**20, 2),
            "file_write_s": _median(lambda: write_collection(index, path), repeats),
            "file_read_s": _median(
                lambda: read_collection(path, embed_model="bench/model", dim=dim, **limits),
                repeats,
            ),
            "folder_save_s": _median(lambda: _resave(store, token, library), repeats),
            "folder_load_s": _median(lambda: store.load(token, new_engine).engine(), repeats),
        }


def _resave(store, token: str, library) -> None:  # noqa: ANN001
    """A save that writes the collection again (a library saves only what changed)."""
    for entry in library._entries:
        entry.saved = None
    store.save(token, library)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2000,20000")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    report = {
        "benchmark": "collection_file",
        "results": [measure(n, args.dim, args.repeats) for n in sizes],
        "environment": common.environment("cpu"),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
