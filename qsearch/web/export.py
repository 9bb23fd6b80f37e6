"""The current results as files to download: JSON (everything) and CSV (one row per result)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from ..types import Hit

COLUMNS = [
    "rank",
    "source",
    "page",
    "page_end",
    "ocr",
    "overall",
    "meaning",
    "keywords",
    "bm25",
    "reranker",
    "rank_before_rerank",
    "text",
]


def rows(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    return [
        {
            "rank": h.rank,
            "source": h.source,
            "page": h.page,
            "page_end": h.page_end,
            "ocr": h.ocr,
            "overall": h.score,
            "meaning": h.dense_score,
            "keywords": h.keyword_score,
            "bm25": h.lexical_score,
            "reranker": h.rerank_score,
            "rank_before_rerank": h.retrieval_rank,
            "text": h.text,
        }
        for h in hits
    ]


def as_json(query: str, settings: dict[str, Any], hits: Sequence[Hit]) -> str:
    return json.dumps(
        {"query": query, "settings": settings, "results": rows(hits)}, ensure_ascii=False, indent=1
    )


def as_csv(query: str, settings: dict[str, Any], hits: Sequence[Hit]) -> str:
    """One row per result, each with the query and the settings (as JSON) that produced it."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["query", "settings", *COLUMNS])
    writer.writeheader()
    given = {"query": query, "settings": json.dumps(settings, ensure_ascii=False)}
    writer.writerows({**given, **row} for row in rows(hits))
    return out.getvalue()
