"""Keywords in the query's language, measured: nDCG@10 of the lexical (BM25) and hybrid rankings
on XQuAD, before (every text and query analysed as English, as qsearch did) and after (each in
its own language: store/analysis.py), side by side over one embedding pass per collection.

XQuAD (google-deepmind/xquad, CC BY-SA 4.0): 240 Wikipedia paragraphs and 1,190 questions,
professionally translated from SQuAD v1.1 into ten languages. Each collection here is the
paragraphs of one language, or of several together (a mixed collection); each question is a
query whose one relevant passage is the paragraph it was written for, in its own language.
The data is not committed: point --xquad at a folder holding `xquad.<lang>.json`, e.g.

    git clone https://github.com/google-deepmind/xquad /tmp/xquad
    python bench/keywords_language.py --xquad /tmp/xquad --json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import common

from qsearch.evaluate import BeirData, Config, corpus_index, metrics, rank_queries  # noqa: E402

CONFIGS = [Config("lexical"), Config("hybrid"), Config("dense")]
ANALYSES = {"before (English for all)": "en", "after (each its own language)": None}


def xquad(folder: Path, languages: list[str]) -> BeirData:
    """The paragraphs of `languages` as one corpus, their questions as queries."""
    ids, texts, qids, questions, qrels = [], [], [], [], {}
    for language in languages:
        data = json.loads((folder / f"xquad.{language}.json").read_text(encoding="utf-8"))
        for a, article in enumerate(data["data"]):
            for p, paragraph in enumerate(article["paragraphs"]):
                doc = f"{language}-{a}-{p}"
                ids.append(doc)
                texts.append(paragraph["context"])
                for qa in paragraph["qas"]:
                    qids.append(f"{language}-{qa['id']}")
                    questions.append(qa["question"])
                    qrels[qids[-1]] = {doc: 1}
    return BeirData(ids, texts, qids, questions, qrels, "xquad-" + "+".join(languages))


def measure(data: BeirData, embedder, settings) -> dict:  # noqa: ANN001
    """nDCG@10 (and Recall@100, MRR@10) per configuration, for each analysis, on one index."""
    from qsearch import Engine
    from qsearch.store.bm25 import LexicalIndex

    index, _ = corpus_index(data, embedder)
    vectors = embedder.encode(data.query_texts, is_query=True)
    out: dict = {"passages": len(data.corpus_ids), "queries": len(data.query_ids)}
    for label, language in ANALYSES.items():
        index._lexical = LexicalIndex(language)  # the analysis under test, swapped in
        engine = Engine(settings, embedder=embedder, index=index)
        started = time.perf_counter()
        out[label] = {
            c.name: metrics(rank_queries(data, engine, vectors, c.ranking), data.qrels)
            for c in CONFIGS
            if c.mode != "dense" or language is None  # dense is the same for both: once
        }
        out[label]["seconds"] = round(time.perf_counter() - started, 1)
        out[label]["languages"] = index.lexical.languages
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--xquad", type=Path, required=True, help="folder with xquad.<lang>.json")
    p.add_argument("--languages", default="de,es,ru,ro,el,vi,en", help="one collection each")
    p.add_argument("--mixed", default="de,es,en", help="one collection of all of these ('': none)")
    p.add_argument("--embed-model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    from qsearch.config import Settings, bundled_small_model
    from qsearch.models.embedder import load_embedder

    model = args.embed_model or str(bundled_small_model())
    embedder = load_embedder(model, device="cpu", dtype="float32")
    settings = Settings(embed_model=model)
    collections = [[x] for x in args.languages.split(",") if x]
    collections += [args.mixed.split(",")] if args.mixed else []
    results = {}
    for languages in collections:
        results["+".join(languages)] = measure(xquad(args.xquad, languages), embedder, settings)
    report = {
        "benchmark": "keywords_language",
        "data": "XQuAD (google-deepmind/xquad, CC BY-SA 4.0)",
        "embed_model": common.model_label(args.embed_model, Path(model)),
        "results": results,
        "environment": common.environment("cpu")
        | {"versions": common.versions("py3langid", "PyStemmer", "bm25s", "torch")},
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
