"""One contract suite over every collection backend (as txtai runs one suite over every ANN
backend): the folder index (FAISS + BM25) and Milvus, as Milvus Lite in a file and as a Milvus
server that speaks the network protocol (`milvus-lite server`, started on a free loopback port).
Past construction, every test uses a collection only through `store/base.py`'s face.
Brute-force numpy is the reference for dense results. Milvus' own cases: test_milvus.py."""

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

from qsearch import Collection, CollectionError, Engine, IndexFolderError, Settings
from qsearch.store.base import DocInfo
from qsearch.store.vectors import VectorIndex, brute_force_search
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


class Backend:
    """Makes empty collections of one backend for the fake embedder's model, and reopens them."""

    def __init__(self, kind: str, where: str | Path, test: str = ""):
        self.kind, self.where, self.made = kind, where, 0
        self.prefix = f"c{abs(hash(test)) & 0xFFFFFF}"  # one server holds every test's collections

    def new(self) -> Collection:
        from qsearch.store.milvus import MilvusIndex, connect

        meta = {"embed_model": HashingEmbedder.model_name}
        self.made += 1
        if self.kind == "folder":
            return VectorIndex(DIM, meta=meta)
        name = f"{self.prefix}_{self.made}"
        return MilvusIndex(connect(str(self.where)), name, uri=str(self.where), dim=DIM, meta=meta)

    def reopen(self, index: Collection, folder: Path) -> Collection:
        """Save `index`, then open it again through the contract's `load`."""
        index.save(folder)
        if self.kind == "folder":
            return type(index).load(folder)
        return type(index).load(self.where, collection=index.name)


@pytest.fixture(
    params=["folder", "milvus-file", pytest.param("milvus-server", marks=pytest.mark.slow)]
)
def backend(request, tmp_path) -> Backend:
    if request.param == "folder":
        return Backend("folder", tmp_path / "ix")
    if request.param == "milvus-file":
        return Backend("milvus", tmp_path / "milvus.db")
    return Backend("milvus", request.getfixturevalue("milvus_server"), request.node.nodeid)


@pytest.fixture
def new_index(backend):
    return backend.new


