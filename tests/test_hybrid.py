"""Hybrid search: fusion on hand-built rankings, BM25 terms (CJK too), dense and lexical kept in step."""

from __future__ import annotations

import pytest

from qsearch import Engine, Settings
from qsearch.fusion import fuse, rrf, weighted
from qsearch.lexical import LexicalIndex, tokenize


def test_rrf_known_answer():
    rows, scores = rrf([[7, 3, 5], [3, 9]], k=60)
    assert rows == [3, 7, 9, 5]  # 3 is high in both lists
    assert scores[0] == pytest.approx(1 / 62 + 1 / 61)
    assert scores[1] == pytest.approx(1 / 61) and scores[2] == pytest.approx(1 / 62)
    assert scores[3] == pytest.approx(1 / 63)


def test_weighted_known_answer():
    dense = ([1, 2, 3], [0.9, 0.5, 0.1])  # normalised: 1, 0.5, 0
    lexical = ([3, 4], [12.0, 2.0])  # normalised: 1, 0
    rows, scores = weighted([dense, lexical], [0.7, 0.3])
    assert rows == [1, 2, 3, 4]
    assert scores == pytest.approx([0.7, 0.35, 0.3, 0.0])
    assert weighted([([5], [0.2]), ([], [])], [0.5, 0.5]) == ([5], [0.5])  # one score: full marks


def test_fuse_modes_and_errors():
    dense, lexical = ([1, 2], [0.9, 0.8]), ([2, 3], [5.0, 1.0])
    assert fuse("dense", dense, lexical) == ([1, 2], [0.9, 0.8])
    assert fuse("lexical", dense, lexical) == ([2, 3], [5.0, 1.0])
    assert fuse("hybrid", dense, lexical)[0] == [2, 1, 3]
    with pytest.raises(ValueError, match="mode must be one of"):
        fuse("sparse", dense, lexical)
    with pytest.raises(ValueError, match="fusion must be one of"):
        fuse("hybrid", dense, lexical, method="max")


def test_tokenizer_stems_drops_stop_words_and_splits_cjk():
    assert tokenize("How do the proteins bind to Receptors?") == ["protein", "bind", "receptor"]
    assert tokenize("SKU-4471B costs $12") == ["sku", "4471b", "cost", "12"]
    assert tokenize("東京大学") == ["東", "京", "大", "学", "東京", "京大", "大学"]
    assert tokenize("ｆｕｌｌｗｉｄｔｈ") == ["fullwidth"]


def test_lexical_index_finds_exact_terms():
    index = LexicalIndex()
    index.build(["the reactor model RX-9000 overheats", "a story about reactors in general", "cooking pasta"])
    scores, rows = index.search("RX-9000", 3)
    assert list(rows) == [0] and scores[0] > 0
    assert len(index.search("words that appear nowhere", 3)[1]) == 0
    assert index.nbytes > 0 and len(index) == 3


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
    (tmp_path / "codes.txt").write_text("Part number QX-7781 is the replacement valve for the pump.")
    (tmp_path / "pump.txt").write_text("Centrifugal pumps move fluid by converting rotational energy.")
    engine.add_files(sorted(tmp_path.iterdir()))
    lexical = engine.search("QX-7781", k=2, mode="lexical")
    assert len(lexical) == 1 and lexical[0].source.endswith("codes.txt") and lexical[0].dense_score is None
    hybrid = engine.search("QX-7781 valve", k=2, mode="hybrid")
    assert hybrid[0].source.endswith("codes.txt")
    assert hybrid[0].dense_score is not None and hybrid[0].lexical_score is not None
    dense = engine.search("QX-7781", k=2, mode="dense")
    assert dense[0].score == dense[0].dense_score and dense[0].lexical_score is None
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
    assert engine.search("okapi", k=1, mode="lexical")[0].source.endswith("okapi.txt"), "rows realigned"
    (docs / "zebra.txt").write_text("Quaggas were a subspecies of plains zebra.")
    engine.add_files([docs / "zebra.txt"])
    assert engine.search("quagga", k=1, mode="lexical")[0].source.endswith("zebra.txt")
    engine.save(tmp_path / "ix")
    reopened = Engine.open(tmp_path / "ix", Settings(embed_model=minilm.model_name), embedder=minilm)
    for query in ("quagga", "okapi"):
        assert [h.text for h in reopened.search(query, k=2, mode="lexical")] == \
            [h.text for h in engine.search(query, k=2, mode="lexical")]
    texts = [c.text for c in reopened.index.chunks]
    for row, text in enumerate(texts):
        assert reopened.search(text, k=1, mode="lexical")[0].text == text, row
