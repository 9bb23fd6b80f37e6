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
(relevance.Anchors) and keyword coverage, on the even-numbered queries of each set, and reports
on the odd-numbered ones too (held out): of the queries whose top hit (as each mode ranks:
hybrid by overall relevance, dense by cosine, lexical by BM25) is relevant, the share shown
strong; of the off-topic queries, the share whose top hit is weak. The default minimum
relevance is the highest on a 0.05 grid that keeps >= --keep of the relevant top hits strong in
every mode on the fitting half. It also reports SciFact nDCG@10 ranked by the tmm fusion (the
ranking before) and by overall relevance.

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


def pools(index, queries: list[str], vectors: np.ndarray) -> list[list]:
    """Every gathered candidate of each query (the union of the dense and BM25 top 100), best
    first by the tmm fusion (the ranking before this fit, which chooses the top 10 it learns
    from), each with cosine, keyword coverage and BM25 over its bound."""
    ranking = Ranking("hybrid", "tmm")
    return [
        pooled([gather(index, q, v, ranking.depth, "hybrid")], 10**6, ranking)
        for q, v in zip(queries, vectors)
    ]


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
    p.add_argument("--json", action="store_true", help="(the output is always JSON)")
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
        "scifact": (pools(corpus, data.query_texts, claims), None),
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

    def top_hits(mode: str) -> dict[str, list[tuple[int, float, bool]]]:
        """Per query set: (query number, overall, is it relevant) of each query's top hit as the
        pipeline ranks in `mode` (hybrid: by overall; dense: cosine; lexical: BM25)."""
        b = fitted[mode]
        out = {}
        for name, (cands, _) in sets.items():
            tops = []
            for n, found in enumerate(cands):
                cos = np.array([c.cosine for c in found])
                cov = np.array([c.coverage or 0.0 for c in found])
                z = b[0] + (b[1] * anchors.meaning(cos) if mode != "lexical" else 0)
                z = z + (b[-1] * cov if mode != "dense" else 0)
                p = 1 / (1 + np.exp(-z))
                key = {"hybrid": p, "dense": cos, "lexical": [c.keywords for c in found]}[mode]
                best = int(np.argmax(key))
                tops.append((n, float(p[best]), relevant(name, n, found[best])))
            out[name] = tops
        return out

    def relevant(name: str, n: int, c) -> bool:  # noqa: ANN001
        if name == "scifact":
            return bool(data.qrels.get(data.query_ids[n], {}).get(c.chunk.doc_id))
        return name == "office_questions" and Path(c.chunk.source).name == questions[n]["file"]

    def figures(tops: dict, half: int, threshold: float) -> dict:
        """Relevant top hits kept strong, off-topic top hits weak, on one half of the queries."""
        out = {}
        rel = [p for name in ("scifact", "office_questions") for n, p, r in tops[name]
               if r and n % 2 == half]  # fmt: skip
        out["relevant_top_hits"] = len(rel)
        out["relevant_top_strong"] = float(np.mean(np.array(rel) >= threshold))
        office = [p for n, p, r in tops["office_questions"] if r and n % 2 == half]
        out["office_answer_top_strong"] = float(np.mean(np.array(office) >= threshold))
        for name in ("claims_over_office", "one_word_over_office"):
            weak = [p < threshold for n, p, _ in tops[name] if n % 2 == half]
            out[f"{name}_queries"] = len(weak)
            out[f"{name}_top_weak"] = float(np.mean(weak))
        return out

    tops = {mode: top_hits(mode) for mode in inputs}
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    keeps = [t for t in grid if all(figures(tops[m], 0, t)["relevant_top_strong"] >= args.keep
                                     for m in inputs)]  # fmt: skip
    default = max(keeps)
    chosen = {
        mode: {
            "weights": dict(
                zip(
                    (
                        "bias",
                        *(["meaning"] if mode != "lexical" else []),
                        *(["keywords"] if mode != "dense" else []),
                    ),
                    fitted[mode],
                )
            ),
            "at_default": {
                "fitting_half": figures(tops[mode], 0, default),
                "held_out_half": figures(tops[mode], 1, default),
            },
            "sweep_held_out": {t: figures(tops[mode], 1, t) for t in grid[3:14]},
        }  # fmt: skip
        for mode in inputs
    }

    # SciFact nDCG@10 (hybrid): ranked by the tmm fusion (the old default) and by overall
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
        "default_min_score": default,
        "fits": chosen,
        "weights_in_code": {m: vars(w) for m, w in FITTED.items()},
        "scifact_ndcg_at_10": {
            "hybrid_tmm_w0.8": metrics(run_fused, data.qrels)["ndcg_at_10"],
            "hybrid_relevance": metrics(run_overall, data.qrels)["ndcg_at_10"],
        },
        "one_word_examples": one_word[:8],
        "environment": environment("cpu"),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
