"""The command line: `python -m qsearch index|search|chunk|eval`, thin over the engine."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .config import DEFAULT_EMBED_MODEL, DEFAULT_RERANK_MODEL, FUSIONS, INDEX_KINDS, SEARCH_MODES, Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .index import IndexFolderError
    from .loading import ModelLoadError

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
    from .engine import Engine

    settings = _settings(args, chunk_tokens=args.chunk_tokens, chunk_overlap=args.overlap,
                         embed_dim=args.dim, index_kind=args.index_kind)
    engine = Engine.open(args.index, settings, follow_index_model=_model_unset(args))
    print(f"loading {engine.settings.embed_model} …", file=sys.stderr)
    _ = engine.embedder
    with _Bars() as bars:
        report = engine.add_files(args.paths, progress=bars.update)
    engine.save()
    for f in report.files:
        if f.ok:
            pages = f" from {f.pages} pages" if f.pages else ""
            print(f"  {f.status:<9} {f.path}: {f.chunks} chunks{pages}")
        else:
            print(f"  error     {f.path}: {f.error}")
    n_unchanged = sum(f.status == "unchanged" for f in report.files)
    print(f"{len(report.indexed)} indexed, {n_unchanged} unchanged, {len(report.errors)} failed "
          f"in {report.seconds:.1f}s; the index at {args.index} holds {len(engine.index.docs)} documents, "
          f"{len(engine.index)} chunks")
    if not report.files:
        print("error: no supported files found in the given paths", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if report.indexed or n_unchanged == len(report.files) else EXIT_FAILED


def cmd_search(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .index import IndexFolderError

    if not os.path.isfile(os.path.join(args.index, "CURRENT")):
        raise IndexFolderError(f"{args.index} holds no qsearch index: build one with "
                               f"`python -m qsearch index --index {args.index} PATH...`")
    engine = Engine.open(args.index, _settings(args, rerank_model=args.rerank_model, search_mode=args.mode,
                                               fusion=args.fusion), follow_index_model=_model_unset(args))
    hits = engine.search(args.query, k=args.k, rerank=args.rerank, rerank_candidates=args.rerank_candidates,
                         instruction=args.instruction)
    if args.json:
        print(json.dumps({"query": args.query, "hits": [h.to_dict() for h in hits],
                          "timings_ms": hits.timings_ms}, ensure_ascii=False))
        return EXIT_OK
    if not hits:
        print("no results: the index is empty")
    for h in hits:
        where = h.source + (f", page {h.page}" if h.page else "") + \
            (f"-{h.page_end}" if h.page_end and h.page_end != h.page else "")
        rerank = f"  rerank {h.rerank_score:.3f}" if h.rerank_score is not None else ""
        print(f"{h.rank:>2}. {h.score:.3f}{rerank}  {where}")
        print("    " + _preview(h.text, 300))
    print("  ".join(f"{k.removesuffix('_ms')} {v:.1f} ms" for k, v in hits.timings_ms.items()), file=sys.stderr)
    return EXIT_OK


def cmd_chunk(args: argparse.Namespace) -> int:
    from . import ingest
    from .chunk import chunk_document
    from .embed import load_tokenizer

    settings = _settings(args, chunk_tokens=args.chunk_tokens, chunk_overlap=args.overlap)
    tokenizer, model_max = load_tokenizer(settings.embed_model)
    max_tokens = min(settings.chunk_tokens, model_max)
    limits = ingest.Limits(settings.max_file_bytes, settings.max_pages, settings.max_chars,
                           max_seconds=settings.max_seconds_per_file)
    files = ingest.find_files(args.paths)
    if not files:
        print("error: no supported files found in the given paths", file=sys.stderr)
    for path in files:
        try:
            doc = ingest.load(path, limits)
            chunks = chunk_document(doc, tokenizer, max_tokens, min(settings.chunk_overlap, max_tokens // 4))
        except ingest.IngestError as e:
            print(json.dumps({"path": str(path), "error": e.reason}, ensure_ascii=False) if args.json
                  else f"{path}: error: {e.reason}")
            continue
        except Exception as e:  # noqa: BLE001 - errors are data here: report and go on
            reason = f"unexpected error: {type(e).__name__}: {e}"
            print(json.dumps({"path": str(path), "error": reason}) if args.json else f"{path}: error: {reason}")
            continue
        if args.json:
            print(json.dumps({"path": str(path), "chunks": len(chunks), "pages": doc.n_pages,
                              "characters": len(doc.text),
                              "first_chunks": [c.to_dict() for c in chunks[: args.show]]}, ensure_ascii=False))
        else:
            pages = f", {doc.n_pages} pages" if doc.n_pages else ""
            print(f"{path}: {len(chunks)} chunks{pages}, {len(doc.text):,} characters")
            for c in chunks[: args.show]:
                page = f" p.{c.page}" if c.page else ""
                print(f"   [{c.start}:{c.end}{page}] {_preview(c.text, 160)}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from .engine import make_embedder, make_reranker
    from .evaluate import Config, compare, load_beir

    settings = _settings(args, rerank_model=args.rerank_model)
    data = load_beir(args.beir_dir, args.split)
    if args.compare:
        configs = [Config("dense"), Config("lexical"), Config("hybrid", "rrf"), Config("hybrid", "weighted")]
        if args.dim:
            configs += [Config("dense", dim=args.dim), Config("hybrid", "rrf", dim=args.dim)]
    else:
        configs = [Config(args.mode, args.fusion or "rrf", args.dim)]
    print(f"{len(data.corpus_ids)} documents, {len(data.query_ids)} queries ({args.split}); "
          f"loading {settings.embed_model} …", file=sys.stderr)
    embedder = make_embedder(settings.with_(embed_dim=None))  # --dim is applied to the shared embeddings
    reranker = make_reranker(settings) if args.rerank else None
    with _Bars() as bars:
        results = compare(data, embedder, configs, reranker=reranker, rerank_candidates=args.rerank_candidates,
                          instruction=args.instruction, cache=args.index_cache, progress=bars.update)
    header = f"{'configuration':<18} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'index MB':>9} {'ms/query':>9}"
    print(header)
    for r in results:
        print(f"{r['config']:<18} {r['ndcg_at_10']:>8.4f} {r['recall_at_100']:>7.4f} {r['mrr_at_10']:>7.4f} "
              f"{r['index_bytes'] / 2**20:>9.2f} {r['ms_per_query']:>9.2f}")
    first = results[0]
    docs_per_s = f"{first['docs_per_s']:.1f}" if first["docs_per_s"] is not None else "cached or not needed"
    print(f"{first['n_queries']} queries, {first['n_docs']} documents; documents/s {docs_per_s}")
    if args.json:
        extra = {"model": settings.embed_model, "rerank_model": settings.rerank_model if args.rerank else None,
                 "split": args.split}
        print(json.dumps({**extra, "configs": results} if args.compare else {**extra, **first}))
    return EXIT_OK


# --- helpers -----------------------------------------------------------------------------


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    return Settings.from_env(embed_model=getattr(args, "embed_model", None), device=args.device,
                             max_batch_tokens=args.max_batch_tokens, max_file_mb=getattr(args, "max_file_mb", None),
                             embed_url=getattr(args, "embed_url", None), rerank_url=getattr(args, "rerank_url", None),
                             **flags)


def _model_unset(args: argparse.Namespace) -> bool:
    """No --embed-model and no QSEARCH_EMBED_MODEL: use the model the index was built with."""
    return args.embed_model is None and not os.environ.get("QSEARCH_EMBED_MODEL")


def _preview(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _Bars:
    """One tqdm bar per stage on stderr, for progress callbacks (stage, done, total)."""

    def __enter__(self) -> _Bars:
        self.bars: dict[str, Any] = {}
        return self

    def update(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="", file=sys.stderr, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars.values():
            bar.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qsearch", description="Semantic search over your documents.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(cmd: argparse.ArgumentParser, *, model: bool = True, remote: bool = True) -> None:
        if model:
            cmd.add_argument("--embed-model", metavar="M", help=f"hub id or local folder "
                             f"(default: $QSEARCH_EMBED_MODEL or {DEFAULT_EMBED_MODEL}; for an existing "
                             f"index, the model it was built with)")
        cmd.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="default: auto")
        if remote:
            cmd.add_argument("--embed-url", metavar="URL", help="embed with an OpenAI-compatible server "
                             "(…/v1/embeddings: SGLang, vLLM, TEI, qsearch) instead of a local model")
            cmd.add_argument("--rerank-url", metavar="URL", help="rerank with a …/v1/rerank server")
        cmd.add_argument("--max-batch-tokens", type=int, metavar="N", help="tokens per forward pass")

    def add(name: str, run: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(run=run)
        return cmd

    cmd = add("index", cmd_index, "Add files or folders (recursively) to an index.")
    cmd.add_argument("--index", required=True, metavar="DIR", help="index folder (created if missing)")
    cmd.add_argument("paths", nargs="+", metavar="PATH")
    cmd.add_argument("--chunk-tokens", type=int, metavar="N", help="tokens per chunk (default 256)")
    cmd.add_argument("--overlap", type=int, metavar="N", help="tokens shared by neighbouring chunks (default 32)")
    cmd.add_argument("--dim", type=int, metavar="N", help="MRL: keep the first N dimensions (Qwen3: 32..1024)")
    cmd.add_argument("--index-kind", choices=INDEX_KINDS, help="flat (exact, default) or hnsw (approximate)")
    cmd.add_argument("--max-file-mb", type=float, metavar="N", help="largest file accepted (default 50)")
    common(cmd)

    cmd = add("search", cmd_search, "Search an index.")
    cmd.add_argument("--index", required=True, metavar="DIR")
    cmd.add_argument("query", metavar="QUERY")
    cmd.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    _rerank_flags(cmd, candidates=50)
    cmd.add_argument("--instruction", metavar="TEXT", help="task instruction for the query (Qwen3 models)")
    _mode_flags(cmd, default_text="$QSEARCH_SEARCH_MODE or hybrid")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    common(cmd)

    cmd = add("chunk", cmd_chunk, "Show what ingestion and chunking make of files, without embedding.")
    cmd.add_argument("paths", nargs="+", metavar="PATH")
    cmd.add_argument("--chunk-tokens", type=int, metavar="N")
    cmd.add_argument("--overlap", type=int, metavar="N")
    cmd.add_argument("--show", type=int, default=2, metavar="N", help="chunks to show per file (default 2)")
    cmd.add_argument("--max-file-mb", type=float, metavar="N")
    cmd.add_argument("--json", action="store_true", help="one JSON object per file per line")
    common(cmd, remote=False)

    cmd = add("eval", cmd_eval, "Measure retrieval quality on a BEIR-format data set.")
    cmd.add_argument("beir_dir", metavar="BEIR_DIR")
    cmd.add_argument("--split", default="test")
    cmd.add_argument("--dim", type=int, metavar="N")
    _rerank_flags(cmd, candidates=100)
    cmd.add_argument("--instruction", metavar="TEXT", help="query instruction (Qwen3 models)")
    cmd.add_argument("--index-cache", metavar="DIR", help="keep the corpus embeddings here for the next run")
    _mode_flags(cmd, default_text="dense, the model's own figure")
    cmd.set_defaults(mode="dense")
    cmd.add_argument("--compare", action="store_true",
                     help="measure dense, lexical and hybrid (and --dim) over one embedding pass, as one table")
    cmd.add_argument("--json", action="store_true", help="last line: one JSON object with the figures")
    common(cmd)
    return p


def _mode_flags(cmd: argparse.ArgumentParser, default_text: str) -> None:
    cmd.add_argument("--mode", choices=SEARCH_MODES, help=f"ranking: dense, lexical (BM25) or hybrid "
                     f"(both fused) (default: {default_text})")
    cmd.add_argument("--fusion", choices=FUSIONS, help="hybrid: rrf (reciprocal rank fusion, default) or "
                     "weighted (min-max normalised scores)")


def _rerank_flags(cmd: argparse.ArgumentParser, candidates: int) -> None:
    cmd.add_argument("--rerank", action="store_true", help="rescore the top candidates with the reranker")
    cmd.add_argument("--rerank-model", metavar="M",
                     help=f"hub id or local folder (default: $QSEARCH_RERANK_MODEL or {DEFAULT_RERANK_MODEL})")
    cmd.add_argument("--rerank-candidates", type=int, default=candidates, metavar="N",
                     help=f"how many candidates the reranker sees (default {candidates})")


if __name__ == "__main__":
    sys.exit(main())
