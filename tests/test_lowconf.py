"""The low-confidence log (web/lowconf.py), on the real small model and a few real passages."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest
from fakes import OverlapReranker

from qsearch import Engine, Settings
from qsearch.search.strength import DEFAULT_MIN_SCORE
from qsearch.types import Hit
from qsearch.web.lowconf import LowConfidenceLog, is_weak

PASSAGES = {
    "plants.md": "Plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "rivers.txt": "The Rhine rises in the Swiss Alps and flows north to the North Sea.",
    "bread.txt": "Knead the dough, let it rise, and bake the bread at 220 degrees.",
}
NONSENSE = "xqzv blorft wibble"


@pytest.fixture(scope="module")
def engine(minilm, tmp_path_factory):
    engine = Engine(
        Settings(embed_model=minilm.model_name, device="cpu"),
        embedder=minilm,
        reranker=OverlapReranker(),
    )
    folder = tmp_path_factory.mktemp("passages")
    for name, text in PASSAGES.items():
        (folder / name).write_text(text)
    assert not engine.add_files(sorted(folder.iterdir())).errors
    return engine


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_a_nonsense_query_writes_a_line_and_a_good_one_none(engine, mode, tmp_path):
    log = LowConfidenceLog(tmp_path / "low.jsonl")
    good = engine.search("how do plants make sugar from light?", k=3, mode=mode)
    assert good[0].score >= DEFAULT_MIN_SCORE and not good[0].weak
    assert log.record("how do plants make sugar from light?", mode, good, reranked=False) is False
    assert (tmp_path / "low.jsonl").read_text() == ""
    weak = engine.search(NONSENSE, k=3, mode=mode)
    assert log.record(NONSENSE, mode, weak, reranked=False) is True
    [line] = _lines(tmp_path / "low.jsonl")
    assert line["query"] == NONSENSE and line["mode"] == mode and line["reranked"] is False
    assert [t["rank"] for t in line["top"]] == [1, 2, 3]
    assert line["top"][0]["cosine"] == round(weak[0].dense_score, 4)
    assert line["top"][0]["score"] == round(weak[0].score, 4) < DEFAULT_MIN_SCORE
    assert set(line) == {"time", "query", "mode", "reranked", "top"}


def test_no_document_text_or_source_in_the_log(engine, tmp_path):
    log = LowConfidenceLog(tmp_path / "low.jsonl")
    for rerank in (False, True):
        hits = engine.search(NONSENSE, k=3, mode="hybrid", rerank=rerank)
        assert log.record(NONSENSE, "hybrid", hits, reranked=rerank)
    written = (tmp_path / "low.jsonl").read_text(encoding="utf-8").lower()
    assert len(_lines(tmp_path / "low.jsonl")) == 2
    for name, text in PASSAGES.items():
        assert name not in written
        assert not [
            w for w in text.lower().replace(",", " ").split() if len(w) > 4 and w in written
        ]


def test_with_the_reranker(engine, tmp_path):
    log = LowConfidenceLog(tmp_path / "low.jsonl")
    good = engine.search("Rhine Alps North Sea", k=3, rerank=True)
    assert good[0].rerank_score == 1.0 and not log.record("q", "hybrid", good, reranked=True)
    weak = engine.search(NONSENSE, k=3, rerank=True)
    assert log.record(NONSENSE, "hybrid", weak, reranked=True)
    assert _lines(tmp_path / "low.jsonl")[0]["top"][0]["rerank"] == 0.0


def _hit(rank: int, overall: float, *, rerank: float | None = None) -> Hit:
    from qsearch.search.strength import is_weak as below

    scores = dict(rerank_score=rerank, dense_score=0.2, keyword_score=0.1)
    return Hit(rank, overall, "s", None, None, "t", 0, 1, "d", **scores, weak=below(overall))


@pytest.mark.parametrize("reranked", [False, True])
def test_a_search_is_weak_when_every_hit_is_a_weak_match_reranked_or_not(reranked):
    low, high = DEFAULT_MIN_SCORE - 0.01, DEFAULT_MIN_SCORE + 0.01
    rerank = 0.9 if reranked else None  # the overall relevance already takes the reranker in
    assert is_weak([_hit(1, low, rerank=rerank), _hit(2, 0.1)], reranked=reranked)
    assert not is_weak([_hit(1, high, rerank=rerank), _hit(2, 0.1)], reranked=reranked)
    assert not is_weak([], reranked=reranked)


def test_appends_from_many_threads_stay_whole_lines(tmp_path):
    log = LowConfidenceLog(tmp_path / "low.jsonl")
    hits = [replace(_hit(1, 0.1), rank=r) for r in range(1, 6)]
    query = "ünïcode " + "x" * 5000  # long lines

    def work() -> None:
        for _ in range(50):
            log.record(query, "dense", hits, reranked=False)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = _lines(tmp_path / "low.jsonl")
    assert len(lines) == 400 and all(line["query"] == query for line in lines)


def test_a_path_that_cannot_be_written_fails_at_start(tmp_path):
    with pytest.raises(OSError, match="missing"):
        LowConfidenceLog(tmp_path / "missing" / "low.jsonl")


def test_the_hit_vocabulary_states_the_default_minimum_the_code_uses():
    from qsearch.types import HIT_FIELDS

    said = HIT_FIELDS["weak"]
    assert f"({DEFAULT_MIN_SCORE:g} unless set)" in said, said
