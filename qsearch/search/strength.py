"""What a weak match is: a passage that matches the query on neither meaning nor keywords.

The overall score ranks passages relative to the query's best candidates, so the best of a set
of unrelated passages still scores high; whether a passage matches at all is said on fixed
scales instead: a cosine below WEAK_MEANING is no match in meaning, a keyword score below
WEAK_KEYWORDS none in words. The thresholds were chosen on SciFact dev with all-MiniLM-L6-v2
(`python bench/weak_match.py --json`, bench/results/scifact-weak-match-minilm.json): the pair that
marks the most passages the SciFact queries find among the app's unrelated sample documents
(88%) while marking at most 0.5% of the relevant passages in their top 10 (0.38%), the keyword
threshold at most 0.25 (a quarter of what the query's words can reach is a match in words).
Qwen3-Embedding scores unrelated pairs alike (0.14 in its model card's example, related ones
0.60-0.76)."""

from __future__ import annotations

WEAK_MEANING = 0.31  # a cosine below this: no match in meaning
WEAK_KEYWORDS = 0.25  # a keyword score below this: no match in words


def weak_match(cosine: float | None, keywords: float | None) -> bool:
    """Whether a passage with these scores matches on neither (a score it lacks can't save it;
    with neither score there is nothing to judge: not weak)."""
    if cosine is None and keywords is None:
        return False
    return (cosine is None or cosine < WEAK_MEANING) and (
        keywords is None or keywords < WEAK_KEYWORDS
    )
