"""Milvus' own cases beyond the contract suite (test_collections.py): past Milvus' 16,384-row
query ceiling, adds cut short and retried, agreement with the folder on the real small model,
errors, and the CLI and app over a collection. Milvus Lite (a `.db` file) stands in for a server:
the same pymilvus client code runs against both."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import unit_vectors
from fakes import HashingEmbedder

from qsearch import Engine, IndexFolderError, Settings
from qsearch.store.base import DocInfo
from qsearch.types import Chunk

pymilvus = pytest.importorskip("pymilvus")
DIM = 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collection(tmp_path: Path, name: str = "c"):  # noqa: ANN202 - MilvusIndex
    from qsearch.store.milvus import MilvusIndex, connect

    uri = str(tmp_path / "m.db")
    meta = {"embed_model": HashingEmbedder.model_name}
    return MilvusIndex(connect(uri), name, uri=uri, dim=DIM, meta=meta)


@pytest.mark.slow
def test_more_than_16384_documents_are_all_listed(tmp_path):
    """Rows written in bulk with the store's own row builders (adding 16,500 files one by one
    would take minutes); then every listing must see all of them."""
    from qsearch.store.milvus_layout import source_row
    from qsearch.store.milvus_rows import chunk_row, doc_row

    index, n = _collection(tmp_path), 16_500
    vectors = unit_vectors(n, DIM, seed=1).tolist()
    docs = [DocInfo(f"{d:064x}", f"f{d}.txt", 1) for d in range(n)]
    chunk = [Chunk(d.doc_id, d.source, f"text {i}", 0, 6) for i, d in enumerate(docs)]
    for start in range(0, n, 2000):
        part = range(start, min(n, start + 2000))
        index.client.upsert(index.name, [chunk_row(0, chunk[i], vectors[i]) for i in part])
        index.client.upsert(index.docs_name, [doc_row(docs[i]) for i in part])
        rows = [source_row(docs[i].source, [docs[i].doc_id]) for i in part]
        index.client.upsert(index.sources.name, rows)
    index.save()
    assert len(index.docs) == n and len(set(index.docs)) == n
    assert {d.source for d in index.docs.values()} == {f"f{d}.txt" for d in range(n)}
    assert len(set(index.chunks)) == n == len(index)
    assert index.doc_ids_for_source("f16499.txt") == [f"{16499:064x}"]
    found = index.doc_ids_for_sources([f"f{d}.txt" for d in range(n)])
    assert len(found) == n


def test_an_add_cut_short_leaves_no_searchable_orphans_and_a_retry_no_duplicates(tmp_path):
    index = _collection(tmp_path)
    doc = DocInfo("ab" * 32, "cut.txt", 3)
    chunks = [Chunk(doc.doc_id, "cut.txt", f"orphan passage {i}", i, i + 1) for i in range(3)]
    vectors = unit_vectors(3, DIM, seed=2)
    upsert = index.client.upsert

    def fail_on_the_document_row(collection, rows, **kwargs):  # noqa: ANN001, ANN202
        if collection == index.docs_name:
            raise ConnectionError("connection lost")  # as a server going away would
        return upsert(collection, rows, **kwargs)

    index.client.upsert = fail_on_the_document_row
    with pytest.raises(ConnectionError):
        index.add(doc, chunks, vectors)
    index.client.upsert = upsert
    assert not index.has_doc(doc.doc_id) and index.docs == {}
    _, ids = index.search(vectors, 3)
    assert (ids == -1).all(), "chunks of a document without a row are left out of results"
    assert len(index.keyword_search("orphan passage", 5).ids) == 0
    assert len(index) == 0, "and deleted when met"
    index.client.upsert = fail_on_the_document_row
    with pytest.raises(ConnectionError):
        index.add(doc, chunks, vectors)
    index.client.upsert = upsert
    index.add(doc, chunks, vectors)  # the retry
    assert len(index) == 3 and len(set(index.chunks)) == 3 and index.has_doc(doc.doc_id)
    assert sorted(c.text for c in index.doc_chunks(doc.doc_id)) == [c.text for c in chunks]
    _, ids = index.search(vectors[:1], 5)
    assert len(set(ids[0][ids[0] >= 0].tolist())) == 3


def test_a_collection_made_before_the_source_map_still_finds_sources(tmp_path):
    """Collections made by earlier qsearch versions have no `<name>_sources`: the lookup falls
    back to a filter on the document's JSON."""
    from qsearch.store.milvus import MilvusIndex

    index = _collection(tmp_path)
    index.client.drop_collection(f"{index.name}_sources")
    old = MilvusIndex(index.client, index.name, uri=index.uri)
    doc = "cd" * 32
    old.add(DocInfo(doc, "old.txt", 1), [Chunk(doc, "old.txt", "x", 0, 1)], unit_vectors(1, DIM))
    assert old.doc_ids_for_source("old.txt") == [doc]
    assert old.doc_ids_for_sources(["old.txt", "none"]) == {"old.txt": [doc]}
    assert old.remove(doc) == 1 and old.doc_ids_for_source("old.txt") == []


@pytest.mark.slow
def test_reindexing_a_changed_file_with_the_real_model_leaves_only_its_new_text(tmp_path, minilm):
    engine = Engine.open_milvus(
        str(tmp_path / "m.db"),
        "real",
        Settings(embed_model=minilm.model_name),
        create=True,
        embedder=minilm,
    )
    note = tmp_path / "note.txt"
    note.write_text("The old recipe uses rye flour and caraway seeds.")
    engine.add_files([note])
    note.write_text("The new recipe uses spelt flour and honey.")
    assert engine.add_files([note]).files[0].status == "replaced"
    texts = [c.text for d in engine.documents() for c in engine.index.doc_chunks(d.doc_id)]
    assert texts == ["The new recipe uses spelt flour and honey."]
    assert [h.text for h in engine.search("rye and caraway", k=5)] == texts


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


def test_milvus_keyword_coverage_and_relevance_agree_with_the_folder(tmp_path, minilm):
    """Milvus has no postings to read: coverage comes from the passages' text with document
    frequencies counted by Milvus' own BM25 index. Over the samples it gives the folder's figures
    (the same words hold the same rarity here), so a search reads alike on both backends."""
    docs = sorted((Path(__file__).parents[1] / "assets" / "samples").iterdir())
    settings = Settings(embed_model=minilm.model_name)
    folder = Engine(settings, embedder=minilm)
    milvus = Engine.open_milvus(
        str(tmp_path / "m.db"), "cover", settings, create=True, embedder=minilm
    )
    folder.add_files(docs)
    milvus.add_files(docs)
    for query in (
        "espresso grind size",
        "burn treatment with cool water",
        "quantum chromodynamics",
    ):
        ours = {(h.source, h.start): h for h in milvus.search(query, k=5)}
        theirs = {(h.source, h.start): h for h in folder.search(query, k=5)}
        for key in ours.keys() & theirs.keys():
            assert ours[key].keyword_score == pytest.approx(theirs[key].keyword_score, abs=0.1)
            assert ours[key].weak == theirs[key].weak, (query, key)
        assert list(ours)[0] == list(theirs)[0], query


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
        hits = json.loads(  # /search answers the hits as JSON text
            gradio_client.Client(url, verbose=False).predict(
                query="largest volcano", api_name="/search"
            )
        )
        assert hits and hits[0]["source"].endswith("volcanoes-field-guide.pdf")
    finally:
        demo.close()
