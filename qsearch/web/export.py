"""The current results as files to download: JSON (everything) and CSV (one row per result)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from ..types import HIT_FIELDS, Hit

COLUMNS = list(HIT_FIELDS)  # the one vocabulary of a hit (qsearch.types.HIT_FIELDS)


def rows(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    return [h.to_dict() for h in hits]


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
