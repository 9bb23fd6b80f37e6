"""The command line: `python -m qsearch index|search|chunk|eval`, thin over the engine."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from .cli_flags import build_parser, settings_from
from .config import Settings
from .documents import ocr, pool
from .documents.chunk import chunk_document
from .documents.read import Limits, ReadOptions, find_files
from .engine import Engine
from .evaluate import Config, compare, load_beir, sweep
from .models.choose import make_embedder, make_reranker
from .models.embedder import load_tokenizer
from .models.loading import ModelLoadError
from .store.vectors import IndexFolderError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SLOW_FILE_SECONDS = 1.0  # a file that took longer shows its time in `index`'s report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(cmd_index, cmd_search, cmd_chunk, cmd_eval).parse_args(argv)
    try:
        return args.run(args)
    except (ModelLoadError, IndexFolderError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# --- commands ----------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    print(f"loading {settings.embed_model} …", file=sys.stderr)
    engine = _open(args, settings, create=True)
    _ = engine.embedder
    with _Bars() as bars:
        report = engine.add_files(args.paths, progress=bars.update)
    engine.save()
    for f in report.files:
        took = f" ({f.seconds:.1f} s)" if f.seconds >= SLOW_FILE_SECONDS else ""
        if f.ok:
            pages = f" from {f.pages} pages" if f.pages else ""
            print(f"  {f.status:<9} {f.path}: {f.chunks} chunks{pages}{took}")
        else:
            print(f"  error     {f.path}: {f.error}{took}")
    n_unchanged = sum(f.status == "unchanged" for f in report.files)
    print(
        f"{len(report.indexed)} indexed, {n_unchanged} unchanged, {len(report.errors)} failed "
        f"in {report.seconds:.1f}s; the index at {settings.milvus_uri or args.index} holds "
        f"{len(engine.index.docs)} documents, {len(engine.index)} chunks"
    )
    if not report.files:
        print("error: no supported files found in the given paths", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if report.indexed or n_unchanged == len(report.files) else EXIT_FAILED


def cmd_search(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not settings.milvus_uri and not os.path.isfile(os.path.join(args.index, "CURRENT")):
        raise IndexFolderError(
            f"{args.index} holds no qsearch index: build one with "
            f"`python -m qsearch index --index {args.index} PATH...`"
        )
    engine = _open(args, settings)
    hits = engine.search(
        args.query,
        k=args.k,
        rerank=args.rerank,
        rerank_candidates=args.rerank_candidates,
        instruction=args.instruction,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "query": args.query,
                    "hits": [h.to_dict() for h in hits],
                    "timings_ms": hits.timings_ms,
                },
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    if not hits:
        print("no results: the index is empty")
    for h in hits:
        where = (
            h.source
            + (f", page {h.page}" if h.page else "")
            + (f"-{h.page_end}" if h.page_end and h.page_end != h.page else "")
            + (f", {h.where}" if h.where else "")
        )
        parts = [f"overall {h.score:.3f}"] + [
            f"{name} {v:.3f}"
            for name, v in (
                ("meaning", h.dense_score),
                ("keywords", h.keyword_score),
                ("rerank", h.rerank_score),
            )
            if v is not None
        ]
        moved = (
            f" (was #{h.retrieval_rank})" if h.retrieval_rank and h.retrieval_rank != h.rank else ""
        )
        print(f"{h.rank:>2}.{moved} {'  '.join(parts)}  {where}{' (OCR)' if h.ocr else ''}")
        print("    " + _preview(h.text, 300))
    print(
        "  ".join(f"{k.removesuffix('_ms')} {v:.1f} ms" for k, v in hits.timings_ms.items()),
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_chunk(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    tokenizer, model_max = load_tokenizer(settings.embed_model)
    max_tokens, overlap = settings.chunk_sizes(model_max)
    limits, options = Limits.from_settings(settings), ReadOptions.from_settings(settings)
    print(ocr.status(settings.ocr_lang, settings.ocr), file=sys.stderr)
    files = find_files(args.paths)
    if not files:
        print("error: no supported files found in the given paths", file=sys.stderr)
    for path in files:
        started = time.monotonic()
        try:  # in a reader process, with the file's deadline and memory cap, as `index` reads
            doc = pool.load(path, limits, options)
            chunks = chunk_document(doc, tokenizer, max_tokens, overlap)
        except Exception as e:  # noqa: BLE001 - errors are data here: report and go on
            reason = pool.reason(e, str(path))
            failed = {"path": str(path), "error": reason, "seconds": _seconds_since(started)}
            print(
                json.dumps(failed, ensure_ascii=False) if args.json else f"{path}: error: {reason}"
            )
            continue
        if args.json:
            print(
                json.dumps(
                    {
                        "path": str(path),
                        "chunks": len(chunks),
                        "pages": doc.n_pages,
                        "ocr_pages": list(doc.ocr_pages),
                        "notes": list(doc.notes),
                        "characters": len(doc.text),
                        "seconds": _seconds_since(started),
                        "first_chunks": [c.to_dict() for c in chunks[: args.show]],
                    },
                    ensure_ascii=False,
                )
            )
            continue
        pages = f", {doc.n_pages} pages" if doc.n_pages else ""
        read_by_ocr = (
            f", OCR on pages {', '.join(map(str, doc.ocr_pages))}" if doc.ocr_pages else ""
        )
        print(f"{path}: {len(chunks)} chunks{pages}, {len(doc.text):,} characters{read_by_ocr}")
        for note in doc.notes:
            print(f"   note: {note}")
        for c in chunks[: args.show]:
            page = f" p.{c.page}{' OCR' if c.ocr else ''}" if c.page else ""
            print(f"   [{c.start}:{c.end}{page}] {_preview(c.text, 160)}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    data = load_beir(args.beir_dir, args.split)
    configs = _eval_configs(args, settings)
    print(
        f"{len(data.corpus_ids)} documents, {len(data.query_ids)} queries ({args.split}); "
        f"loading {settings.embed_model} …",
        file=sys.stderr,
    )
    embedder = make_embedder(settings.with_(embed_dim=None))  # --dim: cut from the shared vectors
    reranker = make_reranker(settings) if args.rerank else None
    with _Bars() as bars:
        results = compare(
            data,
            embedder,
            configs,
            settings=settings,
            reranker=reranker,
            rerank_candidates=args.rerank_candidates,
            instruction=args.instruction,
            cache=args.index_cache,
            progress=bars.update,
        )
    print(f"{'configuration':<24} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7}", end=" ")
    print(f"{'index MB':>9} {'ms/query':>9}")
    for r in results:
        print(f"{r['config']:<24} {r['ndcg_at_10']:>8.4f} {r['recall_at_100']:>7.4f}", end=" ")
        print(f"{r['mrr_at_10']:>7.4f} {r['index_bytes'] / 2**20:>9.2f} {r['ms_per_query']:>9.2f}")
    first = results[0]
    docs_per_s = (
        f"{first['docs_per_s']:.1f}" if first["docs_per_s"] is not None else "cached or not needed"
    )
    print(f"{first['n_queries']} queries, {first['n_docs']} documents; documents/s {docs_per_s}")
    if args.json:
        extra = {
            "model": settings.embed_model,
            "rerank_model": settings.rerank_model if args.rerank else None,
            "split": args.split,
            "dtype": args.dtype or settings.dtype,
        }
        many = args.compare or args.sweep
        print(json.dumps({**extra, "configs": results} if many else {**extra, **first}))
    return EXIT_OK


def _eval_configs(args: argparse.Namespace, settings: Settings) -> list[Config]:
    """The configurations `eval` measures: the sweep, the comparison, or the settings' own."""
    if args.sweep:
        return sweep(settings)
    if not args.compare:
        return [Config.from_settings(settings, dim=args.dim)]
    weight = settings.dense_weight
    configs = [Config("dense"), Config("lexical"), Config("hybrid", "tmm", dense_weight=weight)]
    configs += [Config("hybrid", "minmax", dense_weight=weight), Config("hybrid", "rrf")]
    if args.dim:
        configs += [
            Config("dense", dim=args.dim),
            Config.from_settings(settings, "hybrid", args.dim),
        ]
    return configs


