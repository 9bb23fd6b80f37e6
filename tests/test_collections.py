"""One contract suite over every collection backend (as txtai runs one suite over every ANN backend):
the folder index (FAISS + BM25) and Milvus, as Milvus Lite in a file and as a Milvus server that
speaks the network protocol (`milvus-lite server`, started here on a free loopback port).
Brute-force numpy is the reference for dense results."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pymilvus  # a requirement: a broken install fails, never skips
import pytest
from conftest import unit_vectors
from fakes import HashingEmbedder

from qsearch import Engine, IndexFolderError, Settings
from qsearch.store.vectors import DocInfo, VectorIndex, brute_force_search
from qsearch.types import Chunk

DIM = 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """`milvus-lite server` on a free loopback port: the gRPC path a real cluster uses."""
    binary = shutil.which("milvus-lite") or str(Path(sys.executable).parent / "milvus-lite")
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "server",
            "--data-dir",
            str(tmp_path_factory.mktemp("milvus")),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            pymilvus.MilvusClient(uri=uri, timeout=2).list_collections()
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    else:
        process.kill()
        pytest.skip("milvus-lite server did not start")
    yield uri
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(
    params=["folder", "milvus-file", pytest.param("milvus-server", marks=pytest.mark.slow)]
)
def new_index(request, tmp_path):
    """A factory of empty collections of one backend, for the fake embedder's model."""
    from qsearch.store.milvus import MilvusIndex, connect

    meta = {"embed_model": HashingEmbedder.model_name}
    if request.param == "folder":
        return lambda: VectorIndex(DIM, meta=meta)
    uri = (
        str(tmp_path / "milvus.db")
        if request.param == "milvus-file"
        else request.getfixturevalue("milvus_server")
    )
    names = iter(f"c{request.node.nodeid.__hash__() & 0xFFFFFF}_{i}" for i in range(100))
    return lambda: MilvusIndex(connect(uri), next(names), uri=uri, dim=DIM, meta=meta)


def fill(index, n_docs: int = 4, per_doc: int = 25) -> np.ndarray:  # noqa: ANN001
    vectors = unit_vectors(n_docs * per_doc, DIM, seed=5)
    for d in range(n_docs):
        doc_id = f"{d:02x}" + "ab" * 31
        chunks = [
            Chunk(doc_id, f"file{d}.txt", f"passage {d}-{i} word{d}x{i}", i, i + 1)
            for i in range(per_doc)
        ]
        index.add(
            DocInfo(doc_id, f"file{d}.txt", per_doc),
            chunks,
            vectors[d * per_doc : (d + 1) * per_doc],
        )
    return vectors


def test_dense_search_equals_brute_force(new_index):
    index = new_index()
    vectors = fill(index)
    texts = [f"passage {d}-{i} word{d}x{i}" for d in range(4) for i in range(25)]
    queries = unit_vectors(5, DIM, seed=6)
    scores, ids = index.search(queries, 10)
    ref_scores, ref_rows = brute_force_search(vectors, queries, 10)
    assert [[index.chunks[int(i)].text for i in row] for row in ids] == [
        [texts[r] for r in row] for row in ref_rows
    ]
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    np.testing.assert_allclose(index.vectors_of(ids[0][:3]), vectors[ref_rows[0][:3]], atol=1e-6)


def test_documents_remove_and_clear(new_index):
    index = new_index()
    fill(index)
    docs = index.docs
    assert len(index) == 100 and sorted(d.source for d in docs.values()) == [
        f"file{d}.txt" for d in range(4)
    ]
    second = next(d for d in docs.values() if d.source == "file1.txt").doc_id
    assert index.has_doc(second) and index.doc_ids_for_source("file1.txt") == [second]
    assert len(index.doc_chunks(second)) == 25
    assert index.remove(second) == 25 and not index.has_doc(second) and len(index) == 75
    _, ids = index.search(unit_vectors(3, DIM, seed=7), 75)
    assert all(index.chunks[int(i)].doc_id != second for i in ids.ravel() if i >= 0)
    with pytest.raises(KeyError, match="no document"):
        index.remove(second)
    index.clear()
    assert len(index) == 0 and index.docs == {}


def test_a_collection_refuses_another_model(new_index):
    index = new_index()
    index.check_model(HashingEmbedder.model_name, DIM)
    with pytest.raises(
        IndexFolderError, match="built with model 'fake/hashing-embedder' at dimension 32"
    ):
        index.check_model("org/another-model", DIM)
    with pytest.raises(IndexFolderError, match="--dim 32"):
        index.check_model(HashingEmbedder.model_name, 64)


