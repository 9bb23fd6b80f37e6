"""Where a result stops being a match: the page's weak-match thresholds, chosen on dev data.

A result card is drawn as weak when its passage matches the query on neither meaning (cosine
below `meaning`) nor keywords (keyword score below `keywords`). This measures, for every pair of
thresholds on a grid, how often that rule marks
- a relevant passage in a query's hybrid top 10 (SciFact dev, train queries): must stay rare;
- an off-topic passage: the hybrid top 10 of the same queries over the app's sample documents
  (coffee, first aid, Python, the solar system, volcanoes), which answer none of them;
and picks the pair that marks the most off-topic passages while marking at most `--max-lost` of
the relevant ones, with the keyword threshold at most `--max-keywords`: a passage whose keyword
score is a quarter of what the query's words can reach contains them, and is a match in words
whatever its meaning (a higher threshold marks more off-topic passages here, but only because
the samples share words with the queries). Prints one JSON object.

    python bench/weak_match.py ../shared/data/scifact-dev --json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from common import ROOT, SHARED, environment

sys.path.insert(0, str(ROOT))

from qsearch import Engine, Settings  # noqa: E402
from qsearch.config import bundled_small_model, model_name  # noqa: E402
from qsearch.evaluate import corpus_index, load_beir  # noqa: E402
from qsearch.search.retrieval import Ranking, retrieve  # noqa: E402

MEANING_GRID = [round(x, 2) for x in np.arange(0.10, 0.46, 0.01)]
KEYWORD_GRID = [round(x, 2) for x in np.arange(0.05, 0.61, 0.05)]


def top10(index, queries: list[str], vectors: np.ndarray) -> list[list]:
    ranking = Ranking()
    return [list(retrieve([index], q, v, k=10, ranking=ranking)) for q, v in zip(queries, vectors)]


def marked(pairs: np.ndarray, meaning: float, keywords: float) -> float:
    """The share of (cosine, keyword score) pairs the rule marks weak."""
    weak = (pairs[:, 0] < meaning) & (pairs[:, 1] < keywords)
    return float(weak.mean()) if len(pairs) else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("beir_dir", nargs="?", default=str(SHARED / "scifact-dev"))
    p.add_argument("--split", default="train")
    p.add_argument("--embed-model", default=str(bundled_small_model()))
    p.add_argument(
        "--max-lost", type=float, default=0.005, help="share of relevant passages marked, at most"
    )
    p.add_argument(
        "--max-keywords", type=float, default=0.25, help="the keyword threshold, at most"
    )
    p.add_argument("--index-cache", default=str(ROOT / ".devdata" / "scifact-minilm"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    settings = Settings(embed_model=args.embed_model, device="cpu", dtype="float32")
    data = load_beir(args.beir_dir, args.split)
    samples = Engine(settings)
    embedder = samples.embedder
    corpus, _ = corpus_index(data, embedder, args.index_cache)
    vectors = embedder.encode(data.query_texts, is_query=True)

    relevant = []
    for qid, hits in zip(data.query_ids, top10(corpus, data.query_texts, vectors)):
        judged = data.qrels.get(qid, {})
        relevant += [(h.dense_score, h.keyword_score) for h in hits if judged.get(h.doc_id)]
    samples.add_files(sorted((ROOT / "assets" / "samples").iterdir()))
    off_topic = [
        (h.dense_score, h.keyword_score)
        for hits in top10(samples.index, data.query_texts, vectors)
        for h in hits
    ]
    rel, off = np.array(relevant), np.array(off_topic)
    grid = [
        {
            "meaning": m,
            "keywords": k,
            "relevant_marked": marked(rel, m, k),
            "off_topic_marked": marked(off, m, k),
        }
        for m in MEANING_GRID
        for k in KEYWORD_GRID
    ]
    allowed = [
        g
        for g in grid
        if g["relevant_marked"] <= args.max_lost and g["keywords"] <= args.max_keywords
    ]
    best = max(allowed, key=lambda g: (g["off_topic_marked"], -g["relevant_marked"]))
    result = {
        "benchmark": "weak_match",
        "command": "python bench/weak_match.py " + " ".join(sys.argv[1:]),
        "model": model_name(args.embed_model),
        "queries": len(data.query_ids),
        "relevant_in_top10": len(rel),
        "off_topic_passages": len(off),
        "cosine_percentiles": {
            "relevant": np.percentile(rel[:, 0], [2, 5, 10, 50]).round(3).tolist(),
            "off_topic": np.percentile(off[:, 0], [50, 90, 95, 99]).round(3).tolist(),
        },
        "max_lost": args.max_lost,
        "max_keywords": args.max_keywords,
        "chosen": best,
        "grid": grid,
        "environment": environment("cpu"),
    }
    print(json.dumps(result if args.json else best, indent=1))


if __name__ == "__main__":
    main()