# --- helpers -----------------------------------------------------------------------------


def _open(args: argparse.Namespace, settings: Settings, create: bool = False) -> Any:
    """The engine over --index DIR, or the Milvus collection of --milvus URI --collection NAME."""
    if settings.milvus_uri:
        return Engine.open_milvus(
            settings.milvus_uri,
            settings.milvus_collection,
            settings,
            create=create,
            follow_index_model=_model_unset(args),
        )
    if not args.index:
        raise ValueError("say where the index is: --index DIR, or --milvus URI --collection NAME")
    return Engine.open(args.index, settings, follow_index_model=_model_unset(args))


def _model_unset(args: argparse.Namespace) -> bool:
    """No --embed-model and no QSEARCH_EMBED_MODEL: use the model the index was built with."""
    return args.embed_model is None and not os.environ.get("QSEARCH_EMBED_MODEL")


def _seconds_since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _preview(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _Bars:
    """One tqdm bar per stage on stderr, for progress callbacks (stage, done, total)."""

    def __enter__(self) -> _Bars:
        self.bars: dict[str, Any] = {}
        return self

    def update(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(
                total=total, desc=stage, unit="", file=sys.stderr, dynamic_ncols=True
            )
        bar.total = total
        bar.update(done - bar.n)

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars.values():
            bar.close()


if __name__ == "__main__":
    sys.exit(main())
