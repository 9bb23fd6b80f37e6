"""Instant repeats (issue 26 item 4): a repeat reuses the query vector, the candidates and the
reranker's scores; any change to a collection invalidates; the caches stay bounded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from fakes import HashingEmbedder, OverlapReranker

from qsearch import Engine, Settings
from qsearch.search.cache import LRU, SearchCache

DOCS = {
    "tides.txt": "The moon pulls the oceans and raises the tides twice a day.",
    "bread.txt": "Knead the dough and bake the bread in a hot oven.",
    "rivers.txt": "Rivers carry water from the mountains down to the sea.",
}


class CountingReranker(OverlapReranker):
    """The overlap reranker, recording every passage it is asked to score."""

    def __init__(self) -> None:
        self.scored: list[str] = []

    def score(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> np.ndarray:
        self.scored.extend(texts)
        return super().score(query, texts, instruction=instruction)


def _engine(tmp_path, docs=DOCS, name="docs"):
    folder = tmp_path / name
    folder.mkdir()
    for file, text in docs.items():
        (folder / file).write_text(text)
    embedder, reranker = HashingEmbedder(), CountingReranker()
    settings = Settings(embed_model=embedder.model_name)
    engine = Engine(settings, embedder=embedder, reranker=reranker)
    engine.add_files(sorted(folder.iterdir()))
    return engine, embedder, reranker


def _same(a, b):
    return [(h.text, h.score, h.rerank_score) for h in a] == [
        (h.text, h.score, h.rerank_score) for h in b
    ]


def test_a_repeat_is_answered_without_the_models(tmp_path):
    engine, embedder, reranker = _engine(tmp_path)
    first = engine.search("moon tides", k=3, rerank=True)
    embeds, scored = len(embedder.calls), len(reranker.scored)
    assert scored == 3 and first[0].source.endswith("tides.txt")
    again = engine.search("moon tides", k=3, rerank=True)
    assert _same(first, again) and again[0].rerank_score is not None
    assert len(embedder.calls) == embeds and len(reranker.scored) == scored
    # another result count, mode or rerank setting: still no model call
    assert _same(engine.search("moon tides", k=1, rerank=True), first[:1])
    engine.search("moon tides", k=3, mode="dense")
    engine.search("moon tides", k=2, mode="lexical")
    plain = engine.search("moon tides", k=3)
    assert [h.rerank_score for h in plain] == [None] * 3
    assert len(embedder.calls) == embeds and len(reranker.scored) == scored
    # what changes the answer is not reused: another instruction embeds and reranks again (the
    # query, and the relevance anchors' questions: they carry the instruction too)
    engine.search("moon tides", k=3, rerank=True, instruction="Find passages about astronomy")
    assert len(embedder.calls) == embeds + 2 and len(reranker.scored) == 2 * scored


def test_adding_removing_or_clearing_invalidates(tmp_path):
    engine, embedder, _ = _engine(tmp_path)
    assert not any(h.source.endswith("quagga.txt") for h in engine.search("quagga zebra", k=3))
    (tmp_path / "quagga.txt").write_text("The quagga was a zebra of southern Africa.")
    report = engine.add_files([tmp_path / "quagga.txt"])
    for mode in ("hybrid", "dense", "lexical"):
        assert engine.search("quagga zebra", k=3, mode=mode)[0].source.endswith("quagga.txt")
    engine.remove(report.files[0].doc_id)
    assert not any(h.source.endswith("quagga.txt") for h in engine.search("quagga zebra", k=3))
    engine.clear()
    assert engine.search("quagga zebra", k=3) == []


def test_a_change_in_a_shared_collection_invalidates(tmp_path):
    session, _, _ = _engine(tmp_path, {"bread.txt": DOCS["bread.txt"]}, "session")
    shared, _, _ = _engine(tmp_path, {"rivers.txt": DOCS["rivers.txt"]}, "shared")
    before = session.search("quagga zebra", k=3, also=[shared])
    assert not any(h.source.endswith("quagga.txt") for h in before)
    (tmp_path / "quagga.txt").write_text("The quagga was a zebra of southern Africa.")
    shared.add_files([tmp_path / "quagga.txt"])
    after = session.search("quagga zebra", k=3, also=[shared])
    assert after[0].source.endswith("quagga.txt")


def test_rerank_scores_are_reused_per_passage(tmp_path):
    engine, _, reranker = _engine(tmp_path)
    engine.search("moon tides", k=2, rerank=True, rerank_candidates=2)
    assert len(reranker.scored) == 2
    engine.search("moon tides", k=3, rerank=True, rerank_candidates=3)
    assert len(reranker.scored) == 3, "only the passage not scored before goes to the reranker"


def test_lru_is_bounded_and_forgets_the_least_recently_used():
    lru: LRU[int] = LRU(3)
    for i in range(3):
        lru.put(i, i)
    assert lru.get(0) == 0  # 0 is now the most recently used
    lru.put(3, 3)
    lru.put(4, 4)
    assert len(lru) == 3 and lru.get(1) is None and lru.get(2) is None
    assert (lru.get(0), lru.get(3), lru.get(4)) == (0, 3, 4)
    with pytest.raises(ValueError, match="cache size must be at least 1, got 0"):
        LRU(0)


def test_an_engines_caches_stay_within_their_sizes(tmp_path):
    engine, embedder, _ = _engine(tmp_path)
    engine._cache = SearchCache(vectors=4, pools=4, rerank_scores=5)
    for i in range(12):
        engine.search(f"moon tides {i}", k=3, rerank=True)
    cache = engine._cache
    assert (len(cache.vectors), len(cache.pools), len(cache.scores)) == (4, 4, 5)
    calls = len(embedder.calls)
    engine.search("moon tides 0", k=3)  # long evicted: embedded again
    assert len(embedder.calls) == calls + 1