def test_the_engine_over_each_backend(new_index, tmp_path):
    engine = Engine(
        Settings(embed_model=HashingEmbedder.model_name, chunk_tokens=32, chunk_overlap=4),
        embedder=HashingEmbedder(DIM),
        index=new_index(),
    )
    for name, text in {
        "tides.txt": "The moon pulls the oceans into tides twice a day.",
        "bread.txt": "Sourdough rises with wild yeast; part number QX-7781 is the oven valve.",
        "ice.txt": "Glaciers carve valleys as they slowly move.",
    }.items():
        (tmp_path / name).write_text(text)
    files = sorted(tmp_path.glob("*.txt"))
    assert [f.status for f in engine.add_files(files).files] == ["indexed"] * 3
    assert [f.status for f in engine.add_files(files).files] == ["unchanged"] * 3
    (tmp_path / "ice.txt").write_text("Icebergs calve from glaciers into the sea.")
    assert engine.add_files([tmp_path / "ice.txt"]).files[0].status == "replaced"
    assert len(engine.documents()) == 3
    lexical = engine.search("QX-7781", k=3, mode="lexical")
    assert lexical[0].source.endswith("bread.txt") and lexical[0].keyword_score == 1.0
    hybrid = engine.search("icebergs calve", k=3)
    assert hybrid[0].source.endswith("ice.txt") and "Icebergs" in hybrid[0].text
    assert all(
        0 <= h.score <= 1 and h.dense_score is not None and h.keyword_score is not None
        for h in hybrid
    )
    assert engine.search("moon tides", k=1, mode="dense")[0].source.endswith("tides.txt")


def test_milvus_and_the_folder_agree_on_dense_top_10(tmp_path, minilm):
    """The same documents and queries: exact dense search gives the same top 10 on both backends."""

    docs = sorted((Path(__file__).parents[1] / "assets" / "samples").iterdir())
    folder = Engine(Settings(embed_model=minilm.model_name), embedder=minilm)
    milvus = Engine.open_milvus(
        str(tmp_path / "m.db"),
        "samples",
        Settings(embed_model=minilm.model_name),
        create=True,
        embedder=minilm,
    )
    folder.add_files(docs)
    milvus.add_files(docs)
    for query in (
        "how do I treat a burn?",
        "espresso grind size",
        "largest volcano",
        "virtual environments",
    ):
        ours = [(h.source, h.start) for h in milvus.search(query, k=10, mode="dense")]
        assert ours == [(h.source, h.start) for h in folder.search(query, k=10, mode="dense")], (
            query
        )


def test_unreachable_milvus_and_a_missing_collection_are_one_line_errors(tmp_path):
    from qsearch.store.milvus import connect

    started = time.perf_counter()
    port = _free_port()
    with pytest.raises(IndexFolderError, match=f"can't reach Milvus at http://127.0.0.1:{port}"):
        connect(f"http://127.0.0.1:{port}", timeout=3)
    assert time.perf_counter() - started < 15
    with pytest.raises(IndexFolderError, match="has no collection 'nothing': build it with"):
        Engine.open_milvus(str(tmp_path / "empty.db"), "nothing")


def test_cli_and_app_over_a_milvus_collection(tmp_path, minilm_dir):
    import json

    import gradio_client

    import app as qsearch_app

    uri = str(tmp_path / "shared.db")
    cli = [sys.executable, "-m", "qsearch"]
    done = subprocess.run(
        [
            *cli,
            "index",
            "--milvus",
            uri,
            "--collection",
            "team",
            "--embed-model",
            str(minilm_dir),
            *map(str, sorted(qsearch_app.SAMPLES.iterdir())),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "5 indexed" in done.stdout, done.stderr
    found = subprocess.run(
        [*cli, "search", "--milvus", uri, "--collection", "team", "--json", "how to treat a burn"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert json.loads(found.stdout)["hits"][0]["source"].endswith("first-aid-basics.txt"), (
        found.stderr
    )
    missing = subprocess.run(
        [*cli, "search", "--milvus", uri, "--collection", "nope", "x"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        missing.returncode == 2
        and missing.stderr.count("\n") == 1
        and "has no collection 'nope'" in missing.stderr
    )
    demo = qsearch_app.create_app(
        Settings(
            embed_model=str(minilm_dir),
            rerank_model="none/none",
            device="cpu",
            milvus_uri=uri,
            milvus_collection="team",
        )
    )
    _, url, _ = qsearch_app.launch(demo, prevent_thread_lock=True, quiet=True)
    try:
        _, hits = gradio_client.Client(url, verbose=False).predict(
            query="largest volcano", api_name="/search"
        )
        assert hits and hits[0]["source"].endswith("volcanoes-field-guide.pdf")
    finally:
        demo.close()
