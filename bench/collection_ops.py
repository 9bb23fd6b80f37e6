"""What collection changes cost, and whether one user's parse holds another's search.

1. Clearing a collection of 200 documents / 20k chunks: qsearch (a new index, O(1)) against
   removing the documents one by one with a rebuild each (the naive loop qsearch used to run),
   all 200 rebuilds timed, each over the shrinking index read back in one bulk read.
2. Removing one document from a 100k-chunk flat index: qsearch (FAISS `remove_ids` over the
   document's id range) against rebuilding the index without it.
3. On the real app (bundled MiniLM, CPU): session A uploads a 1,500-page PDF; session B searches
   while A's file is being read. B's search latency, alone and then during A's upload.

    python bench/collection_ops.py --json
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import common
import numpy as np

sys.path.insert(0, str(common.ROOT / "tests"))  # factories: the test suite's PDF maker


def build(n_docs: int, per_doc: int, dim: int, seed: int = 0):  # noqa: ANN201 - VectorIndex
    from qsearch.store.vectors import DocInfo, VectorIndex
    from qsearch.types import Chunk

    rng = np.random.default_rng(seed)
    index = VectorIndex(dim)
    for d in range(n_docs):
        v = rng.standard_normal((per_doc, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        chunks = [Chunk(f"d{d}", f"f{d}.txt", f"chunk {i}", i, i + 1) for i in range(per_doc)]
        index.add(DocInfo(f"d{d}", f"f{d}.txt", per_doc), chunks, v)
    return index


def rebuild_without(index, doc_id: str) -> None:  # noqa: ANN001
    """The naive removal: read back every vector (one bulk read), keep the others, build anew."""
    import faiss

    rows = np.array([c.doc_id != doc_id for c in index.chunks.values()])
    fresh = faiss.IndexFlatIP(index.dim)
    fresh.add(index.vectors()[rows])


def naive_clear(index) -> None:  # noqa: ANN001
    """The honest naive clear: remove the documents one by one, each removal rebuilding the
    (shrinking) index from its current vectors, read back in one bulk read."""
    import faiss

    current = faiss.IndexFlatIP(index.dim)
    current.add(index.vectors())
    doc_of = np.array([c.doc_id for c in index.chunks.values()])
    for doc_id in list(index.docs):
        keep = doc_of != doc_id
        vectors = current.reconstruct_n(0, current.ntotal)[keep]
        doc_of = doc_of[keep]
        current = faiss.IndexFlatIP(index.dim)
        current.add(vectors)
    assert current.ntotal == 0


def timed(fn, repeats: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - started))
    return out


def compared(fast: list[float], naive: list[float], name: str) -> dict:
    """Both times and their ratio, by fastest round (timeit's rule) and by median, side by side."""
    return {
        "qsearch_ms_fastest": min(fast),
        "qsearch_ms_median": statistics.median(fast),
        f"{name}_ms_fastest": min(naive),
        f"{name}_ms_median": statistics.median(naive),
        "ratio_fastest": min(naive) / min(fast),
        "ratio_median": statistics.median(naive) / statistics.median(fast),
        "qsearch_ms_all": fast,
        f"{name}_ms_all": naive,
    }


def clear_and_remove(dim: int, repeats: int) -> dict:
    clear_ms, naive_clear_ms = [], []
    for _ in range(repeats):
        index = build(200, 100, dim)
        clear_ms += timed(index.clear, 1)
        index = build(200, 100, dim)
        naive_clear_ms += timed(functools.partial(naive_clear, index), 1)  # all 200 rebuilds
    big = build(1000, 100, dim)
    remove_ms = []
    for d in range(repeats):
        started = time.perf_counter()
        big.remove(f"d{d}")
        remove_ms.append(1000 * (time.perf_counter() - started))
    naive_remove_ms = timed(lambda: rebuild_without(big, "d999"), repeats)
    return {
        "dim": dim,
        "clear_200_docs_20k_chunks": compared(clear_ms, naive_clear_ms, "naive_one_by_one"),
        "remove_one_doc_from_100k_chunks": compared(remove_ms, naive_remove_ms, "naive_rebuild"),
    }


def search_during_parse() -> dict:
    import gradio_client
    from factories import make_pdf

    import app
    from qsearch import Settings
    from qsearch.models.loading import bundled_small_model

    folder = Path(tempfile.mkdtemp())
    pdf = folder / "long-report.pdf"
    pdf.write_bytes(
        make_pdf([f"Page {i} of the long report on tides and harbour charts." for i in range(1500)])
    )
    small = app.SAMPLES / "first-aid-basics.txt"
    demo = app.create_app(
        Settings(embed_model=str(bundled_small_model()), rerank_model="none/none", device="cpu")
    )
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    try:
        a, b = gradio_client.Client(url, verbose=False), gradio_client.Client(url, verbose=False)
        b.predict([gradio_client.handle_file(str(small))], api_name="/add_documents")
        started = time.perf_counter()
        b.predict(query="how do I treat a burn?", top_k=3, rerank=False, api_name="/search")
        alone_s = time.perf_counter() - started
        parse: dict[str, float] = {}

        def upload() -> None:
            started = time.perf_counter()
            a.predict([gradio_client.handle_file(str(pdf))], api_name="/add_documents")
            parse["upload_s"] = time.perf_counter() - started

        thread = threading.Thread(target=upload)
        thread.start()
        time.sleep(
            0.5
        )  # A's file is uploaded and being read by now (reading 1,500 pages takes seconds)
        started = time.perf_counter()
        hits = json.loads(
            b.predict(query="how do I treat a burn?", top_k=3, rerank=False, api_name="/search")
        )
        search_s = time.perf_counter() - started
        still_parsing = thread.is_alive()
        thread.join()
        return {
            "search_s": search_s,
            "search_alone_s": alone_s,
            "waited_s": search_s - alone_s,
            "a_upload_still_running_when_b_answered": still_parsing,
            "a_upload_s": parse["upload_s"],
            "b_found": hits[0]["source"] if hits else None,
        }
    finally:
        demo.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-app", action="store_true", help="skip the app measurement (3)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    report = {"benchmark": "collection_ops", **clear_and_remove(args.dim, args.repeats)}
    report["note"] = "2 shared CPU cores, other jobs running: noisy; fastest rounds and medians"
    if not args.no_app:
        report["search_while_another_session_parses"] = search_during_parse()
    report["environment"] = common.environment("cpu")
    print(json.dumps(report, indent=1) if not args.json else json.dumps(report))


if __name__ == "__main__":
    main()
