"""VectorIndex: FAISS against brute-force numpy, add/remove, atomic save/load, model checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import unit_vectors

from qsearch.config import bundled_small_model, model_name, same_model
from qsearch.store.vectors import DocInfo, IndexFolderError, VectorIndex, brute_force_search
from qsearch.types import Chunk

DIM = 48


def fill(index: VectorIndex, n_docs: int = 5, per_doc: int = 40, seed: int = 0) -> np.ndarray:
    vectors = unit_vectors(n_docs * per_doc, index.dim, seed)
    for d in range(n_docs):
        chunks = [
            Chunk(f"doc{d}", f"file{d}.txt", f"text {d}-{i}", i, i + 1) for i in range(per_doc)
        ]
        index.add(
            DocInfo(f"doc{d}", f"file{d}.txt", per_doc),
            chunks,
            vectors[d * per_doc : (d + 1) * per_doc],
        )
    return vectors


@pytest.mark.parametrize("k", [1, 10, 200])
def test_flat_search_equals_brute_force(k):
    index = VectorIndex(DIM)
    vectors = fill(index)
    queries = unit_vectors(7, DIM, seed=1)
    scores, rows = index.search(queries, k)
    ref_scores, ref_rows = brute_force_search(vectors, queries, k)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_hnsw_recall_against_exact():
    exact, approx = VectorIndex(DIM), VectorIndex(DIM, "hnsw")
    fill(exact, n_docs=10, per_doc=200)
    fill(approx, n_docs=10, per_doc=200)
    queries = unit_vectors(50, DIM, seed=2)
    _, truth = exact.search(queries, 10)
    _, found = approx.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.9, recall


def test_k_larger_than_the_index_and_empty_index():
    index = VectorIndex(DIM)
    scores, rows = index.search(unit_vectors(2, DIM), 5)
    assert scores.shape == rows.shape == (2, 0)
    fill(index, n_docs=1, per_doc=3)
    assert index.search(unit_vectors(1, DIM), 10)[1].shape == (1, 3)
    with pytest.raises(ValueError, match=r"shape \(n, 48\)"):
        index.search(unit_vectors(1, DIM + 1), 3)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_remove_keeps_rows_and_chunks_aligned(kind):
    index = VectorIndex(DIM, kind)
    vectors = fill(index)
    assert index.remove("doc2") == 40
    keep = np.array([c not in range(80, 120) for c in range(200)])
    remaining = vectors[keep]
    assert len(index) == 160 and "doc2" not in index.docs
    assert all(c.doc_id != "doc2" for c in index.chunks.values())
    np.testing.assert_allclose(index.vectors(), remaining, atol=1e-6)
    queries = unit_vectors(5, DIM, seed=3)
    _, rows = index.search(queries, 5)
    _, ref_rows = brute_force_search(remaining, queries, 5)
    if kind == "flat":  # ids are the original rows: map the reference's positions back to them
        np.testing.assert_array_equal(rows, np.flatnonzero(keep)[ref_rows])
    for row in rows.ravel():
        assert (
            index.chunks[row].text
            == f"text {index.chunks[row].doc_id[3:]}-{index.chunks[row].start}"
        )
    with pytest.raises(KeyError, match="doc2"):
        index.remove("doc2")


def test_clear_and_ids_after_removal():
    index = VectorIndex(DIM)
    vectors = fill(index, n_docs=3)
    index.remove("doc0")
    fill_more = unit_vectors(40, DIM, seed=9)
    chunks = [Chunk("doc9", "file9.txt", f"text 9-{i}", i, i + 1) for i in range(40)]
    index.add(DocInfo("doc9", "file9.txt", 40), chunks, fill_more)
    assert sorted(index.chunks) == list(range(40, 160)), "ids are never reused"
    _, ids = index.search(fill_more[:1], 1)
    assert index.chunks[int(ids[0, 0])].doc_id == "doc9"
    np.testing.assert_allclose(
        index.vectors_of([40, 159]), np.stack([vectors[40], fill_more[-1]]), atol=1e-6
    )
    index.clear()
    assert len(index) == 0 and not index.docs and index.search(fill_more[:1], 3)[1].shape == (1, 0)


def test_adding_the_same_document_twice_is_refused():
    index = VectorIndex(DIM)
    fill(index, n_docs=1)
    with pytest.raises(ValueError, match="already in the index"):
        fill(index, n_docs=1)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_save_and_load_round_trip(tmp_path, kind):
    index = VectorIndex(DIM, kind, meta={"embed_model": "org/Model-A", "chunk_tokens": 256})
    fill(index)
    index.save(tmp_path / "ix")
    loaded = VectorIndex.load(tmp_path / "ix")
    assert loaded.chunks == index.chunks and loaded.docs.keys() == index.docs.keys()
    assert loaded.meta["embed_model"] == "org/Model-A" and loaded.meta["chunk_tokens"] == 256
    queries = unit_vectors(4, DIM, seed=4)
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])
    manifest = index.manifest()
    assert manifest["dim"] == DIM and manifest["chunks"] == 200 and "faiss" in manifest["versions"]


def test_a_crash_during_save_leaves_the_previous_index(tmp_path, monkeypatch):
    folder = tmp_path / "ix"
    index = VectorIndex(DIM)
    fill(index, n_docs=2)
    index.save(folder)
    index.remove("doc1")

    def crash(*args, **kwargs):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        index.save(folder)
    monkeypatch.undo()
    assert len(VectorIndex.load(folder)) == 80, "the old complete version is still the current one"
    leftovers = [p.name for p in folder.iterdir() if p.is_dir()]
    assert len(leftovers) == 2  # the current version and the unfinished one
    index.save(folder)
    assert len(VectorIndex.load(folder)) == 40
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 1, "the next save cleans up"


def test_damaged_and_foreign_folders_are_clear_errors(tmp_path):
    with pytest.raises(IndexFolderError, match="holds no qsearch index"):
        VectorIndex.load(tmp_path)
    index = VectorIndex(DIM)
    fill(index, n_docs=1)
    version = index.save(tmp_path / "ix")
    (version / "chunks.jsonl").write_text("")
    with pytest.raises(IndexFolderError, match="inconsistent"):
        VectorIndex.load(tmp_path / "ix")
    (version / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFolderError, match="damaged"):
        VectorIndex.load(tmp_path / "ix")


def test_model_and_dimension_checks():
    index = VectorIndex(DIM, meta={"embed_model": "Qwen/Qwen3-Embedding-0.6B"})
    index.check_model(
        "/models/Qwen3-Embedding-0.6B/", DIM
    )  # a local copy of the same model is fine
    with pytest.raises(IndexFolderError, match="built with model 'Qwen/Qwen3-Embedding-0.6B'"):
        index.check_model("sentence-transformers/all-MiniLM-L6-v2", DIM)
    with pytest.raises(IndexFolderError, match="--dim 48"):
        index.check_model("Qwen/Qwen3-Embedding-0.6B", 32)
    assert same_model("a/B-1", "/x/y/b-1/") and not same_model("a/B-1", "a/B-2")


def test_one_name_for_a_model():
    """Hub id, local folder and served name of one model name it alike; the bundled folder by
    what it holds, never a file path."""
    assert model_name("Qwen/Qwen3-Embedding-0.6B") == "Qwen3-Embedding-0.6B"
    assert model_name("/models/Qwen3-Embedding-0.6B/") == "Qwen3-Embedding-0.6B"
    assert model_name("Qwen3-Embedding-0.6B") == "Qwen3-Embedding-0.6B"
    bundled = bundled_small_model()
    if bundled is not None:
        assert model_name(str(bundled)) == "all-MiniLM-L6-v2"
        assert same_model(str(bundled), "sentence-transformers/all-MiniLM-L6-v2")
