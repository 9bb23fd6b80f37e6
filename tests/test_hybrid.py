"""Hybrid search: fusion on hand-built rankings, BM25 terms (CJK too), dense and lexical kept in
step, and collections merged on one scale."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qsearch import Engine, Settings
from qsearch.search.fusion import convex, fuse, normalise, rrf
from qsearch.store.bm25 import LexicalIndex, tokenize


def test_rrf_known_answer_is_scaled_to_one():
    # candidates 7, 3, 5, 9: dense ranks 1, 2, 3, absent; lexical ranks absent, 1, absent, 2
    scores = rrf([np.array([1, 2, 3, 0]), np.array([0, 1, 0, 2])], k=60)
    top = 2 / 61
    assert scores == pytest.approx(
        [(1 / 61) / top, (1 / 62 + 1 / 61) / top, (1 / 63) / top, (1 / 62) / top]
    )
    assert rrf([np.array([1]), np.array([1])], k=60) == pytest.approx([1.0]), (
        "first in both: full marks"
    )


def test_convex_fusions_known_answers():
    cosine, bm25 = np.array([0.9, 0.5, 0.1]), np.array([0.0, 6.0, 12.0])
    # min-max: cosine -> 1, .5, 0; bm25 -> 0, .5, 1
    assert convex(cosine, bm25, 0.7, "minmax") == pytest.approx([0.7, 0.5, 0.3])
    # theoretical min: cosine (s + 1) / (0.9 + 1); bm25 s / 12
    expected = 0.7 * (cosine + 1) / 1.9 + 0.3 * bm25 / 12
    assert convex(cosine, bm25, 0.7, "tmm") == pytest.approx(expected)
    assert normalise(np.array([0.0, 0.0]), "tmm", 0.0) == pytest.approx([0, 0]), (
        "no keyword match: zero"
    )
    assert all(0 <= v <= 1 for v in convex(np.array([-0.2, 0.3]), np.array([0.0, 1.0]), 0.5, "tmm"))


def test_fuse_dispatches_and_names_the_valid_methods():
    cosine, bm25, dr, lr = (
        np.array([0.9, 0.8]),
        np.array([1.0, 5.0]),
        np.array([1, 2]),
        np.array([2, 1]),
    )
    assert fuse("tmm", cosine, bm25, dr, lr, dense_weight=1.0) == pytest.approx((cosine + 1) / 1.9)
    assert fuse("rrf", cosine, bm25, dr, lr)[0] == pytest.approx(
        fuse("rrf", cosine, bm25, dr, lr)[1]
    )
    with pytest.raises(
        ValueError, match=r"fusion must be one of \('tmm', 'minmax', 'rrf'\), got 'max'"
    ):
        fuse("max", cosine, bm25, dr, lr)


def test_tokenizer_stems_drops_stop_words_and_splits_cjk():
    assert tokenize("How do the proteins bind to Receptors?") == ["protein", "bind", "receptor"]
    assert tokenize("SKU-4471B costs $12") == ["sku", "4471b", "cost", "12"]
    assert tokenize("東京大学") == ["東", "京", "大", "学", "東京", "京大", "大学"]
    assert tokenize("ｆｕｌｌｗｉｄｔｈ") == ["fullwidth"]


def test_lexical_index_finds_exact_terms():
    index = LexicalIndex()
    index.build(
        [10, 11, 12],
        ["the reactor model RX-9000 overheats", "a story about reactors", "cooking pasta"],
    )
    scores, ids, every = index.search("RX-9000", 3)
    assert list(ids) == [10] and scores[0] > 0 and every[0] == scores[0]
    assert len(index.search("words that appear nowhere", 3)[1]) == 0
    assert index.nbytes > 0 and len(index) == 3
    # the upper bound is what a text holding every query term at its best would score
    assert index.upper_bound("RX-9000") == pytest.approx(float(scores[0]))
    assert index.upper_bound("reactor pasta") >= index.scores("reactor pasta").max() > 0


@pytest.fixture
def engine(minilm):
    return Engine(Settings(embed_model=minilm.model_name, device="cpu"), embedder=minilm)


def test_cjk_document_found_by_cjk_keyword(engine, tmp_path):
    (tmp_path / "tokyo.txt").write_text("東京大学は日本の国立大学です。本郷キャンパスがあります。")
    (tmp_path / "english.txt").write_text("A university is an institution of higher education.")
    (tmp_path / "osaka.txt").write_text("大阪は商業の中心地として知られています。")
    engine.add_files(sorted(tmp_path.iterdir()))
    hits = engine.search("本郷キャンパス", k=1, mode="lexical")
    assert hits and hits[0].source.endswith("tokyo.txt")
    assert engine.search("本郷キャンパス", k=1, mode="hybrid")[0].source.endswith("tokyo.txt")


def test_modes_and_scores(engine, tmp_path):
    (tmp_path / "codes.txt").write_text(
        "Part number QX-7781 is the replacement valve for the pump."
    )
    (tmp_path / "pump.txt").write_text(
        "Centrifugal pumps move fluid by converting rotational energy."
    )
    engine.add_files(sorted(tmp_path.iterdir()))
    lexical = engine.search("QX-7781", k=2, mode="lexical")
    assert (
        len(lexical) == 1
        and lexical[0].source.endswith("codes.txt")
        and lexical[0].dense_score is None
    )
    hybrid = engine.search("QX-7781 valve", k=2, mode="hybrid")
    assert hybrid[0].source.endswith("codes.txt")
    assert hybrid[0].dense_score is not None and hybrid[0].lexical_score is not None
    assert all(h.dense_score is not None and h.keyword_score is not None for h in hybrid), (
        "full breakdown"
    )
    assert all(0 <= h.score <= 1 and 0 <= h.keyword_score <= 1 for h in hybrid)
    assert hybrid[1].lexical_score == 0.0 and hybrid[1].keyword_score == 0.0, (
        "pump.txt lacks the part number"
    )
    dense = engine.search("QX-7781", k=2, mode="dense")
    assert dense[0].lexical_score is None and dense[0].keyword_score is None
    assert dense[0].dense_score > dense[1].dense_score and dense[0].score > dense[1].score, (
        "in dense mode overall relevance follows the cosine"
    )
    assert "embed_ms" not in lexical.timings_ms
    with pytest.raises(ValueError, match="mode must be one of"):
        engine.search("x", mode="fuzzy")


def test_lexical_stays_in_step_through_add_remove_save_load(engine, tmp_path, minilm):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, word in enumerate(["zebra", "giraffe", "okapi"]):
        (docs / f"{word}.txt").write_text(f"The {word} number {i} lives in Africa.")
    report = engine.add_files(sorted(docs.iterdir()))
    assert engine.search("okapi", k=1, mode="lexical")[0].source.endswith("okapi.txt")
    engine.remove(next(f.doc_id for f in report.files if f.path.endswith("giraffe.txt")))
    assert engine.search("giraffe", k=3, mode="lexical") == []
    assert engine.search("okapi", k=1, mode="lexical")[0].source.endswith("okapi.txt"), (
        "rows realigned"
    )
    (docs / "zebra.txt").write_text("Quaggas were a subspecies of plains zebra.")
    engine.add_files([docs / "zebra.txt"])
    assert engine.search("quagga", k=1, mode="lexical")[0].source.endswith("zebra.txt")
    engine.save(tmp_path / "ix")
    reopened = Engine.open(
        tmp_path / "ix", Settings(embed_model=minilm.model_name), embedder=minilm
    )
    for query in ("quagga", "okapi"):
        assert [h.text for h in reopened.search(query, k=2, mode="lexical")] == [
            h.text for h in engine.search(query, k=2, mode="lexical")
        ]
    texts = [c.text for c in reopened.index.chunks.values()]
    for row, text in enumerate(texts):
        assert reopened.search(text, k=1, mode="lexical")[0].text == text, row


SESSION = {"bread.txt": "Knead the dough, then let the bread rise before baking it in a hot oven."}
SHARED = {
    "pull.txt": "The Moon's gravity pulls on the oceans and raises the tides twice a day.",
    "spring.txt": "Spring tides come when the Sun and the Moon line up with the Earth.",
    "coast.txt": "Along the coast the sea level rises and falls every day.",
    "table.txt": "A tide table lists the times of high and low water for a harbour.",
    "craters.txt": "The lunar surface is covered in craters left by old impacts.",
}


def _engine_over(minilm, folder, files, fusion="tmm"):
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    engine = Engine(Settings(embed_model=minilm.model_name, fusion=fusion), embedder=minilm)
    engine.add_files(sorted(folder.iterdir()))
    return engine


def _keyed(hits):
    return [(h.source.rsplit("/", 1)[-1], h.text) for h in hits]


def test_session_and_shared_rank_in_dense_mode_as_one_collection(minilm, tmp_path):
    session = _engine_over(minilm, tmp_path / "session", SESSION)
    shared = _engine_over(minilm, tmp_path / "shared", SHARED)
    both = _engine_over(minilm, tmp_path / "both", {**SESSION, **SHARED})
    for query in ("moon tides", "baking bread", "sea level", "craters on the moon"):
        merged = session.search(query, k=6, mode="dense", also=[shared])
        alone = both.search(query, k=6, mode="dense")
        assert _keyed(merged) == _keyed(alone), query
        # the same texts embed alike up to float rounding (batches differ in padding)
        assert [h.score for h in merged] == pytest.approx([h.score for h in alone], abs=1e-5)


@pytest.mark.parametrize("fusion", ["relevance", "tmm", "minmax", "rrf"])
def test_merged_hybrid_never_ranks_a_result_above_one_that_beats_it_on_both(
    minilm, tmp_path, fusion
):
    # issue 23: each collection fused on its own made the session's bread passage (cosine
    # 0.18, no keyword) outrank tides passages of the shared index (cosine 0.6, keywords)
    session = _engine_over(minilm, tmp_path / "session", SESSION, fusion)
    shared = _engine_over(minilm, tmp_path / "shared", SHARED, fusion)
    for query in ("moon tides", "tide times", "gravity of the moon", "bread oven"):
        hits = session.search(query, k=6, mode="hybrid", also=[shared])
        assert len(hits) == 6
        for above, below in itertools.combinations(hits, 2):
            assert not (
                below.dense_score > above.dense_score and below.keyword_score > above.keyword_score
            ), (query, _keyed([above, below]), above, below)
    top = session.search("moon tides", k=6, mode="hybrid", also=[shared])
    assert _keyed(top)[-1][0] == "bread.txt", _keyed(top)
