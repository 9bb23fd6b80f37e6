"""The low-confidence log: one JSON line per search whose results are all weak, for the operator.

It shows what users look for and the collection does not answer. Weak means: every result is a
weak match (search/strength.py: its overall relevance, which takes the reranker's P(yes) in when
reranked, is below the minimum relevance), exactly when the page says "No strong match". A line
holds the time, the query, the mode and the top scores:
never document text. Off unless a path is given (`--low-confidence-log`): it records what users
type.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..types import Hit

TOP = 5  # scores logged per search


def is_weak(hits: Sequence[Hit], *, reranked: bool = False) -> bool:
    """Whether `hits` hold nothing strong: every one is weak (Hit.weak, reranked or not); no
    hits: no."""
    return bool(hits) and all(h.weak for h in hits)


class LowConfidenceLog:
    """Appends a JSON line to `path` for each weak search; safe to call from many threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        with open(self.path, "a", encoding="utf-8"):  # fails now, naming the path, if it can't
            pass

    def record(self, query: str, mode: str, hits: Sequence[Hit], *, reranked: bool) -> bool:
        """Log the search when its best result is weak; returns whether a line was written."""
        if not is_weak(hits, reranked=reranked):
            return False
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "query": query,
            "mode": mode,
            "reranked": reranked,
            "top": [_scores(h) for h in hits[:TOP]],
        }
        text = json.dumps(line, ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(text)  # one write per line: whole lines, also beside other writers
        return True


def _scores(hit: Hit) -> dict[str, float | int | None]:
    """A hit's rank and scores, rounded; nothing of its text or source."""
    scores = {
        "score": hit.score,
        "rerank": hit.rerank_score,
        "cosine": hit.dense_score,
        "keywords": hit.keyword_score,
    }
    return {"rank": hit.rank, **{k: round(float(v), 4) for k, v in scores.items() if v is not None}}