def fill(index, n_docs: int = 4, per_doc: int = 25) -> np.ndarray:  # noqa: ANN001
    vectors = unit_vectors(n_docs * per_doc, DIM, seed=5)
    for d in range(n_docs):
        doc_id = f"{d:02x}" + "ab" * 31
        chunks = [  # every other chunk says where it lies, as a sheet's rows do
            Chunk(doc_id, f"file{d}.txt", f"passage {d}-{i} word{d}x{i}", i, i + 1, where=where)
            for i in range(per_doc)
            for where in [f'sheet "S{d}", rows {i}\u2013{i + 1}' if i % 2 else None]
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
    assert isinstance(index, Collection) and len(index) == 0 and index.count() == 0
    fill(index)
    docs = index.docs
    assert len(index) == 100 and sorted(d.source for d in docs.values()) == [
        f"file{d}.txt" for d in range(4)
    ]
    second = next(d for d in docs.values() if d.source == "file1.txt").doc_id
    assert index.has_doc(second) and index.doc_ids_for_source("file1.txt") == [second]
    assert index.doc_ids_for_sources(["file1.txt", "nothing.txt", "file1.txt"]) == {
        "file1.txt": [second]
    }
    assert index.docs[second].source == "file1.txt" and index.docs.get("f" * 64) is None
    assert len(index.doc_chunks(second)) == 25
    assert index.remove(second) == 25 and not index.has_doc(second) and len(index) == 75
    assert index.doc_ids_for_source("file1.txt") == [] and len(index.docs) == 3
    _, ids = index.search(unit_vectors(3, DIM, seed=7), 75)
    assert all(index.chunks[int(i)].doc_id != second for i in ids.ravel() if i >= 0)
    with pytest.raises(KeyError, match="no document"):
        index.remove(second)
    index.clear()
    assert len(index) == 0 and index.docs == {} and index.doc_ids_for_source("file2.txt") == []
    fill(index, n_docs=1)
    with pytest.raises(ValueError, match="already in"):
        fill(index, n_docs=1)


def test_keyword_search_and_its_bound(new_index):
    """BM25 through the contract: exact terms found, scores on a 0..1 scale by the bound."""
    index = new_index()
    fill(index)
    found = index.keyword_search("word2x7", 5)
    assert [index.chunks[int(i)].text for i in found.ids] == ["passage 2-7 word2x7"]
    assert found.scores[0] > 0 and 0 < found.scores[0] / found.bound <= 1.0 + 1e-6
    assert found.scores_of([int(found.ids[0]), -5]) == [pytest.approx(float(found.scores[0])), 0]
    assert len(index.keyword_search("absent words", 5).ids) == 0
    index.remove(index.doc_ids_for_source("file2.txt")[0])
    assert len(index.keyword_search("word2x7", 5).ids) == 0, "removed chunks are not found"


def test_saved_and_loaded_through_the_contract(backend, tmp_path):
    index = backend.new()
    fill(index, n_docs=3)
    again = backend.reopen(index, tmp_path / "saved")
    assert isinstance(again, Collection) and len(again) == 75
    assert sorted(d.source for d in again.docs.values()) == ["file0.txt", "file1.txt", "file2.txt"]
    doc = again.doc_ids_for_source("file1.txt")[0]
    assert [c.text for c in again.doc_chunks(doc)] == [
        f"passage 1-{i} word1x{i}" for i in range(25)
    ]
    assert [c.where for c in again.doc_chunks(doc)] == [
        f'sheet "S1", rows {i}\u2013{i + 1}' if i % 2 else None for i in range(25)
    ], "each chunk's where is stored and read back"
    again.check_model(HashingEmbedder.model_name, DIM)
    with pytest.raises(CollectionError):
        again.check_model("other/model", DIM)


def test_listings_are_paged_and_whole(backend, monkeypatch):
    """Listings page (Milvus caps one query at 16,384 rows): with 4-row pages, all 30 come back."""
    from qsearch.store import milvus_rows

    monkeypatch.setattr(milvus_rows, "PAGE", 4)
    index = backend.new()
    fill(index, n_docs=3, per_doc=10)
    assert len(index.docs) == 3 and len(list(index.docs)) == 3 and len(index.docs.values()) == 3
    assert len(set(index.chunks)) == 30 and len(index) == 30
    assert all(len(index.doc_chunks(d)) == 10 for d in index.docs)


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
    texts = [c.text for d in engine.documents() for c in engine.index.doc_chunks(d.doc_id)]
    assert "Icebergs calve from glaciers into the sea." in texts
    assert not any("valleys" in t for t in texts), "the old version of ice.txt is gone"
    assert not any("valleys" in h.text for h in engine.search("glaciers carve valleys", k=5))
    lexical = engine.search("QX-7781", k=3, mode="lexical")
    assert lexical[0].source.endswith("bread.txt") and lexical[0].keyword_score == 1.0
    hybrid = engine.search("icebergs calve", k=3)
    assert hybrid[0].source.endswith("ice.txt") and "Icebergs" in hybrid[0].text
    assert all(
        0 <= h.score <= 1 and h.dense_score is not None and h.keyword_score is not None
        for h in hybrid
    )
    assert engine.search("moon tides", k=1, mode="dense")[0].source.endswith("tides.txt")


# --- search within: filtered before ranking, checked against brute force ----------------------


def _doc_id(d: int) -> str:
    return f"{d:02x}" + "ab" * 31  # as fill() names them


@pytest.mark.parametrize("docs", [[1], [0, 3], [2, 3, 1]])
def test_dense_search_within_documents_equals_brute_force_over_them(new_index, docs):
    """Filtered before ranking: the k best of the chosen documents' chunks exactly, and k of them
    whenever they hold k, however far down the unfiltered ranking they lie."""
    index = new_index()
    vectors = fill(index)
    texts = [f"passage {d}-{i} word{d}x{i}" for d in range(4) for i in range(25)]
    rows = np.array([d * 25 + i for d in docs for i in range(25)])
    queries = unit_vectors(4, DIM, seed=11)
    k = 25 * len(docs)  # every chunk they have: a post-filter of any top list comes up short
    scores, ids = index.search(queries, k, within={_doc_id(d) for d in docs})
    ref_scores, ref_rows = brute_force_search(vectors[rows], queries, k)
    assert ids.shape == (4, k) and (ids >= 0).all(), "k chunks exist, so k come back"
    assert [[index.chunks[int(i)].text for i in row] for row in ids] == [
        [texts[rows[r]] for r in row] for row in ref_rows
    ]
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    few_scores, few = index.search(queries, 5, within={_doc_id(d) for d in docs})
    np.testing.assert_allclose(few_scores, ref_scores[:, :5], atol=1e-5)
    assert index.search(queries, 5, within=set())[1].size == 0, "no document: nothing"
    assert index.search(queries, 5, within={"f" * 64})[1].size == 0, "unknown ids: nothing"


def test_keyword_search_within_documents_equals_the_whole_ranking_narrowed(new_index):
    """BM25 with the other documents left out: only the chosen documents' chunks, k of them when
    they have k, ranked as the whole ranking ranks them. (The folder masks scores, so they equal
    the unfiltered ones; Milvus Lite counts a term's IDF over the documents searched, so the
    scores are compared on the keyword scale, relative to the best: a one-term query's IDF, a
    constant factor, cancels there.)"""
    index = new_index()
    fill(index)
    chosen = {_doc_id(1), _doc_id(3)}
    every = index.keyword_search("passage", 100)
    assert len(every.ids) == 100, "'passage' is in every chunk"
    ref = sorted(
        (
            float(s)
            for i, s in zip(every.ids, every.scores)
            if index.chunks[int(i)].doc_id in chosen
        ),
        reverse=True,
    )
    found = index.keyword_search("passage", 30, within=chosen)
    assert len(found.ids) == 30 and {index.chunks[int(i)].doc_id for i in found.ids} <= chosen
    np.testing.assert_allclose(found.scores / found.scores[0], np.array(ref[:30]) / ref[0], 1e-5)
    if isinstance(index, VectorIndex):
        np.testing.assert_allclose(found.scores, ref[:30], rtol=1e-5)
    exact = index.keyword_search("word1x7 word2x7", 5, within={_doc_id(2)})
    assert [index.chunks[int(i)].text for i in exact.ids] == ["passage 2-7 word2x7"]
    assert len(index.keyword_search("word1x7", 5, within={_doc_id(2)}).ids) == 0
    assert len(index.keyword_search("passage", 5, within=set()).ids) == 0


def test_the_engine_searches_within_files_types_and_dates(new_index, tmp_path):
    """Engine.search's files, file_types and since, over each backend, every mode: only the
    chosen documents' passages, k of them when they hold k, and clear errors."""
    engine = Engine(
        Settings(embed_model=HashingEmbedder.model_name, chunk_tokens=16, chunk_overlap=2),
        embedder=HashingEmbedder(DIM),
        index=new_index(),
    )
    topics = {"tides.txt": "moon", "bread.md": "yeast", "ice.csv": "glacier"}
    for name, word in topics.items():
        body = " ".join(f"The {word} passage number {i} says the ocean moves." for i in range(12))
        (tmp_path / name).write_text(body)
    engine.add_files(sorted(tmp_path.iterdir()))
    per_doc = {d.source: d.chunks for d in engine.documents()}
    bread = str(tmp_path / "bread.md")
    assert per_doc[bread] >= 5
    for mode in ("hybrid", "dense", "lexical"):
        hits = engine.search("ocean moves moon", k=per_doc[bread], mode=mode, files=["bread.md"])
        assert len(hits) == per_doc[bread] and {h.source for h in hits} == {bread}, mode
    by_type = engine.search("ocean", k=50, file_types=["csv", ".MD"], mode="dense")
    assert {Path(h.source).name for h in by_type} == {"bread.md", "ice.csv"}
    assert len(by_type) == per_doc[bread] + per_doc[str(tmp_path / "ice.csv")]
    assert {Path(h.source).name for h in engine.search("ocean", k=50, files="*.txt")} == {
        "tides.txt"
    }
    assert len(engine.search("ocean", k=5, since="1d")) == 5, "all were added in the last day"
    later = engine.search("ocean", k=5, since=time.time() + 60)
    assert len(later) == 0, "nothing was added after a minute from now"
    with pytest.raises(ValueError, match=r"no file named 'brad\.md'.*bread\.md"):
        engine.search("ocean", files=["brad.md"])
    with pytest.raises(ValueError, match="ISO 8601"):
        engine.search("ocean", since="last tuesday")
