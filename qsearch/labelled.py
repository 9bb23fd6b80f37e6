"""A user's own labelled queries over their own collection: the page's retrieval test.

Labelled queries (query -> the files that answer it) come from a small CSV or JSONL or from
results the user marked. Each is ranked by meaning, keywords, hybrid and hybrid + rerank through
`Engine.search`, and scored with `evaluate.metrics`, the code `qsearch eval` reports with, at the
file level (a file ranks where its best passage ranks); and the minimum relevance is checked
against what the user marked: how many of their files' passages it keeps, how many others it
folds, and which threshold would separate them best.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .engine import Engine
from .evaluate import metrics

# (name shown, search mode, reranked): the four rankings compared side by side
LABELLED_CONFIGS = (
    ("meaning", "dense", False),
    ("keywords", "lexical", False),
    ("hybrid", "hybrid", False),
    ("hybrid + rerank", "hybrid", True),
)
MAX_LABELLED = 200  # queries one test runs, at most


def parse_labels(text: str, name: str) -> dict[str, set[str]]:
    """Labelled queries from a small file: query -> the names of the files that answer it.

    JSONL: one object a line, {"query": ..., "relevant": [file, ...]} ("files" or "file" too).
    CSV or TSV (by `name`'s suffix): a query and its file(s) per row (several files in one cell
    separated by ";" or "|", or a row per file), an optional header "query,file". A bad line is
    a ValueError naming `name`, the line and why."""
    labels: dict[str, set[str]] = {}

    def add(query: str, files: list[str], where: str) -> None:
        query, files = query.strip(), [f.strip() for f in files if f and f.strip()]
        if not query or not files:
            raise ValueError(f"{name}, {where}: needs a query and at least one file name")
        labels.setdefault(query, set()).update(_file_name(f) for f in files)

    if name.lower().endswith((".jsonl", ".json", ".ndjson")):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{name}, line {number}: not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{name}, line {number}: expected an object with query, relevant")
            files = row.get("relevant", row.get("files", row.get("file", [])))
            add(str(row.get("query", "")), [files] if isinstance(files, str) else list(files),
                f"line {number}")  # fmt: skip
    else:
        delimiter = "\t" if name.lower().endswith(".tsv") else ","
        for number, row in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), 1):
            if not row or not any(cell.strip() for cell in row):
                continue
            if number == 1 and row[0].strip().lower() == "query":
                continue  # the header
            if len(row) < 2:
                raise ValueError(f"{name}, line {number}: expected a query, then file name(s)")
            files = [f for cell in row[1:] for f in cell.replace("|", ";").split(";")]
            add(row[0], files, f"line {number}")
    if not labels:
        raise ValueError(f"{name}: no labelled queries in it (a query and its file(s) per line)")
    if len(labels) > MAX_LABELLED:
        raise ValueError(f"{name}: {len(labels)} queries; a test runs {MAX_LABELLED} at most")
    return labels


def _file_name(source: str) -> str:
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def labelled_test(
    engine: Engine,
    labels: dict[str, set[str]],
    *,
    k: int = 10,
    rerank: bool = True,
    rerank_candidates: int = 20,
    min_score: float | None = None,
    instruction: str | None = None,
    also: Sequence[Engine] = (),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """nDCG@10, Recall@k and MRR@10 of each of LABELLED_CONFIGS over `labels` (query -> relevant
    file names), at the file level (a file ranks where its best passage does), with `metrics`:
    the code `qsearch eval` reports with. Also how the minimum relevance separates the passages
    of the labelled files from the others in the hybrid top k (reranked when `rerank`), and the
    threshold that would separate them best. Labels naming files the collection lacks are a
    ValueError naming them."""
    _check_files(labels, {_file_name(d.source) for e in (engine, *also) for d in e.documents()})
    qrels = {q: {f: 1 for f in files} for q, files in labels.items()}
    configs = [c for c in LABELLED_CONFIGS if rerank or not c[2]]
    results, separated = [], None
    steps, done = len(configs) * len(labels), 0
    for name, mode, reranked in configs:
        run: dict[str, list[str]] = {}
        scored: list[tuple[float, bool]] = []
        for query in labels:
            hits = engine.search(
                query, k=max(k, 10), mode=mode, rerank=reranked, also=also,
                rerank_candidates=max(rerank_candidates, k), instruction=instruction,
                min_score=min_score,
            )  # fmt: skip
            run[query] = list(dict.fromkeys(_file_name(h.source) for h in hits))
            scored += [(h.score, _file_name(h.source) in labels[query]) for h in hits[:k]]
            done += 1
            if progress is not None:
                progress(done, steps)
        row = metrics(run, qrels, recall_at=k)
        results.append(
            {
                "config": name,
                "ndcg_at_10": row["ndcg_at_10"],
                "recall_at_k": row[f"recall_at_{k}"],
                "mrr_at_10": row["mrr_at_10"],
            }
        )
        if mode == "hybrid":  # the last hybrid row: reranked when it ran
            separated = scored
    threshold = engine.settings.min_score if min_score is None else min_score
    return {
        "queries": len(labels),
        "k": k,
        "configs": results,
        "threshold": separation(separated or [], threshold),
    }


def _check_files(labels: dict[str, set[str]], held: set[str]) -> None:
    """ValueError naming the labelled files the collection lacks, and what it holds."""
    missing = sorted({f for files in labels.values() for f in files} - held)
    if missing:
        listed = ", ".join(sorted(held)[:12]) + (" …" if len(held) > 12 else "")
        raise ValueError(
            f"the labels name files that are not in the collection: {', '.join(missing[:10])}"
            f" (it holds: {listed or 'nothing'})"
        )


def separation(scored: Sequence[tuple[float, bool]], min_score: float) -> dict[str, Any]:
    """How `min_score` splits (overall, is it from a labelled file) pairs: the share of relevant
    passages kept (at or above it) and of the others folded (below it); and the threshold on
    a 0.05 grid that maximises their mean (ties: the one nearest `min_score`)."""
    relevant = np.array([s for s, r in scored if r], dtype=np.float64)
    others = np.array([s for s, r in scored if not r], dtype=np.float64)

    def split(t: float) -> tuple[float | None, float | None]:
        kept = float((relevant >= t).mean()) if len(relevant) else None
        folded = float((others < t).mean()) if len(others) else None
        return kept, folded

    kept, folded = split(min_score)
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    best = max(
        grid, key=lambda t: (np.mean([v for v in split(t) if v is not None] or [0]),
                             -abs(t - min_score)),
    )  # fmt: skip
    best_kept, best_folded = split(best)
    return {
        "min_score": min_score,
        "relevant": len(relevant),
        "relevant_kept": kept,
        "others": len(others),
        "others_folded": folded,
        "best_min_score": best,
        "best_relevant_kept": best_kept,
        "best_others_folded": best_folded,
    }
