"""Engine: the whole path on the real small model, plus reranking with the tiny Qwen3 reranker."""

from __future__ import annotations

import pytest

from qsearch import Engine, IndexFolderError, Settings
from qsearch.models.reranker import load_reranker

DOCS = {
    "plants.md": "# Photosynthesis\n\nPlants turn sunlight, water and carbon dioxide into sugar "
    "and oxygen.",
    "rivers.txt": "The Rhine rises in the Swiss Alps and flows north to the North Sea through "
    "Germany.",
    "cooking.html": "<html><body><h1>Bread</h1><p>Knead the dough, let it rise, and bake it at "
    "220 degrees.</p><script>alert('not text')</script></body></html>",
}


@pytest.fixture
def files(tmp_path):
    paths = []
    for name, text in DOCS.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    return paths


@pytest.fixture
def engine(minilm):
    return Engine(Settings(embed_model=minilm.model_name, device="cpu"), embedder=minilm)


def test_add_and_search(engine, files, tmp_path):
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 nothing else")
    stages = []
    report = engine.add_files(
        [*files, bad], progress=lambda stage, done, total: stages.append(stage)
    )
    assert [f.status for f in report.files] == ["indexed", "indexed", "indexed", "error"]
    assert "truncated" in report.files[3].error and report.files[3].path.endswith("broken.pdf")
    assert {"reading", "embedding"} <= set(stages)
    hits = engine.search("how do plants make sugar from light?", k=2)
    assert (
        hits[0].source.endswith("plants.md") and hits[0].rank == 1 and hits[0].rerank_score is None
    )
    assert hits[0].score > hits[1].score
    assert hits[0].text == DOCS["plants.md"]
    assert set(hits.timings_ms) == {"embed_ms", "search_ms"}
    assert engine.search("baking bread in an oven", k=1)[0].source.endswith("cooking.html")


def test_unchanged_changed_and_removed_files(engine, files):
    engine.add_files(files)
    n_chunks = len(engine.index)
    again = engine.add_files(files)
    assert [f.status for f in again.files] == ["unchanged"] * 3 and len(engine.index) == n_chunks
    files[1].write_text("The Danube flows east from the Black Forest to the Black Sea.")
    changed = engine.add_files([files[1]])
    assert changed.files[0].status == "replaced" and len(engine.documents()) == 3
    assert "Danube" in engine.search("which river reaches the Black Sea?", k=1)[0].text
    assert all("Rhine" not in c.text for c in engine.index.chunks.values())
    engine.remove(changed.files[0].doc_id)
    assert len(engine.documents()) == 2
    engine.clear()
    assert engine.search("anything") == []


def test_bad_queries_and_empty_index(engine):
    assert engine.search("nothing indexed yet") == []
    with pytest.raises(ValueError, match="empty query"):
        engine.search("   ")
    with pytest.raises(ValueError, match="k must be"):
        engine.search("x", k=0)


def test_rerank_orders_by_the_rerankers_scores(engine, files, qwen3_reranker_dir):
    engine._reranker = load_reranker(str(qwen3_reranker_dir), device="cpu")
    engine.add_files(files)
    plain = engine.search("sunlight", k=3)
    reranked = engine.search(
        "sunlight", k=3, rerank=True, rerank_candidates=3, instruction="Find facts"
    )
    expected = engine.reranker.score("sunlight", [h.text for h in plain], instruction="Find facts")
    assert [h.rerank_score for h in reranked] == pytest.approx(
        sorted(expected, reverse=True), abs=1e-6
    )
    assert {h.text for h in reranked} == {h.text for h in plain}
    assert "rerank_ms" in reranked.timings_ms
    assert [h.rank for h in reranked] == [1, 2, 3]


def test_save_open_and_model_mismatch(engine, files, tmp_path, minilm, qwen3_embedder_dir):
    engine.add_files(files)
    engine.save(tmp_path / "ix")
    reopened = Engine.open(
        tmp_path / "ix", Settings(embed_model=minilm.model_name), embedder=minilm
    )
    assert [h.text for h in reopened.search("river", k=3)] == [
        h.text for h in engine.search("river", k=3)
    ]
    followed = Engine.open(
        tmp_path / "ix", Settings(embed_model="other/model"), follow_index_model=True
    )
    assert followed.settings.embed_model == minilm.model_name
    with pytest.raises(IndexFolderError, match="built with model"):
        Engine.open(tmp_path / "ix", Settings(embed_model=str(qwen3_embedder_dir)))


def test_concurrent_adds_of_the_same_files(engine, files):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        reports = list(pool.map(lambda _: engine.add_files(files), range(3)))
    assert sum(f.status == "indexed" for r in reports for f in r.files) == len(files)
    assert len(engine.documents()) == len(files)


def test_a_later_file_of_the_same_name_in_one_batch_replaces_the_earlier(tmp_path):
    """Older versions are looked up once per batch: a source added earlier in the same batch
    must still be replaced, as a second upload of a changed file under one name is."""
    from fakes import HashingEmbedder

    engine = Engine(Settings(embed_model=HashingEmbedder.model_name), embedder=HashingEmbedder(32))
    (tmp_path / "a.txt").write_text("The first draft mentions lighthouses.")
    (tmp_path / "b.txt").write_text("The second draft mentions windmills.")
    report = engine.add_files([tmp_path / "a.txt", tmp_path / "b.txt"], names=["n.txt"] * 2)
    assert [f.status for f in report.files] == ["indexed", "replaced"]
    assert [d.source for d in engine.documents()] == ["n.txt"]
    assert [c.text for c in engine.index.chunks.values()] == [
        "The second draft mentions windmills."
    ]
