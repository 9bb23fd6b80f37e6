"""Overall relevance: fit its weights on dev data, choose the minimum relevance, and check both.

The dev data (all through `retrieval.gather` / `pooled`, the code every search runs):
- relevant: SciFact dev (train queries) over its corpus, the judged passages in the hybrid top 10;
  and questions about a mixed collection of real office files (bench/data/office_questions.tsv),
  the best passage of the file that answers each, when it is in the top 10;
- off-topic: the SciFact claims over the office files (they answer none), and queries that share
  one word with the office files: three words of a claim that no office file holds, plus one
  word an office passage holds (made with a fixed seed, e.g. "insulin lattice receptor mutations");
- near misses: SciFact's unjudged passages in the top 10 (same topic, not the answer), weighted
  NEAR_MISS_WEIGHT: a fit on them alone would mark on-topic passages weak.
It fits a class-balanced logistic regression per search mode on the anchored cosine
(relevance.Anchors) and keyword coverage, on half of the queries of each set (by a fixed split),
and reports the other half too (held out): the share of off-topic queries whose top hit is weak
and of relevant top hits that are strong at the chosen threshold, SciFact nDCG@10 ranked by the
fused score (what ranks) and by overall relevance, and how the bars order. The threshold is the
highest that keeps >= --keep of the relevant top hits strong on the fitting half.

    python bench/weak_match.py ../shared/data/scifact-dev --office /work/devdata/office --json

The office collection is made by bench/office_corpus.py (its manifest: bench/office_corpus.tsv).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
from common import ROOT, SHARED, environment

sys.path.insert(0, str(ROOT))

from qsearch import Engine, Settings  # noqa: E402
from qsearch.config import bundled_small_model, model_name  # noqa: E402
from qsearch.evaluate import corpus_index, load_beir, metrics  # noqa: E402
from qsearch.search.relevance import FITTED, measure_anchors  # noqa: E402
from qsearch.search.retrieval import Ranking, gather, pooled  # noqa: E402
from qsearch.store.analysis import tokenize  # noqa: E402
from qsearch.store.vectors import VectorIndex  # noqa: E402

QUESTIONS = ROOT / "bench" / "data" / "office_questions.tsv"
NEAR_MISS_WEIGHT = 0.25
ONE_WORD_QUERIES = 400
SEED = 36


def pools(index, queries: list[str], vectors: np.ndarray, mode: str = "hybrid") -> list[list]:
    """Every gathered candidate of each query (not only the top 10), best first by the fused
    score, each with cosine, keyword coverage and the fused score."""
    ranking = Ranking(mode)
    out = []
    for q, v in zip(queries, vectors):
        found = [gather(index, q, v, ranking.depth, mode)]
        out.append(pooled(found, 10**6, ranking))
    return out


def features(c) -> tuple[float, float]:
    return (c.cosine if c.cosine is not None else np.nan, c.coverage or 0.0)


def one_word_queries(office: VectorIndex, claims: list[str], n: int) -> list[str]:
    """Queries sharing one word with the office files: three claim words absent from them, one
    word an office passage holds (not a number; in 1..20 passages, so it is a real word there)."""
    rng = random.Random(SEED)
    lexical = office.lexical
    vocab = lexical._bm25.vocab_dict
    indptr = lexical._bm25.scores["indptr"]
    chunks = list(office.chunks.values())
    queries = []
    while len(queries) < n:
        words = re.findall(r"[^\W\d_]{5,}", rng.choice(chunks).text)
        good = []
        for w in set(words):
            terms = tokenize(w, "en")
            if terms and terms[0] in vocab and vocab[terms[0]] < len(indptr) - 1:
                df = indptr[vocab[terms[0]] + 1] - indptr[vocab[terms[0]]]
                if 1 <= df <= 20:
                    good.append(w)
        claim_words = [
            w
            for w in re.findall(r"[A-Za-z]{4,}", rng.choice(claims))
            if (t := tokenize(w, "en")) and t[0] not in vocab
        ]
        if not good or len(claim_words) < 3:
            continue
        picked = rng.sample(claim_words, 3) + [rng.choice(sorted(good))]
        rng.shuffle(picked)
        queries.append(" ".join(picked))
    return queries


def office_engine(folder: Path, settings: Settings, cache: Path) -> Engine:
    if (cache / "CURRENT").is_file():
        return Engine.open(cache, settings)
    engine = Engine(settings, index_dir=cache)
    report = engine.add_files(sorted(p for p in folder.iterdir() if p.name != "MANIFEST.tsv"))
    failed = [f"{f.path}: {f.error}" for f in report.errors]
    if failed:
        print("not indexed:", *failed, sep="\n  ", file=sys.stderr)
    engine.save()
    return engine


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, ...]:
    """Class-balanced logistic regression (weights `w` within each class); (bias, coefs...)."""
    from sklearn.linear_model import LogisticRegression

    balance = np.where(y == 1, 1 / w[y == 1].sum(), 1 / w[y == 0].sum()) * len(y) / 2
    model = LogisticRegression(C=10.0, max_iter=1000).fit(x, y, sample_weight=w * balance)
    return (float(model.intercept_[0]), *map(float, model.coef_[0]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("beir_dir", nargs="?", default=str(SHARED / "scifact-dev"))
    p.add_argument("--split", default="train")
    p.add_argument("--office", default="/work/devdata/office", help="the office collection")
    p.add_argument("--embed-model", default=str(bundled_small_model()))
    p.add_argument("--keep", type=float, default=0.97, help="relevant top hits kept strong")
    p.add_argument("--index-cache", default=str(ROOT / ".devdata" / "scifact-minilm"))
    p.add_argument("--office-cache", default=str(ROOT / ".devdata" / "office-minilm"))
    p.add_argument("--dump", help="also save every candidate's features here (.npz)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    settings = Settings(embed_model=args.embed_model, device="cpu", dtype="float32")
    data = load_beir(args.beir_dir, args.split)
    office = office_engine(Path(args.office), settings, Path(args.office_cache))
    embedder = office.embedder
    anchors = measure_anchors(embedder)
    corpus, _ = corpus_index(data, embedder, args.index_cache)
    claims = embedder.encode(data.query_texts, is_query=True)
    questions = list(csv.DictReader(open(QUESTIONS, encoding="utf-8"), delimiter="\t"))
    asked = [q["query"] for q in questions]
    one_word = one_word_queries(office.index, data.query_texts, ONE_WORD_QUERIES)
    sets = {
        "scifact": (pools(corpus.index if hasattr(corpus, "index") else corpus,
                          data.query_texts, claims), None),
        "office_questions": (pools(office.index, asked,
                                   embedder.encode(asked, is_query=True)), None),
        "claims_over_office": (pools(office.index, data.query_texts, claims), None),
        "one_word_over_office": (pools(office.index, one_word,
                                       embedder.encode(one_word, is_query=True)), None),
    }  # fmt: skip
    # labels: 1 relevant, 0 off-topic, -1 near miss; (query set, query number, rank, label, x)
    rows = []
    for n, cands in enumerate(sets["scifact"][0]):
        judged = data.qrels.get(data.query_ids[n], {})
        for r, c in enumerate(cands[:10]):
            rows.append(("scifact", n, r, 1 if judged.get(c.chunk.doc_id) else -1, features(c)))
    for n, cands in enumerate(sets["office_questions"][0]):
        right = questions[n]["file"]
        best = next((r for r, c in enumerate(cands[:10]) if Path(c.chunk.source).name == right),
                    None)  # fmt: skip
        for r, c in enumerate(cands[:10]):
            if r == best:
                rows.append(("office_questions", n, r, 1, features(c)))
    for name in ("claims_over_office", "one_word_over_office"):
        for n, cands in enumerate(sets[name][0]):
            for r, c in enumerate(cands[:10]):
                rows.append((name, n, r, 0, features(c)))
    kind = np.array([r[0] for r in rows])
    qn = np.array([r[1] for r in rows])
    rank = np.array([r[2] for r in rows])
    label = np.array([r[3] for r in rows])
    x = np.array([r[4] for r in rows], dtype=np.float64)
    meaning = anchors.meaning(x[:, 0])
    fitting = qn % 2 == 0  # even-numbered queries fit, odd ones are held out
    if args.dump:
        np.savez(args.dump, kind=kind, qn=qn, rank=rank, label=label, x=x, meaning=meaning)

    y = (label == 1).astype(int)
    weight = np.where(label == -1, NEAR_MISS_WEIGHT, 1.0)
    inputs = {
        "hybrid": np.column_stack([meaning, x[:, 1]]),
        "dense": meaning[:, None],
        "lexical": x[:, [1]],
    }
    fitted = {mode: fit(inputs[mode][fitting], y[fitting], weight[fitting]) for mode in inputs}

    def overall(mode: str, which: np.ndarray) -> np.ndarray:
        b = fitted[mode]
        return 1 / (1 + np.exp(-(b[0] + inputs[mode][which] @ np.array(b[1:]))))

    def figures(mode: str, half: np.ndarray, threshold: float) -> dict:
        p = np.full(len(rows), np.nan)
        p[half] = overall(mode, half)
        top = half & (rank == 0)
        strong_relevant = p[top & (label == 1)] >= threshold
        office_rel = p[half & (label == 1) & (kind == "office_questions")] >= threshold
        out = {
            "relevant_top_hits": int(strong_relevant.size),
            "relevant_top_strong": float(strong_relevant.mean()),
            "office_questions_found": int(office_rel.size),
            "office_answer_strong": float(office_rel.mean()) if office_rel.size else None,
        }
        for name in ("claims_over_office", "one_word_over_office"):
            weak = p[top & (kind == name)] < threshold
            out[f"{name}_queries"] = int(weak.size)
            out[f"{name}_top_weak"] = float(weak.mean())
        return out

    chosen = {}
    for mode in inputs:
        p_fit = overall(mode, fitting & (rank == 0) & (label == 1))
        threshold = float(np.floor(np.quantile(p_fit, 1 - args.keep) * 100) / 100)
        chosen[mode] = {
            "weights": dict(zip(("bias", *(["meaning"] if mode != "lexical" else []),
                                 *(["keywords"] if mode != "dense" else [])), fitted[mode])),
            "threshold_keeping": threshold,
            "fitting_half": figures(mode, fitting, threshold),
            "held_out_half": figures(mode, ~fitting, threshold),
        }  # fmt: skip

    # SciFact nDCG@10 (hybrid): ranked by the fused score (the pipeline), and by overall relevance
    b = fitted["hybrid"]
    run_fused, run_overall = {}, {}
    for n, cands in enumerate(sets["scifact"][0]):
        qid = data.query_ids[n]
        run_fused[qid] = [c.chunk.doc_id for c in cands[:100]]
        z = np.array([b[0] + b[1] * anchors.meaning(c.cosine) + b[2] * (c.coverage or 0)
                      for c in cands])  # fmt: skip
        order = np.argsort(-z, kind="stable")[:100]
        run_overall[qid] = [cands[i].chunk.doc_id for i in order]
    result = {
        "benchmark": "relevance_fit",
        "command": "python bench/weak_match.py " + " ".join(sys.argv[1:]),
        "model": model_name(args.embed_model),
        "anchors": {"unrelated": anchors.unrelated, "related": anchors.related},
        "queries": {name: len(v[0]) for name, v in sets.items()},
        "near_miss_weight": NEAR_MISS_WEIGHT,
        "keep": args.keep,
        "fits": chosen,
        "weights_in_code": {m: vars(w) for m, w in FITTED.items()},
        "scifact_ndcg_at_10": {
            "ranked_by_fused_score": metrics(run_fused, data.qrels)["ndcg_at_10"],
            "ranked_by_overall": metrics(run_overall, data.qrels)["ndcg_at_10"],
        },
        "one_word_examples": one_word[:8],
        "environment": environment("cpu"),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
