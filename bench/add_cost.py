"""The cost of adding one file to a collection that holds 100 documents and one that holds 17,000,
for the FAISS folder and for Milvus Lite, through `Engine.add_files` (read, chunk, embed, look up
the older version of the source, add). Adding should cost the same at both sizes.

The embedder is a fast fake (words hashed into 64 signed buckets, L2-normalised: no model), so
what is timed is qsearch's own work and the collection's, not a model's. The collections are
filled with one-chunk documents through the store directly (`Collection.add` for the folder; for
Milvus, the very rows `MilvusIndex.add` writes, upserted in bulk, then flushed), since filling
17,000 files through the engine would time the filling, not the adding.

    python bench/add_cost.py --sizes 100,17000 --files 20 --json
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import common
import numpy as np

DIM = 64
WORD = re.compile(r"\S+")


class Tokenizer:
    """What chunking needs of a tokenizer: offsets of each token (here: each word)."""

    def __call__(self, texts: list[str], **_: Any) -> dict:
        return {"offset_mapping": [[m.span() for m in WORD.finditer(t)] for t in texts]}


class FakeEmbedder:
    """Bag of words hashed into DIM signed buckets, L2-normalised: microseconds per text."""

    model_name, supports_instruction, max_tokens, dim = "fake/hashing-embedder", False, 512, DIM
    tokenizer = Tokenizer()

    def encode(self, texts: Sequence[str], *, progress: Callable | None = None, **_: Any):  # noqa: ANN201
        out = np.zeros((len(texts), DIM), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                out[row, digest[0] % DIM] += 1.0 if digest[1] % 2 else -1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        if progress is not None:
            progress(len(texts), len(texts))
        return out


def filler(n: int) -> list[tuple[Any, Any, np.ndarray]]:
    """n one-chunk documents: (DocInfo, Chunk, vector)."""
    from qsearch.store.base import DocInfo
    from qsearch.types import Chunk

    texts = [f"line {d}: the filler document number {d} of the collection" for d in range(n)]
    vectors = FakeEmbedder().encode(texts)
    rows = []
    for d, text in enumerate(texts):
        doc_id = hashlib.sha256(text.encode()).hexdigest()
        source = f"filler/f{d}.txt"
        rows.append(
            (DocInfo(doc_id, source, 1), Chunk(doc_id, source, text, 0, len(text)), vectors[d])
        )
    return rows


def fill(index: Any, n: int) -> None:
    """Put n documents in `index` (bulk rows for Milvus), then make them durable."""
    from qsearch.store.milvus import MilvusIndex
    from qsearch.store.milvus_layout import source_row
    from qsearch.store.milvus_rows import chunk_row, doc_row

    rows = filler(n)
    if isinstance(index, MilvusIndex):  # the rows MilvusIndex.add writes, 2,000 at a time
        for start in range(0, n, 2000):
            part = rows[start : start + 2000]
            index.client.upsert(index.name, [chunk_row(0, c, v.tolist()) for _, c, v in part])
            index.client.upsert(index.docs_name, [doc_row(d) for d, _, _ in part])
            sources = [source_row(d.source, [d.doc_id]) for d, _, _ in part]
            index.client.upsert(index.sources.name, sources)
        index.save()
    else:
        for doc, chunk, vector in rows:
            index.add(doc, [chunk], vector[None, :])


def time_adds(engine: Any, folder: Path, files: int) -> dict[str, Any]:
    """Add `files` new one-line files one call each, then change one 5 times: ms per file."""
    new, collection = [], []
    for i in range(files + 1):
        path = folder / f"new{i}.txt"
        path.write_text(f"A new note number {i} about tides, bread and glaciers.")
        started = time.perf_counter()
        parsed, _ = engine.read_files([path])
        read = time.perf_counter()
        engine.embed_and_add(parsed)
        done = time.perf_counter()
        if i:  # the first add warms the reader processes up
            new.append(1000 * (done - started))
            collection.append(1000 * (done - read))
    replace = []
    for i in range(5):  # a changed file replaces its older version
        path.write_text(f"The note changed ({i}): now it is about volcanoes.")
        started = time.perf_counter()
        status = engine.add_files([path]).files[0].status
        replace.append(1000 * (time.perf_counter() - started))
        assert status == "replaced", status
    return {
        "add_ms_median": statistics.median(new),
        "add_ms_min": min(new),
        "embed_and_add_ms_median": statistics.median(collection),
        "replace_ms_median": statistics.median(replace),
    }


def run(backend: str, size: int, files: int) -> dict[str, Any]:
    from qsearch import Engine, Settings
    from qsearch.store.milvus import MilvusIndex, connect
    from qsearch.store.vectors import VectorIndex

    work = Path(tempfile.mkdtemp())
    meta = {"embed_model": FakeEmbedder.model_name}
    if backend == "folder":
        index = VectorIndex(DIM, meta=meta)
    else:
        uri = str(work / "bench.db")
        index = MilvusIndex(connect(uri), f"add{size}", uri=uri, dim=DIM, meta=meta)
    started = time.perf_counter()
    fill(index, size)
    fill_s = time.perf_counter() - started
    settings = Settings(embed_model=FakeEmbedder.model_name, device="cpu")
    engine = Engine(settings, embedder=FakeEmbedder(), index=index)
    result = {"backend": backend, "documents": size, "fill_s": fill_s}
    return {**result, **time_adds(engine, work, files), "documents_after": len(index.docs)}


def cpu() -> dict[str, Any]:
    """The CPU's model name and the vector extensions that matter here (from /proc/cpuinfo)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = re.search(r"model name\s*:\s*(.+)", text)
    wanted = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")
    flags = set(re.search(r"flags\s*:\s*(.+)", text).group(1).split()) if text else set()
    return {"model": model.group(1) if model else None, "flags": [f for f in wanted if f in flags]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,17000")
    p.add_argument("--files", type=int, default=20, help="files added one by one at each size")
    p.add_argument("--backends", default="folder,milvus-lite")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = []
    for backend in args.backends.split(","):
        for size in map(int, args.sizes.split(",")):
            row = run(backend, size, args.files)
            rows.append(row)
            print(
                f"{backend:>12} {size:>6} docs: add {row['add_ms_median']:.1f} ms/file (median), "
                f"of which collection {row['embed_and_add_ms_median']:.1f} ms; "
                f"replace {row['replace_ms_median']:.1f} ms (median of 5)"
            )
    report = {
        "benchmark": "add_cost",
        "embedder": f"fake: words hashed into {DIM} signed buckets (no model)",
        "files_per_size": args.files,
        "results": rows,
        "note": "2 shared cores, other engineers' jobs running: noisy. Milvus Lite is embedded.",
        "environment": {**common.environment("cpu"), "cpu_detail": cpu()},
        "store_versions": {p: md.version(p) for p in ("pymilvus", "milvus-lite", "bm25s")},
    }
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
