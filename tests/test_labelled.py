"""The retrieval test on a user's own labelled queries (qsearch/labelled.py): reading the labels,
each ranking's metrics through `evaluate.metrics`, and how the minimum relevance separates."""

from __future__ import annotations

import pytest
from fakes import OverlapReranker

from qsearch import Engine, Settings
from qsearch.evaluate import metrics
from qsearch.labelled import parse_labels, separation

FILES = {
    "tides.txt": "The Moon's gravity pulls the oceans, so most coasts see two high tides a day.",
    "bread.txt": "Knead the dough, let it rise for an hour, then bake the bread at 220 degrees.",
    "honey.txt": "Bees turn flower nectar into honey and store it in wax cells in the hive.",
}


@pytest.fixture(scope="module")
def engine(minilm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled")
    for name, text in FILES.items():
        (folder / name).write_text(text)
    engine = Engine(
        Settings(embed_model=minilm.model_name, device="cpu"),
        embedder=minilm,
        reranker=OverlapReranker(),
    )
    assert not engine.add_files(sorted(folder.iterdir())).errors
    return engine


def test_labels_come_from_csv_tsv_and_jsonl():
    csv = "query,file\nwhy are there tides?,tides.txt\nhow is honey made?,honey.txt;bread.txt\n"
    assert parse_labels(csv, "l.csv") == {
        "why are there tides?": {"tides.txt"},
        "how is honey made?": {"honey.txt", "bread.txt"},
    }
    assert parse_labels("a query\tdocs/x.pdf\na query\ty.pdf\n", "l.tsv") == {
        "a query": {"x.pdf", "y.pdf"}
    }, "a row per file, files named by their file name"
    jsonl = '{"query": "q1", "relevant": ["a.pdf"]}\n\n{"query": "q2", "file": "b.docx"}\n'
    assert parse_labels(jsonl, "l.jsonl") == {"q1": {"a.pdf"}, "q2": {"b.docx"}}


@pytest.mark.parametrize(
    ("text", "name", "says"),
    [
        ("just a query\n", "l.csv", "l.csv, line 1: expected a query, then file name"),
        ('{"query": "q"\n', "l.jsonl", "l.jsonl, line 1: not JSON"),
        ('{"query": "q", "relevant": []}\n', "l.jsonl", "line 1: needs a query and at least"),
        ("query,file\n", "l.csv", "l.csv: no labelled queries in it"),
    ],
)
def test_a_bad_labels_file_says_where_and_why(text, name, says):
    with pytest.raises(ValueError, match=says):
        parse_labels(text, name)


def test_the_four_rankings_side_by_side_as_eval_scores_them(engine):
    from qsearch.labelled import labelled_test

    labels = {
        "why does the sea rise twice a day?": {"tides.txt"},
        "how do bees make honey?": {"honey.txt"},
        "baking temperature for bread": {"bread.txt"},
    }
    report = labelled_test(engine, labels, k=2, rerank=True)
    assert [r["config"] for r in report["configs"]] == [
        "meaning", "keywords", "hybrid", "hybrid + rerank"
    ]  # fmt: skip
    hybrid = next(r for r in report["configs"] if r["config"] == "hybrid")
    assert hybrid == {"config": "hybrid", "ndcg_at_10": 1.0, "recall_at_k": 1.0, "mrr_at_10": 1.0}
    keywords = next(r for r in report["configs"] if r["config"] == "keywords")
    assert keywords["mrr_at_10"] < 1.0, "the tides question shares no word with its answer"
    t = report["threshold"]
    assert t["relevant"] == 3 and t["relevant_kept"] == 1.0 and t["others"] == 3, t
    without = labelled_test(engine, labels, k=2, rerank=False)
    assert [r["config"] for r in without["configs"]] == ["meaning", "keywords", "hybrid"]


def test_labels_naming_files_the_collection_lacks_are_refused(engine):
    from qsearch.labelled import labelled_test

    with pytest.raises(ValueError, match=r"not in the collection: moon\.pdf \(it holds: bread"):
        labelled_test(engine, {"q": {"moon.pdf"}}, rerank=False)


def test_the_threshold_check_and_the_best_separation():
    scored = [(0.9, True), (0.7, True), (0.6, False), (0.2, False), (0.1, False)]
    t = separation(scored, 0.5)
    assert (t["relevant_kept"], t["others_folded"]) == (1.0, pytest.approx(2 / 3))
    assert t["best_min_score"] == 0.65 and t["best_others_folded"] == 1.0
    assert separation([], 0.5)["relevant_kept"] is None


def test_recall_at_k_is_evals_metric_at_another_depth():
    run, qrels = {"q": ["a", "b", "c"]}, {"q": {"c": 1}}
    assert metrics(run, qrels)["recall_at_100"] == 1.0
    assert metrics(run, qrels, recall_at=2)["recall_at_2"] == 0.0
