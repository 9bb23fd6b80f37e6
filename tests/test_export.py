"""Results exported as JSON and CSV, and the evidence view's text-in-context, on known hits."""

from __future__ import annotations

import csv
import io
import json

from qsearch.types import Hit
from qsearch.web import export

HITS = [
    Hit(
        rank=1,
        score=0.91,
        source="a.pdf",
        page=3,
        page_end=4,
        text='He said "yes", then left.',
        start=0,
        end=9,
        doc_id="d",
        rerank_score=0.8,
        dense_score=0.55,
        lexical_score=7.5,
        keyword_score=0.6,
        retrieval_rank=4,
        ocr=True,
        collection="Papers",
    ),
    Hit(
        rank=2,
        score=0.5,
        source="deck.pptx",
        page=None,
        page_end=None,
        text="plain",
        start=0,
        end=5,
        doc_id="e",
        where='slide 2 "Results"',
    ),
]
SETTINGS = {  # what the search was narrowed to is part of its settings (web/handlers.py)
    "k": 2,
    "mode": "hybrid",
    "rerank": True,
    "collections": ["Papers", "Slides"],
    "files": ["a.pdf", "deck.pptx"],
    "types": ["pdf", "pptx"],
    "since": "2025-03-01T00:00:00+00:00",
}


def test_json_export_holds_the_query_settings_and_every_score():
    data = json.loads(export.as_json("why?", SETTINGS, HITS))
    assert data["query"] == "why?" and data["settings"] == SETTINGS
    first = data["results"][0]
    assert first == {
        "rank": 1,
        "source": "a.pdf",
        "collection": "Papers",
        "page": 3,
        "page_end": 4,
        "where": None,
        "ocr": True,
        "overall": 0.91,
        "meaning": 0.55,
        "keywords": 0.6,
        "bm25": 7.5,
        "rerank": 0.8,
        "rank_before_rerank": 4,
        "weak": False,
        "text": 'He said "yes", then left.',
    }


def test_csv_export_is_one_row_per_result_readable_by_csv():
    rows = list(csv.DictReader(io.StringIO(export.as_csv("why?", SETTINGS, HITS))))
    assert [r["rank"] for r in rows] == ["1", "2"] and rows[0][
        "text"
    ] == 'He said "yes", then left.'
    assert rows[0]["query"] == "why?" and json.loads(rows[0]["settings"]) == SETTINGS
    assert rows[1]["rerank"] == "" and rows[0]["page"] == "3"
    assert rows[1]["where"] == 'slide 2 "Results"' and rows[0]["where"] == ""
    assert rows[0]["collection"] == "Papers" and rows[1]["collection"] == ""
