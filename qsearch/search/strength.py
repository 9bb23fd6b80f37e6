"""What a weak match is: a hit whose overall relevance is below the minimum relevance.

One function decides it, so the page's faded cards, its "No strong match" notice, the folded
"weak matches hidden", the CLI, the library's `Hit.weak`, MCP and the export always agree. The
overall relevance is absolute (relevance.py: an estimate that the passage answers the query,
from its own evidence), so the threshold means the same for every query and collection.

DEFAULT_MIN_SCORE was chosen on dev data with all-MiniLM-L6-v2 (`python bench/weak_match.py`,
bench/results/relevance-fit-minilm.json): the threshold under which off-topic queries (SciFact
claims over a mixed collection of office files, and queries sharing one word with those files)
get a weak top hit while relevant top hits (SciFact, and questions about the office files) stay
strong.
"""

from __future__ import annotations

import math

from ..config import DEFAULT_MIN_SCORE  # overall relevance below this: a weak match

__all__ = ["DEFAULT_MIN_SCORE", "check_min_score", "is_weak"]


def is_weak(overall: float | None, min_score: float = DEFAULT_MIN_SCORE) -> bool:
    """Whether a hit of this overall relevance is a weak match (below `min_score`); a hit with no
    overall relevance (NaN, None) is weak, as nothing says it matches."""
    if overall is None or math.isnan(overall):
        return True
    return overall < min_score


def check_min_score(value: float) -> float:
    """`value` as a minimum relevance, or ValueError naming it and the valid range."""
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"minimum relevance must be between 0 and 1, got {value}")
    return value
